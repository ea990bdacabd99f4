//! Properties of weight rotation through the public Rust API (`quarot::rotate`):
//!
//! - invariance: rotating a layer's input channels with R and its input with R^T leaves
//!   its output unchanged, and rotating the hidden dimension of a two-layer network
//!   (out-channels + bias of the first layer, in-channels of the second) leaves the network
//!   unchanged, to the error that rounding the rotated weights to f32 implies (bounds below);
//! - `matrices::random_orthogonal` is orthogonal to 1e-13, deterministic for a seed and
//!   different for different seeds;
//! - `matrices::hadamard_matrix` is the documented Kronecker product (independent
//!   construction from the reference H_K tables) for all three layouts, with and without
//!   signs;
//! - the Hadamard fast path equals the dense path with the formed matrix (f32/f16/bf16, in
//!   and out channels with bias, all layouts, with and without signs): >= 99.9% of the
//!   elements bit-identical, all within 1 ulp, elements between rows untouched;
//! - `ROTATE_FLAG_F32_ACCUMULATE` stays within a few f32 ulps of the f64 result;
//! - every error (rotation_n = 0, not dividing, row_stride < in_features, unknown flags,
//!   non-finite R, signs not +-1, unsupported Hadamard size, ...) returns the right
//!   `Status` and leaves the weight and the bias bit-identical.
//!
//! Run with `--nocapture` to see the observed error ratios.

mod common;

use common::{expected_k, reference_k_matrix, ulp_distance_16, ulp_distance_f32, TestRng};
use half::{bf16, f16};
use quarot::rotate::matrices::{hadamard_matrix, random_orthogonal, random_signs};
use quarot::rotate::{
    quark_hadamard_scale, rotate_in_channels, rotate_out_channels, HadamardLayout,
    HadamardRotation, Rotation, ROTATE_FLAG_F32_ACCUMULATE, ROTATE_KNOWN_FLAGS,
};
use quarot::{Element, Error, Status, FLAG_PAD_TRUNCATE, FLAG_PARALLEL, FLAG_TRANSPOSE_K};

/// 2^-24: the unit roundoff of f32.
const U32: f64 = 1.0 / (1u64 << 24) as f64;

