//! 8-lane vectors for CPUs with AVX2, FMA and F16C (Haswell and later, every AVX-512 CPU).

use super::Simd;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(crate) struct Avx2;

/// +1 in the lanes that receive a + b, -1 in the lanes that receive a - b, per stage.
static STAGE_SIGNS: [[f32; 8]; 3] = [
    [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0],
    [1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0],
    [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0],
];

/// f32 -> bf16 bit patterns (in the low half of each 32-bit lane), round to nearest even,
/// NaN kept quiet. Done with integer ops on purpose: VCVTNEPS2BF16 flushes denormals.
#[inline(always)]
unsafe fn bf16_bits(v: __m256) -> __m256i {
    unsafe {
        let bits = _mm256_castps_si256(v);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
        let rounded = _mm256_srli_epi32::<16>(rounded);
        let quiet_nan = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
        let is_nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        _mm256_blendv_epi8(rounded, quiet_nan, is_nan)
    }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const LOG2_LANES: u32 = 3;
    const KMIX_MR: usize = 4;
    type V = __m256;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add_signed(acc: __m256, h: __m256, a: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(h, a, acc) }
    }
    #[inline(always)]
    unsafe fn stage_in_vector(v: __m256, stage: u32) -> __m256 {
        unsafe {
            let partner = match stage {
                0 => _mm256_permute_ps::<0xB1>(v),
                1 => _mm256_permute_ps::<0x4E>(v),
                _ => _mm256_permute2f128_ps::<0x01>(v, v),
            };
            let sign = _mm256_loadu_ps(STAGE_SIGNS[stage as usize].as_ptr());
            // lower lane: v + partner = a + b; upper lane: partner - v = a - b.
            _mm256_fmadd_ps(v, sign, partner)
        }
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut u16, v: __m256) {
        unsafe { _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m256 {
        unsafe {
            let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: __m256) {
        unsafe {
            let b = bf16_bits(v);
            let packed =
                _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
            _mm_storeu_si128(p.cast(), packed)
        }
    }
}
