//! The small SIMD vocabulary the kernels are written in, and its implementations.
//!
//! Kernels in `crate::kernel` are generic over [`Simd`] and marked `#[inline(always)]`;
//! each instruction-set entry point (`#[target_feature]`) instantiates them, so one
//! source yields the AVX-512, AVX2 and scalar code. Every operation is exact IEEE f32
//! arithmetic with one rounding, so all paths produce bit-identical results.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod scalar;

/// A vector of `LANES` f32 values and the operations the kernels need.
///
/// # Safety
/// Implementations may only be used inside a function compiled with (or running on a CPU
/// that has) the instruction set they are written for; pointers must be valid for
/// `LANES` elements.
pub(crate) trait Simd: Copy {
    const LANES: usize;
    const LOG2_LANES: u32;
    /// Rows of the register block of the K x K mixing kernel.
    const KMIX_MR: usize;
    type V: Copy;

    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `acc + h * a` where `h` is exactly +1 or -1 in every lane, so the product is exact
    /// and the result is the same as `acc + a` / `acc - a` (one rounding).
    unsafe fn add_signed(acc: Self::V, h: Self::V, a: Self::V) -> Self::V;
    /// One radix-2 Walsh-Hadamard stage between lanes i and i + 2^stage
    /// (stage < LOG2_LANES): lower lane gets a + b, upper lane a - b.
    unsafe fn stage_in_vector(v: Self::V, stage: u32) -> Self::V;

    unsafe fn load_f32(p: *const f32) -> Self::V;
    unsafe fn store_f32(p: *mut f32, v: Self::V);
    unsafe fn load_f16(p: *const u16) -> Self::V;
    unsafe fn store_f16(p: *mut u16, v: Self::V);
    unsafe fn load_bf16(p: *const u16) -> Self::V;
    unsafe fn store_bf16(p: *mut u16, v: Self::V);
}

use crate::element::{DType, Element};

/// Load `S::LANES` elements of type `T`, widened to f32.
#[inline(always)]
pub(crate) unsafe fn load<S: Simd, T: Element>(p: *const T) -> S::V {
    // SAFETY: the caller guarantees p is valid for LANES elements of T; T's layout is
    // f32 or a transparent u16 as its DTYPE says.
    unsafe {
        match T::DTYPE {
            DType::F32 => S::load_f32(p.cast()),
            DType::F16 => S::load_f16(p.cast()),
            DType::Bf16 => S::load_bf16(p.cast()),
        }
    }
}

/// Store `S::LANES` f32 values as elements of type `T` (rounded once, to nearest even).
#[inline(always)]
pub(crate) unsafe fn store<S: Simd, T: Element>(p: *mut T, v: S::V) {
    // SAFETY: as for `load`.
    unsafe {
        match T::DTYPE {
            DType::F32 => S::store_f32(p.cast(), v),
            DType::F16 => S::store_f16(p.cast(), v),
            DType::Bf16 => S::store_bf16(p.cast(), v),
        }
    }
}
