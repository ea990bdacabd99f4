//! The f64 definition every result is checked against (untimed, once per implementation
//! and case), and the tolerance.
//!
//! `reference(x)` = `(H_K ⊗ H_{2^m}) x / sqrt(n)`: x viewed as K rows of 2^m, the natural-
//! order Sylvester transform of each row, then H_K (libquarot's table, bit-identical to
//! Quark's) across the rows, times the exact 1/sqrt(n). Peers are brought to this
//! convention before the comparison: FFHT and fht-cpu compute `H_n x` (unnormalized), so
//! their output is divided by sqrt(n) in f64; ggml's FWHT already scales by 1/sqrtf(n).

use quarot::hadamard::k_matrix;
use quarot::{hadamard_k, DType};

/// The unnormalized natural-order Sylvester transform `H_m x` of a power-of-two-long x.
pub fn sylvester(x: &mut [f64]) {
    let m = x.len();
    let mut h = 1;
    while h < m {
        for b in x.chunks_mut(2 * h) {
            let (lo, hi) = b.split_at_mut(h);
            for (p, q) in lo.iter_mut().zip(hi) {
                let (a, c) = (*p, *q);
                *p = a + c;
                *q = a - c;
            }
        }
        h *= 2;
    }
}

/// `(H_K ⊗ H_{2^m}) x / sqrt(n)` in f64 (K as libquarot / QuaRot choose it for n = x.len()).
pub fn reference(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let k = hadamard_k(n).expect("supported width");
    let m = n / k;
    let mut v = x.to_vec();
    for seg in v.chunks_mut(m) {
        sylvester(seg);
    }
    if k > 1 {
        let hk = k_matrix(k).expect("table K");
        v = (0..n)
            .map(|t| {
                (0..k)
                    .map(|kk| f64::from(hk[(t / m) * k + kk]) * v[kk * m + t % m])
                    .sum()
            })
            .collect();
    }
    let s = 1.0 / (n as f64).sqrt();
    v.iter().map(|y| y * s).collect()
}

/// Half the spacing of `dtype`'s values at |y| (0 for f32): the output rounding allowance.
pub fn half_ulp(dtype: DType, y: f64) -> f64 {
    let e = y.abs().max(f64::MIN_POSITIVE).log2().floor();
    match dtype {
        DType::F32 => 0.0,
        DType::F16 => 0.5 * (e.max(-14.0) - 10.0).exp2(),
        DType::Bf16 => 0.5 * (e - 7.0).exp2(),
    }
}

/// Relative tolerance (of max|y| of the row) beyond the output rounding: f32 arithmetic
/// through log2(n) butterfly levels (and a K-term sum) stays far below it; a wrong order,
/// sign or scale is far above it.
pub const REL_TOL: f64 = 1e-5;

/// Compare one row: `got` (already in the normalized convention, as f64), `want` =
/// [`reference`] of the row's input, the output element type `out`. Returns the worst
/// error beyond the output rounding, relative to max|want|, or what failed.
pub fn check_row(got: &[f64], want: &[f64], out: DType) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    let ymax = want
        .iter()
        .fold(0f64, |a, v| a.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let mut worst = 0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let hu = half_ulp(out, *w);
        if !err.is_finite() || err > REL_TOL * ymax + hu * (1.0 + 1e-6) {
            return Err(format!(
                "element {i}: {g} vs {w} (|err| {err:.3e} > {REL_TOL:e} * max|y| {ymax:.3e} + half ulp)"
            ));
        }
        worst = worst.max((err - hu).max(0.0) / ymax);
    }
    Ok(worst)
}
