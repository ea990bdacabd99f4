//! One-lane "vectors": the portable fallback, and the reference for the other paths.

use super::Simd;
use half::{bf16, f16};

#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    const LOG2_LANES: u32 = 0;
    const KMIX_MR: usize = 4;
    type V = f32;

    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn add_signed(acc: f32, h: f32, a: f32) -> f32 {
        // h * a is exact (h = +-1); not mul_add, which is a slow libm call without FMA.
        acc + h * a
    }
    #[inline(always)]
    unsafe fn stage_in_vector(_v: f32, _stage: u32) -> f32 {
        unreachable!("a one-lane vector has no in-vector stage")
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> f32 {
        unsafe { p.read() }
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: f32) {
        unsafe { p.write(v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> f32 {
        f16::from_bits(unsafe { p.read() }).to_f32()
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut u16, v: f32) {
        unsafe { p.write(f16::from_f32(v).to_bits()) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> f32 {
        bf16::from_bits(unsafe { p.read() }).to_f32()
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: f32) {
        unsafe { p.write(bf16::from_f32(v).to_bits()) }
    }
}
