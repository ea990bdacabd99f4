//! The vector vocabulary of the GEMM micro-kernels, per instruction set and element type.
//!
//! A micro-kernel (`super::kernel::micro`) is written once over [`Lanes`] and instantiated
//! inside the `#[target_feature]` entry points of `super`, so one source yields the AVX-512,
//! AVX2 and scalar code for f32 and for f64.

use super::Real;

/// A vector of `LANES` values of `F` and the few operations a micro-kernel needs.
///
/// # Safety
/// Implementations may only be used inside a function compiled with (or running on a CPU
/// that has) the instruction set they are written for; pointers must be valid for `LANES`
/// elements (one element for `fma_bcast`'s `a`).
pub(crate) trait Lanes<F: Real>: Copy {
    const LANES: usize;
    type V: Copy;

    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const F) -> Self::V;
    unsafe fn store(p: *mut F, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `acc + (*a) * b` in every lane, with one rounding (fused multiply-add).
    unsafe fn fma_bcast(acc: Self::V, a: *const F, b: Self::V) -> Self::V;
    /// Hint that the cache line holding `p` will be read soon (no-op where unsupported).
    #[inline(always)]
    unsafe fn prefetch(_p: *const F) {}
    /// Hint that the cache line holding `p` will be read later: fetch it into L2 only.
    #[inline(always)]
    unsafe fn prefetch_l2(_p: *const F) {}
}

/// One-lane "vectors": the portable kernels.
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl<F: Real> Lanes<F> for Scalar {
    const LANES: usize = 1;
    type V = F;

    #[inline(always)]
    unsafe fn zero() -> F {
        F::ZERO
    }
    #[inline(always)]
    unsafe fn load(p: *const F) -> F {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut F, v: F) {
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn add(a: F, b: F) -> F {
        a.add(b)
    }
    #[inline(always)]
    unsafe fn fma_bcast(acc: F, a: *const F, b: F) -> F {
        unsafe { (*a).mul_add(b, acc) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use core::arch::x86_64::*;

    /// 256-bit vectors (AVX2 + FMA).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// 512-bit vectors (AVX-512F).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    macro_rules! lanes_impl {
        ($isa:ty, $f:ty, $lanes:expr, $v:ty, $zero:ident, $load:ident, $store:ident,
         $add:ident, $set1:ident, $fmadd:ident) => {
            impl Lanes<$f> for $isa {
                const LANES: usize = $lanes;
                type V = $v;

                #[inline(always)]
                unsafe fn zero() -> $v {
                    unsafe { $zero() }
                }
                #[inline(always)]
                unsafe fn load(p: *const $f) -> $v {
                    unsafe { $load(p) }
                }
                #[inline(always)]
                unsafe fn store(p: *mut $f, v: $v) {
                    unsafe { $store(p, v) }
                }
                #[inline(always)]
                unsafe fn add(a: $v, b: $v) -> $v {
                    unsafe { $add(a, b) }
                }
                #[inline(always)]
                unsafe fn fma_bcast(acc: $v, a: *const $f, b: $v) -> $v {
                    unsafe { $fmadd($set1(*a), b, acc) }
                }
                #[inline(always)]
                unsafe fn prefetch(p: *const $f) {
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
                }
                #[inline(always)]
                unsafe fn prefetch_l2(p: *const $f) {
                    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
                }
            }
        };
    }

    lanes_impl!(
        Avx512,
        f32,
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_add_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
    lanes_impl!(
        Avx512,
        f64,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_add_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd
    );
    lanes_impl!(
        Avx2,
        f32,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_add_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    );
    lanes_impl!(
        Avx2,
        f64,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_add_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd
    );
}
