//! 16-lane vectors for CPUs with AVX-512F (the kernels also use AVX2 for 8-wide tails).

use super::Simd;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(crate) struct Avx512;

/// +1 in the lanes that receive a + b, -1 in the lanes that receive a - b, per stage.
static STAGE_SIGNS: [[f32; 16]; 4] = {
    let mut t = [[0.0f32; 16]; 4];
    let mut s = 0;
    while s < 4 {
        let mut i = 0;
        while i < 16 {
            t[s][i] = if i & (1 << s) == 0 { 1.0 } else { -1.0 };
            i += 1;
        }
        s += 1;
    }
    t
};

impl Simd for Avx512 {
    const LANES: usize = 16;
    const LOG2_LANES: u32 = 4;
    const KMIX_MR: usize = 8;
    type V = __m512;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add_signed(acc: __m512, h: __m512, a: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(h, a, acc) }
    }
    #[inline(always)]
    unsafe fn stage_in_vector(v: __m512, stage: u32) -> __m512 {
        unsafe {
            let partner = match stage {
                0 => _mm512_permute_ps::<0xB1>(v),
                1 => _mm512_permute_ps::<0x4E>(v),
                2 => _mm512_shuffle_f32x4::<0xB1>(v, v),
                _ => _mm512_shuffle_f32x4::<0x4E>(v, v),
            };
            let sign = _mm512_loadu_ps(STAGE_SIGNS[stage as usize].as_ptr());
            // lower lane: v + partner = a + b; upper lane: partner - v = a - b.
            _mm512_fmadd_ps(v, sign, partner)
        }
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut u16, v: __m512) {
        unsafe {
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm256_storeu_si256(p.cast(), h)
        }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m512 {
        unsafe {
            let w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: __m512) {
        // Round to nearest even with integer ops (VCVTNEPS2BF16 would flush denormals),
        // quiet NaNs, then narrow 32 -> 16 bits (VPMOVDW).
        unsafe {
            let bits = _mm512_castps_si512(v);
            let hi = _mm512_srli_epi32::<16>(bits);
            let lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
            let rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
            let rounded = _mm512_srli_epi32::<16>(rounded);
            let quiet_nan = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
            let is_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let r = _mm512_mask_blend_epi32(is_nan, rounded, quiet_nan);
            _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(r))
        }
    }
}
