//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod shared_lib;

use quarot::Isa;

/// A deterministic pseudo-random row: N(0,1)-ish values with a few large outliers.
pub fn rng_row(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let u: f64 = (0..4).map(|_| next()).sum::<f64>() - 2.0;
            let v = u * 1.7;
            (if i % 61 == 7 { v * 100.0 } else { v }) as f32
        })
        .collect()
}

/// A value no transform produces from our inputs, for the gaps between rows.
pub fn sentinel_f32() -> f32 {
    f32::from_bits(0x7fc0_1234)
}

/// `QUAROT_TEST_REQUIRE_ISA=avx512,avx2` makes the tests fail unless those instruction
/// sets are detected, so CI cannot silently test only the fallback.
pub fn require_isas_from_env(available: &[Isa]) {
    if let Ok(list) = std::env::var("QUAROT_TEST_REQUIRE_ISA") {
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let isa = Isa::ALL
                .into_iter()
                .find(|i| i.name() == name)
                .unwrap_or_else(|| panic!("QUAROT_TEST_REQUIRE_ISA names unknown set {name:?}"));
            assert!(
                available.contains(&isa),
                "QUAROT_TEST_REQUIRE_ISA requires {name}, which is not available here"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers for the reference-vector tests (quark_reference, k_tables, f64_reference).
// ---------------------------------------------------------------------------------------

/// The instruction sets this CPU can run (honouring `QUAROT_TEST_REQUIRE_ISA`).
pub fn available_isas() -> Vec<Isa> {
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    assert!(
        isas.contains(&Isa::Scalar),
        "the scalar path must always be available"
    );
    require_isas_from_env(&isas);
    isas
}

/// The folder of the real AMD Quark reference vectors.
pub fn reference_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference"))
}

/// The raw bytes of one reference file (panics with the path if it cannot be read).
pub fn read_reference_bytes(file: &str) -> Vec<u8> {
    let path = reference_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn chunks_le<const W: usize>(file: &str, bytes: &[u8]) -> Vec<[u8; W]> {
    assert_eq!(
        bytes.len() % W,
        0,
        "{file}: {} bytes is not a multiple of {W}",
        bytes.len()
    );
    bytes
        .chunks_exact(W)
        .map(|c| c.try_into().unwrap())
        .collect()
}

/// A little-endian f32 file.
pub fn read_reference_f32(file: &str) -> Vec<f32> {
    let b = read_reference_bytes(file);
    chunks_le::<4>(file, &b)
        .into_iter()
        .map(f32::from_le_bytes)
        .collect()
}

/// A little-endian f64 file.
pub fn read_reference_f64(file: &str) -> Vec<f64> {
    let b = read_reference_bytes(file);
    chunks_le::<8>(file, &b)
        .into_iter()
        .map(f64::from_le_bytes)
        .collect()
}

/// A little-endian u16 file (raw f16 or bf16 bit patterns).
pub fn read_reference_u16(file: &str) -> Vec<u16> {
    let b = read_reference_bytes(file);
    chunks_le::<2>(file, &b)
        .into_iter()
        .map(u16::from_le_bytes)
        .collect()
}

/// An i8 file.
pub fn read_reference_i8(file: &str) -> Vec<i8> {
    read_reference_bytes(file)
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

/// The K values of the Hadamard tables (Quark's eleven plus SpinQuant's 44).
pub const TABLE_KS: [usize; 12] = [12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172];

/// The reference file holding H_K.
pub fn k_matrix_file(k: usize) -> String {
    if k == 44 {
        "had44_spinquant.bin".to_string()
    } else {
        format!("had{k}.bin")
    }
}

/// H_K (row-major, +-1) read from the reference files; [1] for K = 1.
pub fn reference_k_matrix(k: usize) -> Vec<i8> {
    if k == 1 {
        return vec![1];
    }
    let file = k_matrix_file(k);
    let h = read_reference_i8(&file);
    assert_eq!(h.len(), k * k, "{file}: expected {k}x{k} entries");
    assert!(
        h.iter().all(|&v| v == 1 || v == -1),
        "{file}: entries must be +-1"
    );
    h
}

/// The K that Quark 0.13 picks for width n (power of two -> 1, then the first of
/// 172, 156, 140, 108, 60, 52, 40, 36, 28, 20, 12 dividing n with a power-of-two quotient),
/// extended with SpinQuant's 44 as a last resort. Written from the README, independently
/// of the library's own order.
pub fn expected_k(n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    if n.is_power_of_two() {
        return Some(1);
    }
    [172, 156, 140, 108, 60, 52, 40, 36, 28, 20, 12, 44]
        .into_iter()
        .find(|&k| n.is_multiple_of(k) && (n / k).is_power_of_two())
}

/// Sylvester-Hadamard transform (natural order, unnormalised) of every contiguous
/// `m`-long segment of `x`, in f64: y[j] = sum_l (-1)^popcount(j & l) x[l].
pub fn f64_wht_segments(x: &mut [f64], m: usize) {
    assert!(m.is_power_of_two() && x.len().is_multiple_of(m));
    for seg in x.chunks_mut(m) {
        let mut h = 1;
        while h < m {
            for block in seg.chunks_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*a, *b);
                    *a = u + v;
                    *b = u - v;
                }
            }
            h *= 2;
        }
    }
}

/// The plain f64 definition `y = scale * (H_K kron H_m) x` for one row of n = K*m values,
/// with `hk` the K x K matrix (row-major, +-1) and `transpose` selecting H_K^T.
/// Element t = i*m + j of x is row i, column j of a K x m matrix.
pub fn f64_hadamard_row(x: &[f64], k: usize, hk: &[i8], transpose: bool, scale: f64) -> Vec<f64> {
    let n = x.len();
    assert!(n.is_multiple_of(k));
    assert_eq!(hk.len(), k * k);
    let m = n / k;
    let mut a = x.to_vec();
    f64_wht_segments(&mut a, m);
    let mut y = vec![0.0f64; n];
    if k == 1 {
        y.copy_from_slice(&a);
    } else {
        for i in 0..k {
            let out = &mut y[i * m..(i + 1) * m];
            for kk in 0..k {
                let h = if transpose {
                    hk[kk * k + i]
                } else {
                    hk[i * k + kk]
                };
                let seg = &a[kk * m..(kk + 1) * m];
                if h > 0 {
                    out.iter_mut().zip(seg).for_each(|(o, s)| *o += s);
                } else {
                    out.iter_mut().zip(seg).for_each(|(o, s)| *o -= s);
                }
            }
        }
    }
    y.iter_mut().for_each(|v| *v *= scale);
    y
}

/// The f64 definition of the pad-truncate mode (Quark <= 0.10 `hadamard_transform`):
/// zero-pad the row to the next power of two P, apply H_P, keep the first n, times scale.
pub fn f64_pad_truncate_row(x: &[f64], scale: f64) -> Vec<f64> {
    let n = x.len();
    let p = n.next_power_of_two();
    let mut a = x.to_vec();
    a.resize(p, 0.0);
    f64_wht_segments(&mut a, p);
    a.truncate(n);
    a.iter_mut().for_each(|v| *v *= scale);
    a
}

/// Round an f64 once, to nearest even, to a binary format with `mbits` stored mantissa
/// bits, minimum normal exponent `emin` and exponent bias `bias` (f16: 10, -14, 15;
/// bf16: 7, -126, 127); returns the 16-bit pattern.
fn round_f64_to_16(v: f64, mbits: u32, emin: i32, bias: i32) -> u16 {
    let exp_bits = 15 - mbits;
    let inf: u32 = ((1u32 << exp_bits) - 1) << mbits;
    let sign: u32 = if v.is_sign_negative() { 0x8000 } else { 0 };
    if v.is_nan() {
        return (sign | inf | (1 << (mbits - 1))) as u16;
    }
    let a = v.abs();
    if a.is_infinite() {
        return (sign | inf) as u16;
    }
    if a == 0.0 || a < f64::MIN_POSITIVE {
        // f64 subnormals are far below half the smallest 16-bit subnormal.
        return sign as u16;
    }
    let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023; // floor(log2 a) for normal a
    let eq = e.max(emin);
    let q = eq - mbits as i32; // exponent of one unit in the last place
    let t = a * 2f64.powi(-q); // exact: a power-of-two scaling, no overflow here
    let r = t.round_ties_even() as u32; // < 2^(mbits + 1) + 1
    let bits = if e < emin {
        r // subnormal (r == 2^mbits is the smallest normal, which encodes the same way)
    } else {
        (((eq + bias) as u32) << mbits) + (r - (1 << mbits)) // a carry bumps the exponent
    };
    (sign | bits.min(inf)) as u16
}

/// `v` rounded once (to nearest even) to IEEE binary16, as a bit pattern.
pub fn f64_to_f16_bits(v: f64) -> u16 {
    round_f64_to_16(v, 10, -14, 15)
}

/// `v` rounded once (to nearest even) to bfloat16, as a bit pattern.
pub fn f64_to_bf16_bits(v: f64) -> u16 {
    round_f64_to_16(v, 7, -126, 127)
}

/// Distance in units in the last place between two finite 16-bit float patterns
/// (sign-magnitude mapped to ordered integers, so +0 and -0 are 0 apart).
pub fn ulp_distance_16(a: u16, b: u16) -> u32 {
    let ord = |x: u16| -> i32 {
        let mag = (x & 0x7fff) as i32;
        if x & 0x8000 != 0 {
            -mag
        } else {
            mag
        }
    };
    (ord(a) - ord(b)).unsigned_abs()
}

/// Whether a 16-bit pattern (f16 when `is_f16`, else bf16) is a NaN.
pub fn is_nan_16(bits: u16, is_f16: bool) -> bool {
    let (exp_mask, man_mask) = if is_f16 {
        (0x7c00, 0x03ff)
    } else {
        (0x7f80, 0x007f)
    };
    bits & exp_mask == exp_mask && bits & man_mask != 0
}

// ---------------------------------------------------------------------------------------
// Helpers for the weight-rotation tests (rotate_reference, rotate_properties).
// ---------------------------------------------------------------------------------------

/// The case list of ../shared/reference/manifest.json (a JSON list of objects).
pub fn load_reference_manifest() -> Vec<serde_json::Value> {
    let path = reference_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).expect("manifest.json is not valid JSON");
    v.as_array().expect("manifest.json is a list").clone()
}

