//! The Hadamard rotations of weight rotation, applied to one f64 row without forming the
//! n x n matrix: x -> x * R for the layouts Quark builds R in.

use super::fwht64::{fwht, F64Lanes, Scalar};
use crate::hadamard::HadamardPlan;

/// How a Hadamard rotation matrix R (n = K * 2^m) is laid out. Shared with C as
/// `quarot_hadamard_layout`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HadamardLayout {
    /// R = kron(H_K, H_{2^m})^T * scale: the matrix of Quark <= 0.10 `matmul_hadU`
    /// (x * R = matmul_hadU(x)) and of its `random_hadamard_matrix` (with signs).
    MatmulHadU = 0,
    /// R = kron(H_K, H_{2^m}) * scale: Quark >= 0.11 `matmul_hadU` / `random_hadamard_matrix`
    /// and `get_rotation_matrix(n, random=False)`.
    MatmulHadUTransposed = 1,
    /// R = kron(H_{2^m}, H_K) * scale: Quark <= 0.10 `get_rotation_matrix(n, random=False)`.
    KronPow2K = 2,
}

impl HadamardLayout {
    /// The layout with raw value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<HadamardLayout> {
        match code {
            0 => Some(HadamardLayout::MatmulHadU),
            1 => Some(HadamardLayout::MatmulHadUTransposed),
            2 => Some(HadamardLayout::KronPow2K),
            _ => None,
        }
    }
}

/// A Hadamard rotation R = diag(signs) * M_layout * scale of size n.
#[derive(Clone, Copy, Debug)]
pub struct HadamardRotation<'a> {
    /// Size n (K * 2^m for a supported K).
    pub n: usize,
    /// Layout of M.
    pub layout: HadamardLayout,
    /// Optional +-1 row signs (Quark's `random_hadamard_matrix`); length n.
    pub signs: Option<&'a [i8]>,
    /// The scale: 1/sqrt(n) for `get_rotation_matrix`, 1/(double)sqrtf(n) for Quark's
    /// `matmul_hadU`-based matrices (see `quark_hadamard_scale`).
    pub scale: f64,
}

/// 1 / (double) f32(sqrt(n)): the normalization Quark's `matmul_hadU` and
/// `random_hadamard_matrix` use (they divide by the float32 square root).
pub fn quark_hadamard_scale(n: usize) -> f64 {
    1.0 / f64::from((n as f32).sqrt())
}

/// Row x (length n, f64) -> x * R, in place; `tmp` has at least n values. Portable code
/// (the matrix generators use it); the rotation path uses [`transform_row`] with the
/// signs and the scale folded into its loads and stores.
pub(crate) fn rotate_row(
    rot: &HadamardRotation<'_>,
    plan: &HadamardPlan,
    x: &mut [f64],
    tmp: &mut [f64],
    k_table: &[f64],
) {
    if let Some(s) = rot.signs {
        for (v, &s) in x.iter_mut().zip(s) {
            *v *= f64::from(s);
        }
    }
    // SAFETY: the scalar path runs on any CPU.
    unsafe { transform_row::<Scalar>(rot.layout, plan, x, tmp, k_table) };
    for v in x.iter_mut() {
        *v *= rot.scale;
    }
}

/// Row x (length n = K * 2^m) -> x * M_layout (unnormalized, no signs), in place; `tmp`
/// has at least n values; `k_table` is H_K as f64 (empty when K = 1).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn transform_row<V: F64Lanes>(
    layout: HadamardLayout,
    plan: &HadamardPlan,
    x: &mut [f64],
    tmp: &mut [f64],
    k_table: &[f64],
) {
    let n = x.len();
    let k = plan.k();
    let m = n / k;
    // SAFETY (each call): forwarded.
    unsafe {
        match layout {
            // x * kron(H_K, H_m)^T = (kron(H_K, H_m) x^T)^T: rows of m, then H_K across rows.
            HadamardLayout::MatmulHadU => transform_km::<V>(x, tmp, k, m, k_table, false),
            HadamardLayout::MatmulHadUTransposed => transform_km::<V>(x, tmp, k, m, k_table, true),
            // x * kron(H_m, H_K): view x as m x K (X); result H_m X H_K = (H_K^T X^T H_m)^T,
            // so transpose to K x m, transform with H_K^T, transpose back.
            HadamardLayout::KronPow2K => {
                let t = &mut tmp[..n];
                transpose(x, t, m, k);
                transform_km::<V>(t, x, k, m, k_table, true);
                transpose(t, x, k, m);
            }
        }
    }
}

/// dst (cols x rows) = src (rows x cols)^T, both row-major.
#[inline(always)]
fn transpose(src: &[f64], dst: &mut [f64], rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// x (K x m, row-major) -> H' x H_m, H' = H_K or H_K^T; `tmp` is scratch of K * m.
#[inline(always)]
unsafe fn transform_km<V: F64Lanes>(
    x: &mut [f64],
    tmp: &mut [f64],
    k: usize,
    m: usize,
    k_table: &[f64],
    transpose_k: bool,
) {
    for seg in x.chunks_exact_mut(m) {
        // SAFETY: forwarded.
        unsafe { fwht::<V>(seg) };
    }
    if k == 1 {
        return;
    }
    let out = &mut tmp[..k * m];
    out.fill(0.0);
    for i in 0..k {
        let o = &mut out[i * m..(i + 1) * m];
        for kk in 0..k {
            let h = if transpose_k {
                k_table[kk * k + i]
            } else {
                k_table[i * k + kk]
            };
            let a = &x[kk * m..(kk + 1) * m];
            if h > 0.0 {
                for (o, a) in o.iter_mut().zip(a) {
                    *o += a;
                }
            } else {
                for (o, a) in o.iter_mut().zip(a) {
                    *o -= a;
                }
            }
        }
    }
    x.copy_from_slice(out);
}
