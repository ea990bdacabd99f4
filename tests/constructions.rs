//! Widths beyond QuaRot's table (issue 6): the Paley constructions, the choice of K, the
//! transform and the handles on the new widths, and the block-diagonal mode.
//!
//! - every constructed H_K (K <= 1024) satisfies H H^T = K I in exact integer arithmetic;
//! - every constructed H_K equals the one an independent implementation of the README's
//!   specification (tools/paley.py, Python) builds;
//! - QuaRot's widths keep QuaRot's K and matrices; the K chosen for real model widths;
//! - the transform on new widths, every ISA, against an f64 evaluation (f32), 16-bit outputs
//!   the f32 result rounded once;
//! - R4Wrapper and the weight rotation take the new widths;
//! - FLAG_BLOCK_DIAGONAL: per-block transforms, errors, scale.

mod common;

use common::{available_isas, f64_hadamard_row, reference_k_matrix, rng_row, TABLE_KS};
use half::{bf16, f16};
use quarot::hadamard::construct::{construction, Construction, MAX_CONSTRUCTED_K};
use quarot::hadamard::{hadamard_rows_into_isa, hadamard_rows_isa, k_matrix};
use quarot::{
    block_size, hadamard_k, hadamard_rows, is_supported_k, nearest_supported, normalized_scale,
    HadamardPlan, Status, FLAG_BLOCK_DIAGONAL, FLAG_PAD_TRUNCATE, FLAG_TRANSPOSE_K,
};

/// Every K a construction gives that is not in QuaRot's table (those keep QuaRot's).
fn constructed_ks() -> Vec<usize> {
    (4..=MAX_CONSTRUCTED_K)
        .step_by(4)
        .filter(|k| construction(*k).is_some() && !TABLE_KS.contains(k))
        .collect()
}

/// Rows of H as bit sets (bit set = -1).
fn bit_rows(h: &[i8], k: usize) -> Vec<Vec<u64>> {
    (0..k)
        .map(|i| {
            let mut w = vec![0u64; k.div_ceil(64)];
            for j in 0..k {
                match h[i * k + j] {
                    1 => {}
                    -1 => w[j / 64] |= 1 << (j % 64),
                    v => panic!("K = {k}: entry ({i}, {j}) = {v} is not +-1"),
                }
            }
            w
        })
        .collect()
}

#[test]
fn every_constructed_k_is_a_hadamard_matrix() {
    let ks = constructed_ks();
    // 125 orders <= 1024 have a Paley construction; 9 of them are in QuaRot's table.
    assert_eq!(ks.len(), 116, "{ks:?}");
    for &k in ks.iter().chain(TABLE_KS.iter()) {
        let h = k_matrix(k).unwrap_or_else(|| panic!("K = {k}: no matrix"));
        assert_eq!(h.len(), k * k);
        let rows = bit_rows(&h, k);
        // (H H^T)[i][j] = K - 2 * (number of positions where rows i and j differ), exact.
        for i in 0..k {
            for j in 0..k {
                let differ: u32 = rows[i]
                    .iter()
                    .zip(&rows[j])
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                let dot = k as i64 - 2 * i64::from(differ);
                let want = if i == j { k as i64 } else { 0 };
                assert_eq!(dot, want, "K = {k}: (H H^T)[{i}][{j}]");
            }
        }
    }
}

#[test]
fn constructions_follow_the_documented_rule() {
    assert_eq!(construction(68), Some(Construction::PaleyI { q: 67 }));
    assert_eq!(construction(76), Some(Construction::PaleyII { q: 37 }));
    assert_eq!(construction(100), Some(Construction::PaleyII { q: 49 }));
    assert_eq!(construction(244), Some(Construction::PaleyI { q: 243 }));
    assert_eq!(construction(924), Some(Construction::PaleyII { q: 461 }));
    // 92: 91 = 7 * 13 and 45 are not prime powers.
    assert_eq!(construction(92), None);
    // Powers of two are Sylvester's (the K = 1 path), never a construction.
    assert_eq!(construction(8), None);
    assert_eq!(construction(1028), None);
    assert!(!is_supported_k(92) && is_supported_k(68) && is_supported_k(172));
    assert!(k_matrix(92).is_none() && k_matrix(8).is_none());
}