const LAYOUTS: [HadamardLayout; 3] = [
    HadamardLayout::MatmulHadU,
    HadamardLayout::MatmulHadUTransposed,
    HadamardLayout::KronPow2K,
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// What the comparisons need of f32 / f16 / bf16.
trait TestElem: Element + PartialEq + std::fmt::Debug {
    const NAME: &'static str;
    fn bits(self) -> u32;
    fn ulps(a: Self, b: Self) -> u64;
    fn to_f64(self) -> f64;
}

impl TestElem for f32 {
    const NAME: &'static str = "f32";
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn ulps(a: Self, b: Self) -> u64 {
        ulp_distance_f32(a, b)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl TestElem for f16 {
    const NAME: &'static str = "f16";
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
    fn ulps(a: Self, b: Self) -> u64 {
        u64::from(ulp_distance_16(a.to_bits(), b.to_bits()))
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
}

impl TestElem for bf16 {
    const NAME: &'static str = "bf16";
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
    fn ulps(a: Self, b: Self) -> u64 {
        u64::from(ulp_distance_16(a.to_bits(), b.to_bits()))
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
}

/// `len` values ~N(0, 0.05) with every 13th column x30 (like the reference weights).
fn random_weights<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut rng = TestRng::new(seed);
    (0..len)
        .map(|i| {
            let v = rng.normal() * 0.05 * if i % 13 == 5 { 30.0 } else { 1.0 };
            T::from_f32(v as f32)
        })
        .collect()
}

fn orthogonal(n: usize, seed: u64) -> Vec<f64> {
    let mut r = vec![0.0f64; n * n];
    random_orthogonal(&mut r, n, seed).unwrap_or_else(|e| panic!("random_orthogonal({n}): {e}"));
    r
}

fn formed(h: &HadamardRotation<'_>) -> Vec<f64> {
    let mut r = vec![f64::NAN; h.n * h.n];
    hadamard_matrix(&mut r, h).unwrap_or_else(|e| panic!("hadamard_matrix({h:?}): {e}"));
    r
}

/// The scale that makes a layout's matrix what Quark builds: 1/sqrt(n) (f64) for
/// KronPow2K (`get_rotation_matrix`), 1/f32(sqrt n) for the matmul_hadU layouts.
fn quark_scale(layout: HadamardLayout, n: usize) -> f64 {
    match layout {
        HadamardLayout::KronPow2K => 1.0 / (n as f64).sqrt(),
        _ => quark_hadamard_scale(n),
    }
}

/// A dense rotation matrix as an owned value plus its size.
struct OwnedRotation {
    matrix: Vec<f64>,
    n: usize,
    label: String,
}

impl OwnedRotation {
    fn dense(&self) -> Rotation<'_> {
        Rotation::Dense {
            matrix: &self.matrix,
            n: self.n,
        }
    }
}

/// y = W x in f64 (W out x in, row-major, rows `stride` apart).
fn matvec(w: &[f64], out: usize, inn: usize, stride: usize, x: &[f64]) -> Vec<f64> {
    (0..out)
        .map(|i| (0..inn).map(|j| w[i * stride + j] * x[j]).sum())
        .collect()
}

/// blockdiag(R, ..., R)^T x: x'[b*r + j] = sum_k R[k][j] x[b*r + k].
fn blockdiag_rt_x(rot: &[f64], r: usize, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for b in 0..x.len() / r {
        for j in 0..r {
            y[b * r + j] = (0..r).map(|k| rot[k * r + j] * x[b * r + k]).sum();
        }
    }
    y
}

fn widen<T: TestElem>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

// ---------------------------------------------------------------------------------------
// Invariance
// ---------------------------------------------------------------------------------------

/// The rotations of the invariance tests: (label, r, R as a dense matrix, the same R as
/// the Rust API takes it). Orthogonal to f64 accuracy.
fn invariance_rotations() -> Vec<(OwnedRotation, Option<HadamardRotation<'static>>)> {
    let mut v = Vec::new();
    for (r, seed) in [(64usize, 11u64), (16, 12), (48, 13), (80, 14)] {
        v.push((
            OwnedRotation {
                matrix: orthogonal(r, seed),
                n: r,
                label: format!("random orthogonal r = {r}"),
            },
            None,
        ));
    }
    // Hadamard rotations with f64-orthogonal scales: K = 40 (r = 80) with 1/sqrt(80), and
    // r = 64 / r = 16 with Quark's scale (exact there: f32(sqrt 64) = 8), with signs.
    static SIGNS64: std::sync::OnceLock<Vec<i8>> = std::sync::OnceLock::new();
    let s64: &'static [i8] = SIGNS64.get_or_init(|| {
        let mut s = vec![0i8; 64];
        random_signs(&mut s, 7);
        s
    });
    for h in [
        HadamardRotation {
            n: 80,
            layout: HadamardLayout::KronPow2K,
            signs: None,
            scale: 1.0 / 80f64.sqrt(),
        },
        HadamardRotation {
            n: 64,
            layout: HadamardLayout::MatmulHadU,
            signs: Some(s64),
            scale: quark_hadamard_scale(64),
        },
        HadamardRotation {
            n: 16,
            layout: HadamardLayout::MatmulHadUTransposed,
            signs: Some(&s64[..16]),
            scale: quark_hadamard_scale(16),
        },
    ] {
        v.push((
            OwnedRotation {
                matrix: formed(&h),
                n: h.n,
                label: format!(
                    "Hadamard {:?} r = {} signs {}",
                    h.layout,
                    h.n,
                    h.signs.is_some()
                ),
            },
            Some(h),
        ));
    }
    v
}

/// One layer, in-channels: W' = W blockdiag(R) rounded to f32. For x, W' (R^T x) must equal
/// W x up to the rounding of W' (|W'_ij - (WR)_ij| <= 2^-24 |W'_ij|):
///   |W'(R^T x) - W x|_i <= 2^-24 (1 + 2^-23) sum_j |W'_ij| |(R^T x)_j|  (+ f64 slop:
///   1e-12 (sum_j |W'_ij||(R^T x)_j| + sum_j |W_ij||x_j|)).
#[test]
fn in_channel_rotation_preserves_the_layer() {
    let out = 24;
    let mut worst = 0.0f64;
    let mut checked = 0;
    for (rot, had) in invariance_rotations() {
        let r = rot.n;
        // r = 64: full; r = 16: blockwise on 64; r = 48: blockwise on 96 (K = 12);
        // r = 80 (K = 40): full and blockwise on 160.
        let widths: &[usize] = match r {
            64 | 16 => &[64],
            48 => &[96],
            80 => &[80, 160],
            _ => unreachable!(),
        };
        for &inn in widths {
            let w: Vec<f32> = random_weights(out * inn, 100 + inn as u64);
            let wf = widen(&w);
            let rotations: Vec<(String, Rotation<'_>)> =
                std::iter::once((format!("{} dense", rot.label), rot.dense()))
                    .chain(had.map(|h| (format!("{} fast", rot.label), Rotation::Hadamard(h))))
                    .collect();
            for (label, rotation) in rotations {
                for flags in [0, FLAG_PARALLEL] {
                    let mut w2 = w.clone();
                    rotate_in_channels(&mut w2, out, inn, inn, &rotation, flags)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    let w2f = widen(&w2);
                    let mut rng = TestRng::new(inn as u64 * 31 + r as u64);
                    for _ in 0..4 {
                        let x: Vec<f64> = (0..inn).map(|_| rng.normal()).collect();
                        let xr = blockdiag_rt_x(&rot.matrix, r, &x);
                        let y0 = matvec(&wf, out, inn, inn, &x);
                        let y1 = matvec(&w2f, out, inn, inn, &xr);
                        let m1 = matvec(&abs(&w2f), out, inn, inn, &abs(&xr));
                        let m0 = matvec(&abs(&wf), out, inn, inn, &abs(&x));
                        for i in 0..out {
                            let f32_term = U32 * (1.0 + 2.0 * U32) * m1[i];
                            let bound = f32_term + 1e-12 * (m1[i] + m0[i]);
                            let d = (y1[i] - y0[i]).abs();
                            assert!(
                                d <= bound,
                                "{label}, W {out}x{inn}, flags {flags}: output {i}: rotated {} vs plain {}: |diff| {d:e} > bound {bound:e}",
                                y1[i],
                                y0[i]
                            );
                            worst = worst.max(d / f32_term);
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    // 5 layer shapes with a dense random R, 4 with a Hadamard R (dense and fast), 2 flags.
    assert_eq!(
        checked,
        2 * (5 + 2 * 4),
        "layer/rotation/flags combinations"
    );
    eprintln!("in-channel invariance: worst |diff| / (2^-24 sum|W'||R^T x|) = {worst:.4}");
}

/// Two layers, y = W2 (W1 x + b1) with W1 h x n_in, W2 n_out x h; the hidden dimension is
/// rotated: W1, b1 out-channels (R^T W1, R^T b1), W2 in-channels (W2 R). With the rounding
/// errors E1, e, E2 of W1', b1', W2' (each at most 2^-24 of the rounded value):
///   y' - y = W2 R (E1 x + e) + E2 h',  h' = W1' x + b1', so
///   |y' - y|_i <= 2^-24 (1 + 2^-22) [ sum_j |W2'_ij| (sum_k |W1'_jk||x_k| + |b1'_j|)
///                                     + sum_j |W2'_ij| |h'_j| ]  (+ f64 slop 1e-12 * that).
#[test]
fn hidden_rotation_preserves_a_two_layer_network() {
    let (n_in, n_out) = (40usize, 24usize);
    let mut worst = 0.0f64;
    let mut checked = 0;
    for (rot, had) in invariance_rotations() {
        let r = rot.n;
        let h = match r {
            16 => 64, // blockwise, 4 blocks
            48 => 96, // blockwise, 2 blocks (K-width, K = 12)
            _ => r,   // full rotation (incl. K = 40 at r = 80)
        };
        let w1: Vec<f32> = random_weights(h * n_in, 300 + h as u64);
        let b1: Vec<f32> = random_weights(h, 400 + h as u64);
        let w2: Vec<f32> = random_weights(n_out * h, 500 + h as u64);
        let rotations: Vec<(String, Rotation<'_>)> =
            std::iter::once((format!("{} dense", rot.label), rot.dense()))
                .chain(had.map(|hr| (format!("{} fast", rot.label), Rotation::Hadamard(hr))))
                .collect();
        for (label, rotation) in rotations {
            for flags in [0, FLAG_PARALLEL] {
                let (mut w1r, mut b1r, mut w2r) = (w1.clone(), b1.clone(), w2.clone());
                rotate_out_channels(&mut w1r, h, n_in, n_in, Some(&mut b1r), &rotation, flags)
                    .unwrap_or_else(|e| panic!("{label}: out: {e}"));
                rotate_in_channels(&mut w2r, n_out, h, h, &rotation, flags)
                    .unwrap_or_else(|e| panic!("{label}: in: {e}"));
                let (w1f, b1f, w2f) = (widen(&w1), widen(&b1), widen(&w2));
                let (w1rf, b1rf, w2rf) = (widen(&w1r), widen(&b1r), widen(&w2r));
                let mut rng = TestRng::new(h as u64 + 77);
                for _ in 0..4 {
                    let x: Vec<f64> = (0..n_in).map(|_| rng.normal()).collect();
                    let hid: Vec<f64> = matvec(&w1f, h, n_in, n_in, &x)
                        .iter()
                        .zip(&b1f)
                        .map(|(a, b)| a + b)
                        .collect();
                    let y = matvec(&w2f, n_out, h, h, &hid);
                    let hid_r: Vec<f64> = matvec(&w1rf, h, n_in, n_in, &x)
                        .iter()
                        .zip(&b1rf)
                        .map(|(a, b)| a + b)
                        .collect();
                    let y_r = matvec(&w2rf, n_out, h, h, &hid_r);
                    let mag_h: Vec<f64> = matvec(&abs(&w1rf), h, n_in, n_in, &abs(&x))
                        .iter()
                        .zip(&b1rf)
                        .zip(&hid_r)
                        .map(|((a, b), hr)| a + b.abs() + hr.abs())
                        .collect();
                    let mag = matvec(&abs(&w2rf), n_out, h, h, &mag_h);
                    for i in 0..n_out {
                        let f32_term = U32 * (1.0 + 4.0 * U32) * mag[i];
                        let bound = f32_term * (1.0 + 1e-12) + 1e-300;
                        let d = (y_r[i] - y[i]).abs();
                        assert!(
                            d <= bound,
                            "{label}, hidden {h}, flags {flags}: y[{i}] rotated {} vs plain {}: |diff| {d:e} > bound {bound:e}",
                            y_r[i],
                            y[i]
                        );
                        worst = worst.max(d / f32_term);
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * (4 + 2 * 3));
    eprintln!("two-layer invariance: worst |diff| / bound = {worst:.4}");
}

// ---------------------------------------------------------------------------------------
// Rotation matrices
// ---------------------------------------------------------------------------------------

/// max |R R^T - I| and max |R^T R - I|.
fn orthogonality_error(r: &[f64], n: usize) -> (f64, f64) {
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for i in 0..n {
        for j in 0..n {
            let id = if i == j { 1.0 } else { 0.0 };
            let rrt: f64 = (0..n).map(|k| r[i * n + k] * r[j * n + k]).sum();
            let rtr: f64 = (0..n).map(|k| r[k * n + i] * r[k * n + j]).sum();
            a = a.max((rrt - id).abs());
            b = b.max((rtr - id).abs());
        }
    }
    (a, b)
}

#[test]
fn random_orthogonal_is_orthogonal_and_deterministic() {
    let mut worst = 0.0f64;
    for n in [1usize, 2, 3, 16, 48, 64, 80, 128, 200] {
        for seed in [0u64, 1, 42, u64::MAX] {
            let r = orthogonal(n, seed);
            assert!(r.iter().all(|v| v.is_finite()), "n = {n} seed {seed}");
            let (a, b) = orthogonality_error(&r, n);
            assert!(
                a <= 1e-13 && b <= 1e-13,
                "n = {n}, seed {seed}: max|RR^T - I| = {a:e}, max|R^TR - I| = {b:e}"
            );
            worst = worst.max(a).max(b);
            // Deterministic: the same bits again (also into a longer buffer).
            let mut again = vec![7.5f64; n * n + 3];
            random_orthogonal(&mut again, n, seed).unwrap();
            assert!(
                r.iter()
                    .zip(&again)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "n = {n}, seed {seed}: not deterministic"
            );
            assert!(again[n * n..].iter().all(|&v| v == 7.5), "wrote past n*n");
            // Different seeds give different matrices (for n = 1 there are only +-1).
            if n >= 2 {
                let other = orthogonal(n, seed.wrapping_add(1));
                let diff = r
                    .iter()
                    .zip(&other)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f64, f64::max);
                assert!(
                    diff > 1e-3,
                    "n = {n}: seeds {seed} and {} give (nearly) the same matrix",
                    seed.wrapping_add(1)
                );
            } else {
                assert_eq!(r[0].abs(), 1.0);
            }
        }
    }
    eprintln!("random_orthogonal: worst orthogonality error {worst:e}");

    // Errors leave the buffer alone.
    let mut out = vec![3.0f64; 16];
    let e = random_orthogonal(&mut out, 0, 1).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument, "{e}");
    let e = random_orthogonal(&mut out, 5, 1).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument, "{e}");
    assert!(out.iter().all(|&v| v == 3.0));
}

/// The matrix each layout documents, built independently from the reference H_K tables:
/// MatmulHadU = kron(H_K, H_m)^T, MatmulHadUTransposed = kron(H_K, H_m),
/// KronPow2K = kron(H_m, H_K); R = diag(signs) M scale.
fn documented_matrix(
    n: usize,
    layout: HadamardLayout,
    signs: Option<&[i8]>,
    scale: f64,
) -> Vec<f64> {
    let k = expected_k(n).expect("supported n");
    let hk = reference_k_matrix(k);
    let m = n / k;
    let hm = |i: usize, j: usize| -> f64 {
        if (i & j).count_ones().is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    };
    let hkv = |i: usize, j: usize| f64::from(hk[i * k + j]);
    // kron(A (a x a), B (b x b))[i][j] = A[i / b][j / b] * B[i % b][j % b]
    let kron_k_m = |i: usize, j: usize| hkv(i / m, j / m) * hm(i % m, j % m);
    let kron_m_k = |i: usize, j: usize| hm(i / k, j / k) * hkv(i % k, j % k);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let v = match layout {
                HadamardLayout::MatmulHadU => kron_k_m(j, i),
                HadamardLayout::MatmulHadUTransposed => kron_k_m(i, j),
                HadamardLayout::KronPow2K => kron_m_k(i, j),
            };
            let s = signs.map_or(1.0, |s| f64::from(s[i]));
            out[i * n + j] = s * v * scale;
        }
    }
    out
}

#[test]
fn hadamard_matrix_is_the_documented_kronecker_product() {
    let mut checked = 0;
    // K = 1, 12, 20, 28 (symmetric), 36 (symmetric), 40, 44 (SpinQuant), 52, 172.
    for n in [
        1usize, 2, 64, 12, 48, 20, 40, 28, 56, 36, 72, 80, 44, 52, 104, 172, 344,
    ] {
        let mut s = vec![0i8; n];
        random_signs(&mut s, n as u64);
        for layout in LAYOUTS {
            for signs in [None, Some(&s[..])] {
                let scale = quark_scale(layout, n);
                let h = HadamardRotation {
                    n,
                    layout,
                    signs,
                    scale,
                };
                let got = formed(&h);
                let want = documented_matrix(n, layout, signs, scale);
                for (t, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "n = {n}, {layout:?}, signs {}: R[{}][{}] = {g} but the documented matrix has {w}",
                        signs.is_some(),
                        t / n,
                        t % n
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 17 * 3 * 2);
}

// ---------------------------------------------------------------------------------------
// Hadamard fast path == dense path with the formed matrix
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Agreement {
    elements: usize,
    identical: usize,
    max_ulp: u64,
    example: Option<String>,
}

impl Agreement {
    fn compare<T: TestElem>(&mut self, what: &str, a: &[T], b: &[T]) {
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            self.elements += 1;
            if x.bits() == y.bits() {
                self.identical += 1;
            } else {
                let d = T::ulps(x, y);
                if d > self.max_ulp {
                    self.max_ulp = d;
                    self.example = Some(format!("{what}[{i}]: {x:?} vs {y:?} ({d} ulp)"));
                }
            }
        }
    }

    fn fraction(&self) -> f64 {
        self.identical as f64 / self.elements.max(1) as f64
    }
}

/// Weight (and bias) with gaps between rows filled with a sentinel: in-channels W is
/// rows x 2n (stride 2n + 5); out-channels W is 2n x 9 (stride 13) with a bias of 2n.
fn fast_vs_dense_one<T: TestElem>(n: usize, h: &HadamardRotation<'_>, agree: &mut Agreement) {
    let dense_m = formed(h);
    let dense = Rotation::Dense {
        matrix: &dense_m,
        n,
    };
    let fast = Rotation::Hadamard(*h);
    let sentinel = T::from_f32(-12345.0);
    for out_channels in [false, true] {
        let (rows, cols, stride) = if out_channels {
            (2 * n, 9, 13)
        } else {
            (7, 2 * n, 2 * n + 5)
        };
        let len = (rows - 1) * stride + cols;
        let mut w: Vec<T> = random_weights(len, (n * 1000 + rows) as u64);
        for i in 0..rows {
            for j in cols..stride {
                if i * stride + j < len {
                    w[i * stride + j] = sentinel;
                }
            }
        }
        let bias: Vec<T> = random_weights(rows, n as u64 + 5);
        let run = |rotation: &Rotation<'_>, flags: u32| -> (Vec<T>, Vec<T>) {
            let (mut w, mut b) = (w.clone(), bias.clone());
            if out_channels {
                rotate_out_channels(&mut w, rows, cols, stride, Some(&mut b), rotation, flags)
            } else {
                rotate_in_channels(&mut w, rows, cols, stride, rotation, flags)
            }
            .unwrap_or_else(|e| panic!("n = {n} {h:?}: {e}"));
            (w, b)
        };
        let (fw, fb) = run(&fast, 0);
        let (dw, db) = run(&dense, 0);
        let what = format!(
            "{} n = {n} {:?} signs {} {}",
            T::NAME,
            h.layout,
            h.signs.is_some(),
            if out_channels { "out" } else { "in" }
        );
        // Gaps untouched by either path.
        for (label, v) in [("fast", &fw), ("dense", &dw)] {
            for i in 0..rows {
                for j in cols..stride {
                    if i * stride + j < len {
                        assert_eq!(
                            v[i * stride + j].bits(),
                            sentinel.bits(),
                            "{what}: {label} path wrote the gap at row {i} column {j}"
                        );
                    }
                }
            }
        }
        let data = |v: &[T]| -> Vec<T> {
            (0..rows)
                .flat_map(|i| v[i * stride..i * stride + cols].to_vec())
                .collect()
        };
        agree.compare(&format!("{what} weight"), &data(&fw), &data(&dw));
        if out_channels {
            agree.compare(&format!("{what} bias"), &fb, &db);
        } else {
            assert_eq!(fb, bias, "{what}: bias touched by an in-channel rotation");
        }
        // FLAG_PARALLEL: same bits.
        let (pw, pb) = run(&fast, FLAG_PARALLEL);
        assert!(
            pw.iter().zip(&fw).all(|(a, b)| a.bits() == b.bits())
                && pb.iter().zip(&fb).all(|(a, b)| a.bits() == b.bits()),
            "{what}: fast path with FLAG_PARALLEL differs from flags 0"
        );
        // ROTATE_FLAG_F32_ACCUMULATE does not apply to the Hadamard path (always f64): an
        // error, with the weight and bias untouched.
        let (mut w2, mut b2) = (w.clone(), bias.clone());
        let e = if out_channels {
            rotate_out_channels(
                &mut w2,
                rows,
                cols,
                stride,
                Some(&mut b2),
                &fast,
                ROTATE_FLAG_F32_ACCUMULATE,
            )
        } else {
            rotate_in_channels(
                &mut w2,
                rows,
                cols,
                stride,
                &fast,
                ROTATE_FLAG_F32_ACCUMULATE,
            )
        }
        .expect_err("F32_ACCUMULATE with a Hadamard rotation must be rejected");
        assert_eq!(e.status, quarot::Status::InvalidFlags, "{what}");
        assert!(
            w2.iter().zip(&w).all(|(a, b)| a.bits() == b.bits())
                && b2.iter().zip(&bias).all(|(a, b)| a.bits() == b.bits()),
            "{what}: rejected call touched the data"
        );
        let (pw, pb) = run(&dense, FLAG_PARALLEL);
        assert!(
            pw.iter().zip(&dw).all(|(a, b)| a.bits() == b.bits())
                && pb.iter().zip(&db).all(|(a, b)| a.bits() == b.bits()),
            "{what}: dense path with FLAG_PARALLEL differs from serial"
        );
    }
}

fn fast_vs_dense<T: TestElem>() -> Agreement {
    let mut agree = Agreement::default();
    let mut runs = 0;
    // K = 1 (64, 16), 12 (48), 28 (28, symmetric), 40 (80), 172 (172).
    for n in [16usize, 64, 48, 28, 80, 172] {
        let mut s = vec![0i8; n];
        random_signs(&mut s, 1000 + n as u64);
        for layout in LAYOUTS {
            for signs in [None, Some(&s[..])] {
                for scale in [quark_scale(layout, n), 1.0] {
                    let h = HadamardRotation {
                        n,
                        layout,
                        signs,
                        scale,
                    };
                    fast_vs_dense_one::<T>(n, &h, &mut agree);
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 6 * 3 * 2 * 2);
    eprintln!(
        "Hadamard fast path vs dense formed matrix, {}: {}/{} bit-identical ({:.4}%), max {} ulp{}",
        T::NAME,
        agree.identical,
        agree.elements,
        100.0 * agree.fraction(),
        agree.max_ulp,
        agree
            .example
            .as_ref()
            .map_or(String::new(), |e| format!(" (e.g. {e})"))
    );
    assert!(
        agree.max_ulp <= 1,
        "{}: max {} ulp: {:?}",
        T::NAME,
        agree.max_ulp,
        agree.example
    );
    assert!(
        agree.fraction() >= 0.999,
        "{}: only {:.4}% bit-identical: {:?}",
        T::NAME,
        100.0 * agree.fraction(),
        agree.example
    );
    agree
}

#[test]
fn hadamard_fast_path_equals_dense_f32() {
    fast_vs_dense::<f32>();
}

#[test]
fn hadamard_fast_path_equals_dense_f16() {
    fast_vs_dense::<f16>();
}

#[test]
fn hadamard_fast_path_equals_dense_bf16() {
    fast_vs_dense::<bf16>();
}

// ---------------------------------------------------------------------------------------
// ROTATE_FLAG_F32_ACCUMULATE
// ---------------------------------------------------------------------------------------

/// The logical rows (groups of r values that become x * R together) of a rotation of a
/// rows x cols weight followed by its bias (out-channels), as indices into weight ++ bias.
fn logical_rows(out_channels: bool, rows: usize, cols: usize, r: usize) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    if out_channels {
        for b in 0..rows / r {
            for c in 0..cols {
                groups.push((0..r).map(|k| (b * r + k) * cols + c).collect());
            }
            groups.push((0..r).map(|k| rows * cols + b * r + k).collect());
        }
    } else {
        for t in 0..rows * cols / r {
            groups.push((t * r..(t + 1) * r).collect());
        }
    }
    groups
}

/// f32 accumulation (R and the products in f32, FMA) against the default f64 mode, per
/// logical row of r values with m = max |f64-mode value| in that row:
/// - f32 weights: |acc32 - acc64| <= c f32 ulps of m = c * 2^-23 * m, c = max(8, sqrt r)
///   (r up to 256 here: c = 8..16);
/// - f16 / bf16 weights: within 1 ulp of the f64-mode value, or within the same
///   c * 2^-23 * m (values far below m, e.g. f16 subnormals, have ulps much smaller than
///   the f32 accumulation error of the row), and >= 99% identical.
///
/// FLAG_PARALLEL gives the same bits with F32_ACCUMULATE.
#[test]
fn f32_accumulate_is_close_to_f64() {
    // The bar in f32 ulps of the row max: 8, or sqrt(r) for long rows (the accumulated
    // rounding error of r terms grows like sqrt(r) for random data).
    fn tol_ulps(r: usize) -> f64 {
        8f64.max((r as f64).sqrt())
    }

    #[derive(Default, Debug, Clone, Copy)]
    struct Seen {
        elements: usize,
        identical: usize,
        /// max |diff| / (2^-23 m)
        worst_f32_ulps_of_max: f64,
        /// max distance in ulps of the dtype
        max_ulp: u64,
        /// elements more than 1 ulp of the dtype apart (allowed by the f32-ulp bar)
        beyond_1ulp: usize,
    }

    fn check<T: TestElem>(
        w: &[f32],
        bias: &[f32],
        rows: usize,
        cols: usize,
        out_channels: bool,
        rotation: &Rotation<'_>,
        seen: &mut Seen,
    ) {
        let r = rotation.n();
        let w: Vec<T> = w.iter().map(|&v| T::from_f32(v)).collect();
        let bias: Vec<T> = bias.iter().map(|&v| T::from_f32(v)).collect();
        let run = |flags: u32| -> Vec<T> {
            let (mut w, mut b) = (w.clone(), bias.clone());
            if out_channels {
                rotate_out_channels(&mut w, rows, cols, cols, Some(&mut b), rotation, flags)
                    .unwrap();
                w.extend(b);
            } else {
                rotate_in_channels(&mut w, rows, cols, cols, rotation, flags).unwrap();
            }
            w
        };
        let (a64, a32) = (run(0), run(ROTATE_FLAG_F32_ACCUMULATE));
        let a32p = run(ROTATE_FLAG_F32_ACCUMULATE | FLAG_PARALLEL);
        assert!(
            a32.iter().zip(&a32p).all(|(x, y)| x.bits() == y.bits()),
            "{} r = {r}: F32_ACCUMULATE | FLAG_PARALLEL differs from F32_ACCUMULATE",
            T::NAME
        );
        for g in logical_rows(out_channels, rows, cols, r) {
            let m = g.iter().fold(0.0f64, |m, &i| m.max(a64[i].to_f64().abs()));
            let unit = 2.0 * U32 * m; // one f32 ulp of m (to within a factor 2)
            for &i in &g {
                let (x, y) = (a64[i], a32[i]);
                seen.elements += 1;
                if x.bits() == y.bits() {
                    seen.identical += 1;
                    continue;
                }
                let d = (x.to_f64() - y.to_f64()).abs();
                let ulps = T::ulps(x, y);
                seen.max_ulp = seen.max_ulp.max(ulps);
                let narrow = T::NAME != "f32";
                if unit > 0.0 && (!narrow || ulps > 1) {
                    seen.worst_f32_ulps_of_max = seen.worst_f32_ulps_of_max.max(d / unit);
                }
                if ulps > 1 {
                    seen.beyond_1ulp += 1;
                }
                let tol_ulps = tol_ulps(r);
                assert!(
                    d <= tol_ulps * unit || (narrow && ulps <= 1),
                    "{} r = {r} {}: element {i}: f32-accumulate {y:?} vs f64 mode {x:?}: |diff| {d:e} > {tol_ulps} f32 ulps of max {m}",
                    T::NAME,
                    if out_channels { "out" } else { "in" }
                );
            }
        }
    }

    let mut seen = [Seen::default(); 3];
    for (r, seed) in [(64usize, 21u64), (16, 22), (48, 23), (80, 24), (256, 25)] {
        let rot = orthogonal(r, seed);
        let rotation = Rotation::Dense { matrix: &rot, n: r };
        for out_channels in [false, true] {
            let (rows, cols) = if out_channels {
                (2 * r, 24)
            } else {
                (24, 2 * r)
            };
            let w: Vec<f32> = random_weights(rows * cols, seed * 7);
            let bias: Vec<f32> = random_weights(rows, seed * 11);
            check::<f32>(&w, &bias, rows, cols, out_channels, &rotation, &mut seen[0]);
            check::<f16>(&w, &bias, rows, cols, out_channels, &rotation, &mut seen[1]);
            check::<bf16>(&w, &bias, rows, cols, out_channels, &rotation, &mut seen[2]);
        }
    }
    for (name, s) in ["f32", "f16", "bf16"].iter().zip(seen) {
        eprintln!(
            "F32_ACCUMULATE vs f64 mode, {name}: {}/{} identical ({:.3}%), worst |diff| {:.3} f32 ulps of the row max (bar max(8, sqrt r) = 8..16; for f16/bf16 counted over the elements > 1 ulp apart), max {} ulp of {name}, {} elements > 1 ulp",
            s.identical,
            s.elements,
            100.0 * s.identical as f64 / s.elements as f64,
            s.worst_f32_ulps_of_max,
            s.max_ulp,
            s.beyond_1ulp
        );
        assert!(s.elements > 0);
        if *name != "f32" {
            assert!(
                s.identical as f64 >= 0.99 * s.elements as f64,
                "{name}: only {}/{} identical",
                s.identical,
                s.elements
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Call rotate_in_channels (out_channels = false) or rotate_out_channels (with a bias) on a
/// weight of out_f x in_f with `stride`; expect `status` and a message containing every
/// string of `parts`; the weight and the bias must be bit-identical afterwards.
#[allow(clippy::too_many_arguments)]
fn expect_error<T: TestElem>(
    what: &str,
    out_channels: bool,
    out_f: usize,
    in_f: usize,
    stride: usize,
    rotation: &Rotation<'_>,
    flags: u32,
    status: Status,
    parts: &[&str],
) -> Error {
    let len = if out_f == 0 {
        0
    } else {
        (out_f - 1) * stride.max(in_f) + in_f
    };
    let w: Vec<T> = random_weights(len, 99);
    let b: Vec<T> = random_weights(out_f, 98);
    let (mut w2, mut b2) = (w.clone(), b.clone());
    let res = if out_channels {
        rotate_out_channels(&mut w2, out_f, in_f, stride, Some(&mut b2), rotation, flags)
    } else {
        rotate_in_channels(&mut w2, out_f, in_f, stride, rotation, flags)
    };
    let e = match res {
        Ok(()) => panic!("{what} ({}): succeeded, expected {status:?}", T::NAME),
        Err(e) => e,
    };
    assert_eq!(e.status, status, "{what} ({}): {e}", T::NAME);
    for p in parts {
        assert!(
            e.message.contains(p),
            "{what} ({}): message {:?} lacks {p:?}",
            T::NAME,
            e.message
        );
    }
    assert!(
        w2.iter().zip(&w).all(|(a, b)| a.bits() == b.bits()),
        "{what} ({}): the weight changed",
        T::NAME
    );
    assert!(
        b2.iter().zip(&b).all(|(a, b)| a.bits() == b.bits()),
        "{what} ({}): the bias changed",
        T::NAME
    );
    e
}

fn error_cases<T: TestElem>() -> usize {
    let mut n = 0;
    let orth16 = orthogonal(16, 1);
    let orth48 = orthogonal(48, 2);
    let orth5 = orthogonal(5, 3);
    let d16 = Rotation::Dense {
        matrix: &orth16,
        n: 16,
    };
    let mut count = |e: Error| {
        assert!(!e.message.is_empty());
        n += 1;
    };
    for out in [false, true] {
        let (dim_name, of, inf) = if out {
            ("out_features = 64", 64, 24)
        } else {
            ("in_features = 64", 24, 64)
        };
        // rotation_n = 0, dense and Hadamard.
        count(expect_error::<T>(
            "r = 0",
            out,
            of,
            inf,
            inf,
            &Rotation::Dense { matrix: &[], n: 0 },
            0,
            Status::InvalidArgument,
            &["rotation_n = 0"],
        ));
        count(expect_error::<T>(
            "Hadamard r = 0",
            out,
            of,
            inf,
            inf,
            &Rotation::Hadamard(HadamardRotation {
                n: 0,
                layout: HadamardLayout::MatmulHadU,
                signs: None,
                scale: 1.0,
            }),
            0,
            Status::InvalidArgument,
            &["rotation_n = 0"],
        ));
        // Not dividing: the message names the dimension and the nearest divisors.
        count(expect_error::<T>(
            "r = 48 on 64",
            out,
            of,
            inf,
            inf,
            &Rotation::Dense {
                matrix: &orth48,
                n: 48,
            },
            0,
            Status::InvalidArgument,
            &["rotation_n = 48", dim_name, "32 or 64"],
        ));
        count(expect_error::<T>(
            "r = 5 on 64",
            out,
            of,
            inf,
            inf,
            &Rotation::Dense {
                matrix: &orth5,
                n: 5,
            },
            0,
            Status::InvalidArgument,
            &["rotation_n = 5", dim_name, "4 or 8"],
        ));
        count(expect_error::<T>(
            "Hadamard r = 48 on 64",
            out,
            of,
            inf,
            inf,
            &Rotation::Hadamard(HadamardRotation {
                n: 48,
                layout: HadamardLayout::KronPow2K,
                signs: None,
                scale: 0.1,
            }),
            0,
            Status::InvalidArgument,
            &["rotation_n = 48", dim_name],
        ));
        // row_stride < in_features.
        count(expect_error::<T>(
            "row_stride < in_features",
            out,
            of,
            inf,
            inf - 1,
            &d16,
            0,
            Status::InvalidStride,
            &[&format!("row_stride = {}", inf - 1)],
        ));
        // Unknown flags: the transform flags are not rotation flags.
        for flags in [
            FLAG_TRANSPOSE_K,
            FLAG_PAD_TRUNCATE,
            16,
            1 << 31,
            FLAG_PARALLEL | FLAG_TRANSPOSE_K,
        ] {
            assert_ne!(flags & !ROTATE_KNOWN_FLAGS, 0);
            count(expect_error::<T>(
                &format!("flags {flags:#x}"),
                out,
                of,
                inf,
                inf,
                &d16,
                flags,
                Status::InvalidFlags,
                &[],
            ));
        }
        // Non-finite entries of R.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut m = orth16.clone();
            m[3 * 16 + 5] = bad;
            count(expect_error::<T>(
                &format!("R[3][5] = {bad}"),
                out,
                of,
                inf,
                inf,
                &Rotation::Dense { matrix: &m, n: 16 },
                0,
                Status::InvalidArgument,
                &["rotation[3][5]"],
            ));
        }
        // R shorter than r * r.
        count(expect_error::<T>(
            "R too short",
            out,
            of,
            inf,
            inf,
            &Rotation::Dense {
                matrix: &orth16[..255],
                n: 16,
            },
            0,
            Status::InvalidArgument,
            &["255"],
        ));
        // Signs that are not +-1, or too few.
        let mut s = vec![1i8; 16];
        random_signs(&mut s, 5);
        for bad in [0i8, 2, -2, i8::MIN] {
            let mut sb = s.clone();
            sb[7] = bad;
            count(expect_error::<T>(
                &format!("signs[7] = {bad}"),
                out,
                of,
                inf,
                inf,
                &Rotation::Hadamard(HadamardRotation {
                    n: 16,
                    layout: HadamardLayout::MatmulHadU,
                    signs: Some(&sb),
                    scale: 0.25,
                }),
                0,
                Status::InvalidArgument,
                &["signs[7]"],
            ));
        }
        count(expect_error::<T>(
            "15 signs for r = 16",
            out,
            of,
            inf,
            inf,
            &Rotation::Hadamard(HadamardRotation {
                n: 16,
                layout: HadamardLayout::MatmulHadU,
                signs: Some(&s[..15]),
                scale: 0.25,
            }),
            0,
            Status::InvalidArgument,
            &["signs"],
        ));
        // Non-finite or zero Hadamard scale.
        for scale in [f64::NAN, f64::INFINITY, 0.0] {
            count(expect_error::<T>(
                &format!("scale {scale}"),
                out,
                of,
                inf,
                inf,
                &Rotation::Hadamard(HadamardRotation {
                    n: 16,
                    layout: HadamardLayout::KronPow2K,
                    signs: None,
                    scale,
                }),
                0,
                Status::InvalidArgument,
                &["scale"],
            ));
        }
        // A weight slice shorter than the matrix.
        {
            let w: Vec<T> = random_weights(of * inf - 1, 4);
            let mut w2 = w.clone();
            let e = if out {
                rotate_out_channels(&mut w2, of, inf, inf, None, &d16, 0)
            } else {
                rotate_in_channels(&mut w2, of, inf, inf, &d16, 0)
            }
            .unwrap_err();
            assert_eq!(e.status, Status::InvalidArgument, "{e}");
            assert!(w2.iter().zip(&w).all(|(a, b)| a.bits() == b.bits()));
            count(e);
        }
        // Unsupported Hadamard width (50 = 25 * 2 divides 200; 25 needs K = 100, which needs 2^2).
        let (of2, inf2, dim2) = if out { (200, 8, "out") } else { (8, 200, "in") };
        let (below, above) = quarot::nearest_supported(50);
        let e = expect_error::<T>(
            &format!("Hadamard r = 50 ({dim2})"),
            out,
            of2,
            inf2,
            inf2,
            &Rotation::Hadamard(HadamardRotation {
                n: 50,
                layout: HadamardLayout::MatmulHadU,
                signs: None,
                scale: 0.1,
            }),
            0,
            Status::UnsupportedSize,
            &[
                "rotation_n = 50",
                &below.unwrap().to_string(),
                &above.unwrap().to_string(),
            ],
        );
        count(e);
    }
    // A bias shorter than out_features.
    {
        let w: Vec<T> = random_weights(32 * 8, 4);
        let b: Vec<T> = random_weights(31, 5);
        let (mut w2, mut b2) = (w.clone(), b.clone());
        let e = rotate_out_channels(&mut w2, 32, 8, 8, Some(&mut b2), &d16, 0).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{e}");
        assert!(e.message.contains("bias"), "{}", e.message);
        assert!(w2.iter().zip(&w).all(|(a, b)| a.bits() == b.bits()));
        assert!(b2.iter().zip(&b).all(|(a, b)| a.bits() == b.bits()));
        count(e);
    }
    n
}

#[test]
fn errors_leave_weight_and_bias_unchanged() {
    let per_dtype = 2 * (5 + 1 + 5 + 3 + 1 + 4 + 1 + 3 + 1 + 1) + 1;
    assert_eq!(error_cases::<f32>(), per_dtype);
    assert_eq!(error_cases::<f16>(), per_dtype);
    assert_eq!(error_cases::<bf16>(), per_dtype);
}

/// hadamard_matrix refuses what it cannot build and leaves `out` alone.
#[test]
fn hadamard_matrix_errors() {
    let mut out = vec![5.0f64; 100 * 100];
    let cases: [(HadamardRotation<'_>, Status); 5] = [
        (
            HadamardRotation {
                n: 50, // 25 * 2: 25 needs K = 100 = 25 * 4
                layout: HadamardLayout::MatmulHadU,
                signs: None,
                scale: 0.1,
            },
            Status::UnsupportedSize,
        ),
        (
            HadamardRotation {
                n: 0, // no Hadamard matrix of width 0, as for the transforms
                layout: HadamardLayout::MatmulHadU,
                signs: None,
                scale: 0.1,
            },
            Status::UnsupportedSize,
        ),
        (
            HadamardRotation {
                n: 16,
                layout: HadamardLayout::MatmulHadU,
                signs: Some(&[1, -1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1][..]),
                scale: 0.25,
            },
            Status::InvalidArgument,
        ),
        (
            HadamardRotation {
                n: 16,
                layout: HadamardLayout::KronPow2K,
                signs: None,
                scale: f64::NAN,
            },
            Status::InvalidArgument,
        ),
        (
            HadamardRotation {
                n: 128, // needs 16384 values, out has 10000
                layout: HadamardLayout::KronPow2K,
                signs: None,
                scale: 1.0,
            },
            Status::InvalidArgument,
        ),
    ];
    for (h, status) in cases {
        let e = hadamard_matrix(&mut out, &h).unwrap_err();
        assert_eq!(e.status, status, "{h:?}: {e}");
        assert!(out.iter().all(|&v| v == 5.0), "{h:?}: out written");
    }
}
