//! Helpers shared by the tests: deterministic data, f64 references, error measures.
#![allow(dead_code)] // each test file uses a different subset

use half::{bf16, f16};
use quarot_ggml::DType;

/// One unit roundoff of f32 (2^-24): errors below are given in these units.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

/// splitmix64: deterministic data without a dev-dependency on rand.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Activation-like rows: uniform values plus a few outlier channels 20x larger (what
    /// the rotation is for).
    pub fn activations(&mut self, rows: usize, n: usize) -> Vec<f32> {
        let outliers: Vec<usize> = (0..4)
            .map(|_| (self.next_u64() % n as u64) as usize)
            .collect();
        let mut x: Vec<f32> = (0..rows * n).map(|_| self.uniform()).collect();
        for r in 0..rows {
            for &c in &outliers {
                x[r * n + c] *= 20.0;
            }
        }
        x
    }
}

/// Values as stored in a tensor of `dtype` (bit patterns for 16-bit types), and the exact
/// values those elements hold (what a transform of that tensor sees).
pub enum Stored {
    F32(Vec<f32>),
    Bits(Vec<u16>),
}

pub fn store(values: &[f32], dtype: DType) -> (Stored, Vec<f64>) {
    match dtype {
        DType::F32 => (
            Stored::F32(values.to_vec()),
            values.iter().map(|&v| v as f64).collect(),
        ),
        DType::F16 => {
            let bits: Vec<u16> = values.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
            let exact = bits.iter().map(|&b| f16::from_bits(b).to_f64()).collect();
            (Stored::Bits(bits), exact)
        }
        DType::BF16 => {
            let bits: Vec<u16> = values
                .iter()
                .map(|&v| bf16::from_f32(v).to_bits())
                .collect();
            let exact = bits.iter().map(|&b| bf16::from_bits(b).to_f64()).collect();
            (Stored::Bits(bits), exact)
        }
    }
}

pub fn write_stored(t: &quarot_ggml::Tensor<'_>, dtype: DType, s: &Stored) {
    match s {
        Stored::F32(v) => t.write(dtype, v),
        Stored::Bits(v) => t.write(dtype, v),
    }
}

/// Sylvester Walsh-Hadamard of a power-of-two row, natural order (H_{2p} = [[H, H], [H, -H]],
/// so y_i = sum_j (-1)^popcount(i & j) x_j), in f64, unnormalized.
pub fn wht_f64(x: &mut [f64]) {
    let n = x.len();
    assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

/// The definition, in f64: y = scale * (H_K ⊗ H_{2^m}) x for n = K * 2^m, with H_K from
/// libquarot's Rust API (its tables) and H_{2^m} the plain Walsh-Hadamard above: x is
/// viewed as K rows of 2^m (matmul_hadU layout), each row transformed by H_{2^m}, then the
/// rows mixed by H_K (H_K^T with `transpose_k`).
pub fn hadamard_ref(x: &[f64], n: usize, scale: f64, transpose_k: bool) -> Vec<f64> {
    let k = quarot::hadamard::hadamard_k(n).expect("supported width");
    let p = n / k;
    let hk: Vec<i8> = if k == 1 {
        vec![1]
    } else {
        quarot::hadamard::k_matrix(k).expect("H_K table")
    };
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(n) {
        let mut z = row.to_vec();
        for block in z.chunks_exact_mut(p) {
            wht_f64(block);
        }
        for i in 0..k {
            for j in 0..p {
                let mut acc = 0.0;
                for l in 0..k {
                    let h = if transpose_k {
                        hk[l * k + i]
                    } else {
                        hk[i * k + l]
                    };
                    acc += h as f64 * z[l * p + j];
                }
                out.push(acc * scale);
            }
        }
    }
    out
}

/// max over rows of max_i |got_i - want_i| / max_i |want_i|, in units of U: the error in
/// f32 ulps of the row's largest value.
pub fn err_row_ulps(got: &[f32], want: &[f64], n: usize) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst: f64 = 0.0;
    for (g, w) in got.chunks_exact(n).zip(want.chunks_exact(n)) {
        let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = g
            .iter()
            .zip(w)
            .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        worst = worst.max(if scale > 0.0 {
            err / scale / U
        } else {
            err / U
        });
    }
    worst
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