#[test]
fn constructions_match_an_independent_implementation() {
    let ks = constructed_ks();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/paley.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(ks.iter().map(|k| k.to_string()))
        .output()
        .expect("python3 is needed for this test (README: it runs tools/paley.py)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), ks.len());
    for (line, &k) in lines.iter().zip(&ks) {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0], k.to_string());
        let want_name = match construction(k).expect("constructed") {
            Construction::PaleyI { q } => format!("paley1-q{q}"),
            Construction::PaleyII { q } => format!("paley2-q{q}"),
        };
        assert_eq!(f[1], want_name, "K = {k}");
        let h = k_matrix(k).expect("constructed");
        let bytes: Vec<u8> = (0..f[2].len() / 2)
            .map(|i| u8::from_str_radix(&f[2][2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        for (t, &v) in h.iter().enumerate() {
            let bit = bytes[t / 8] >> (7 - t % 8) & 1;
            assert_eq!(
                bit == 1,
                v < 0,
                "K = {k}: entry {t} differs from tools/paley.py"
            );
        }
    }
}

#[test]
fn quarot_widths_keep_quarot_matrices() {
    for k in TABLE_KS {
        assert_eq!(
            k_matrix(k).expect("table K"),
            reference_k_matrix(k),
            "K = {k}"
        );
    }
    // Every width QuaRot supports keeps its K (the rule re-derived from the README).
    for n in 1..=1usize << 16 {
        if let Some(k) = common::expected_k(n) {
            assert_eq!(hadamard_k(n), Some(k), "n = {n}");
        }
    }
}

#[test]
fn k_for_model_widths() {
    // (width, K): QuaRot's table where it applies, else the smallest constructed K.
    let cases = [
        (4096, Some(1)),
        (11008, Some(172)), // Llama 2 7B intermediate
        (14336, Some(28)),  // Llama 3 8B intermediate
        (8960, Some(140)),  // Qwen2 1.5B intermediate
        (4864, Some(76)),   // Qwen2.5 0.5B intermediate = 19 * 256
        (9728, Some(76)),   // Qwen2.5 3B intermediate = 19 * 512
        (17408, Some(68)),  // Qwen3 14B intermediate = 17 * 1024
        (25600, Some(100)), // Qwen3 32B intermediate = 25 * 1024 (GF(49))
        (18944, Some(148)), // Qwen2 7B intermediate = 37 * 512
        (29568, Some(924)), // Qwen2 72B intermediate = 231 * 128
        (10944, Some(684)), // DeepSeek-V2-Lite intermediate = 171 * 64
        (13696, None),      // ChatGLM 6B intermediate = 107 * 128
        (2, Some(1)),
        (6, None),
        (107, None),
    ];
    for (n, k) in cases {
        assert_eq!(hadamard_k(n), k, "n = {n}");
    }
    assert_eq!(block_size(13696), Some(128));
    assert_eq!(block_size(4864), Some(4864));
    assert_eq!(block_size(107), None);
    assert_eq!(block_size(0), None);
    // 6 = 3 * 2: only 2 divides it among supported widths.
    assert_eq!(block_size(6), Some(2));
    // Neighbours of 13696 (computed independently from the README's rule): 13568 =
    // 53 * 256 (K = 212, Paley II over GF(53)... 212 / 2 - 1 = 105 is not a prime power;
    // Paley I: 211 is prime = 3 mod 4) and 13760 = 215 * 64 (K = 860, Paley I, q = 859).
    let (below, above) = nearest_supported(13696);
    assert_eq!((below, above), (Some(13568), Some(13760)));
    assert_eq!(hadamard_k(13568), Some(212));
    assert_eq!(hadamard_k(13760), Some(860));
    assert_eq!(construction(212), Some(Construction::PaleyI { q: 211 }));
    assert_eq!(construction(860), Some(Construction::PaleyI { q: 859 }));
}

/// The new widths checked against the f64 definition with the library's (separately
/// validated) H_K: f32 within 2^-18 * max|y|, 16-bit outputs within 1 ulp.
#[test]
fn transform_new_widths_against_f64() {
    // K and m = n / K: wide and narrow segments (m = 1, 2, 4 use the narrow mix), large K.
    let widths = [
        68 * 16,
        76 * 64,
        100 * 256,
        148 * 128,
        684 * 16,
        924 * 32,
        244 * 4,
        340 * 8,
        100 * 2,
        580,
        724 * 4,
        68 * 1024,
    ];
    for &n in &widths {
        let k = hadamard_k(n).expect("supported");
        assert!(!TABLE_KS.contains(&k), "n = {n} should use a constructed K");
        let hk = k_matrix(k).expect("constructed");
        let rows = 3;
        let x = rng_row(rows * n, n as u64);
        for transpose in [false, true] {
            let flags = if transpose { FLAG_TRANSPOSE_K } else { 0 };
            let scale = normalized_scale(n);
            let want: Vec<Vec<f64>> = (0..rows)
                .map(|r| {
                    let xr: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
                    f64_hadamard_row(&xr, k, &hk, transpose, scale as f64)
                })
                .collect();
            for isa in available_isas() {
                let mut y = x.clone();
                hadamard_rows_isa(isa, &mut y, rows, n, n, scale, flags).expect("transform");
                for r in 0..rows {
                    let ymax = want[r].iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    for j in 0..n {
                        let err = (y[r * n + j] as f64 - want[r][j]).abs();
                        assert!(
                            err <= ymax / (1u64 << 18) as f64,
                            "n = {n} K = {k} {isa:?} transpose {transpose}: row {r} [{j}] {} vs {}",
                            y[r * n + j],
                            want[r][j]
                        );
                    }
                }
                // 16-bit outputs are the f32 result rounded once (checked above against
                // f64): f32 -> f16 src->dst, and bf16 in place (its widened input through
                // the f32 transform, rounded).
                let mut h16 = vec![f16::ZERO; rows * n];
                hadamard_rows_into_isa(isa, &x, n, &mut h16, n, rows, n, scale, flags)
                    .expect("f32 -> f16");
                let mut b16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
                let mut b32: Vec<f32> = b16.iter().map(|v| v.to_f32()).collect();
                hadamard_rows_isa(isa, &mut b16, rows, n, n, scale, flags).expect("bf16");
                hadamard_rows_isa(isa, &mut b32, rows, n, n, scale, flags).expect("f32");
                for t in 0..rows * n {
                    assert_eq!(
                        h16[t].to_bits(),
                        f16::from_f32(y[t]).to_bits(),
                        "n = {n} f16 [{t}]"
                    );
                    assert_eq!(
                        b16[t].to_bits(),
                        bf16::from_f32(b32[t]).to_bits(),
                        "n = {n} bf16 [{t}]"
                    );
                }
            }
        }
    }
}

#[test]
fn every_isa_gives_the_same_bits_on_new_widths() {
    for n in [76 * 64, 100 * 2, 148, 924 * 4, 340 * 32] {
        let x = rng_row(5 * n, 7 + n as u64);
        let mut first: Option<Vec<f32>> = None;
        for isa in available_isas() {
            let mut y = x.clone();
            hadamard_rows_isa(isa, &mut y, 5, n, n, normalized_scale(n), 0).expect("transform");
            match &first {
                None => first = Some(y),
                Some(f) => assert!(
                    f.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "n = {n}: {isa:?} differs from the first ISA"
                ),
            }
        }
    }
}

#[test]
fn unsupported_width_error_names_neighbours_and_block_mode() {
    let mut x = vec![1.0f32; 13696];
    let e = hadamard_rows(&mut x, 1, 13696, 13696, 1.0, 0).unwrap_err();
    assert_eq!(e.status, Status::UnsupportedSize);
    let msg = e.to_string();
    assert!(msg.contains("13568") && msg.contains("13760"), "{msg}");
    assert!(
        msg.contains("QUAROT_FLAG_BLOCK_DIAGONAL: 107 blocks of 128"),
        "{msg}"
    );
    assert!(x.iter().all(|&v| v == 1.0));
    // Odd widths: no block either.
    let mut y = vec![1.0f32; 107];
    let e = hadamard_rows(&mut y, 1, 107, 107, 1.0, FLAG_BLOCK_DIAGONAL).unwrap_err();
    assert_eq!(e.status, Status::UnsupportedSize, "{e}");
    let e = hadamard_rows(&mut y, 1, 107, 107, 1.0, 0).unwrap_err();
    assert!(!e.to_string().contains("BLOCK_DIAGONAL"), "{e}");
    // Not with pad-truncate.
    let e = hadamard_rows(
        &mut x,
        1,
        13696,
        13696,
        1.0,
        FLAG_BLOCK_DIAGONAL | FLAG_PAD_TRUNCATE,
    )
    .unwrap_err();
    assert_eq!(e.status, Status::InvalidFlags, "{e}");
    assert!(x.iter().all(|&v| v == 1.0));
}

/// block_size against its definition (the largest supported width dividing n) for every
/// n up to 2^14, and on widths near 2^64, whose odd parts have huge divisors: it must
/// return (the fuzzer found the first version scanning every odd divisor candidate up to
/// the odd part, which never finished there).
#[test]
fn block_size_is_the_largest_supported_divisor() {
    for n in 1..=(1usize << 14) {
        // n itself when supported (also n = 1), else the largest divisor above 1.
        let brute = (2..=n)
            .rev()
            .find(|&b| n % b == 0 && hadamard_k(b).is_some())
            .or((n == 1).then_some(1));
        assert_eq!(block_size(n), brute, "n = {n}");
    }
    for n in [
        usize::MAX - 1,
        usize::MAX / 2 - 1,
        (usize::MAX / 2 - 1) / 3 * 4,
        (1usize << 62) * 3,
        ((1usize << 61) - 1) * 4, // odd part a Mersenne prime
        (1usize << 40) * 172,
    ] {
        let b = block_size(n).expect("an even n has at least blocks of 2");
        assert!(n % b == 0 && hadamard_k(b).is_some(), "n = {n}: {b}");
        // No larger supported divisor with the same power of two (the odd part <= 1024).
        let tz = n.trailing_zeros();
        let odd = n >> tz;
        for o in ((b >> tz) + 1..=1024.min(odd)).filter(|o| o % 2 == 1 && odd % o == 0) {
            assert!(
                hadamard_k(o << tz).is_none(),
                "n = {n}: {} beats {b}",
                o << tz
            );
        }
    }
}

#[test]
fn block_diagonal_transforms_each_block() {
    // 13696 = 107 * 128: 107 blocks of 128. 4160 = 65 * 64 (65 = 5 * 13 has no K <= 1024):
    // 5 blocks of 832 = 13 * 64 (K = 52). 41088 = 321 * 128: 107 blocks of 384 (K = 12).
    // 1536 is supported: one block.
    for (n, b) in [
        (13696usize, 128usize),
        (4160, 832),
        (41088, 384),
        (1536, 1536),
    ] {
        assert_eq!(block_size(n), Some(b), "n = {n}");
        let plan = HadamardPlan::new(n, FLAG_BLOCK_DIAGONAL).expect("plan");
        assert_eq!((plan.n(), plan.width(), plan.blocks()), (b, n, n / b));
        let rows = 3;
        let stride = n + 5;
        let x = rng_row(rows * stride, n as u64 + 1);
        let scale = normalized_scale(b);
        for isa in available_isas() {
            for flags in [FLAG_BLOCK_DIAGONAL, FLAG_BLOCK_DIAGONAL | FLAG_TRANSPOSE_K] {
                // Strided rows (the gaps untouched) and contiguous rows.
                let mut y = x.clone();
                hadamard_rows_isa(isa, &mut y, rows, n, stride, scale, flags).expect("strided");
                let mut c: Vec<f32> = (0..rows)
                    .flat_map(|r| x[r * stride..r * stride + n].to_vec())
                    .collect();
                hadamard_rows_isa(isa, &mut c, rows, n, n, scale, flags).expect("contiguous");
                // The same as transforming every block as a row of width b.
                let mut w: Vec<f32> = c.clone();
                let mut blocks: Vec<f32> = (0..rows)
                    .flat_map(|r| x[r * stride..r * stride + n].to_vec())
                    .collect();
                hadamard_rows_isa(
                    isa,
                    &mut blocks,
                    rows * n / b,
                    b,
                    b,
                    scale,
                    flags & !FLAG_BLOCK_DIAGONAL,
                )
                .expect("blocks");
                w.copy_from_slice(&blocks);
                for r in 0..rows {
                    for j in 0..n {
                        assert_eq!(y[r * stride + j].to_bits(), w[r * n + j].to_bits());
                        assert_eq!(c[r * n + j].to_bits(), w[r * n + j].to_bits());
                    }
                    for j in n..stride {
                        if r * stride + j < y.len() {
                            assert_eq!(y[r * stride + j], x[r * stride + j], "gap touched");
                        }
                    }
                }
                // Orthogonal with scale 1/sqrt(b): norms kept.
                let norm = |v: &[f32]| v.iter().map(|&a| (a as f64).powi(2)).sum::<f64>();
                let (n0, n1) = (norm(&x[..n]), norm(&y[..n]));
                assert!((n0 - n1).abs() <= 1e-5 * n0, "{n0} vs {n1}");
            }
        }
    }
}

#[test]
fn handles_and_rotations_take_new_widths() {
    use quarot::online::{Quant, R4Wrapper};
    use quarot::rotate::{rotate_in_channels, HadamardLayout, HadamardRotation, Rotation};
    use quarot::DType;
    // R4Wrapper on 4864 = 76 * 64: the op sees the transform of the rows.
    let n = 4864;
    let w = R4Wrapper::new(n, 0, DType::F32, 0, Quant::None).expect("R4 on a new width");
    let mut x = rng_row(2 * n, 3);
    let mut want = x.clone();
    hadamard_rows(&mut want, 2, n, n, normalized_scale(n), 0).expect("transform");
    let mut seen = Vec::new();
    // SAFETY: x holds 2 rows of n f32.
    unsafe {
        w.forward(x.as_mut_ptr().cast(), 2, n, 0, None, &mut |v| {
            let s = std::slice::from_raw_parts(v.data.cast::<f32>(), v.rows * v.row_stride);
            seen = s.to_vec();
            0
        })
    }
    .expect("forward");
    assert!(seen
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // R4Wrapper with block-diagonal on 13696.
    let w = R4Wrapper::new(13696, 0, DType::F32, FLAG_BLOCK_DIAGONAL, Quant::None)
        .expect("R4 block-diagonal");
    let mut x = rng_row(13696, 4);
    let mut want = x.clone();
    hadamard_rows(&mut want, 107, 128, 128, normalized_scale(128), 0).expect("blocks");
    // SAFETY: x holds one row of 13696 f32.
    unsafe {
        w.forward(x.as_mut_ptr().cast(), 1, 13696, 0, None, &mut |v| {
            let s = std::slice::from_raw_parts(v.data.cast::<f32>(), v.n);
            assert!(s.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
            0
        })
    }
    .expect("forward");
    // Weight rotation with a Hadamard R of a new width (the f64 path) vs the dense R.
    let r = 76 * 4;
    let rot = HadamardRotation {
        n: r,
        layout: HadamardLayout::MatmulHadU,
        signs: None,
        scale: 1.0 / (r as f64).sqrt(),
    };
    let mut dense = vec![0.0f64; r * r];
    quarot::rotate::matrices::hadamard_matrix(&mut dense, &rot).expect("matrix");
    let wgt: Vec<f32> = rng_row(3 * r, 9);
    let mut a = wgt.clone();
    rotate_in_channels(&mut a, 3, r, r, &Rotation::Hadamard(rot), 0).expect("hadamard path");
    let mut b = wgt.clone();
    rotate_in_channels(
        &mut b,
        3,
        r,
        r,
        &Rotation::Dense {
            matrix: &dense,
            n: r,
        },
        0,
    )
    .expect("dense path");
    // Both paths compute in f64 and round once to f32: equal, or 1 ulp apart at most.
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= x.abs().max(y.abs()) * f32::EPSILON,
            "{x} vs {y}"
        );
    }
    // R R^T = I for the formed matrix.
    for i in 0..r {
        for j in 0..r {
            let d: f64 = (0..r).map(|t| dense[i * r + t] * dense[j * r + t]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-12, "R R^T [{i}][{j}] = {d}");
        }
    }
}