/// Distance in units in the last place between two finite f32 values (sign-magnitude
/// mapped to ordered integers, so +0 and -0 are 0 apart).
pub fn ulp_distance_f32(a: f32, b: f32) -> u64 {
    let ord = |x: f32| -> i64 {
        let bits = x.to_bits();
        let mag = (bits & 0x7fff_ffff) as i64;
        if bits & 0x8000_0000 != 0 {
            -mag
        } else {
            mag
        }
    };
    (ord(a) - ord(b)).unsigned_abs()
}

/// Distance in units in the last place between two finite f64 values (as
/// [`ulp_distance_f32`]).
pub fn ulp_distance_f64(a: f64, b: f64) -> u64 {
    let ord = |x: f64| -> i128 {
        let bits = x.to_bits();
        let mag = (bits & 0x7fff_ffff_ffff_ffff) as i128;
        if bits & 0x8000_0000_0000_0000 != 0 {
            -mag
        } else {
            mag
        }
    };
    (ord(a) - ord(b)).unsigned_abs() as u64
}

/// A deterministic stream of f64 in [-1, 1) (SplitMix64), for test inputs.
pub struct TestRng(u64);

impl TestRng {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Roughly N(0, 1) (sum of four uniforms, rescaled).
    pub fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() * 0.866
    }
}
