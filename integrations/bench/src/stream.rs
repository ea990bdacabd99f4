//! The streaming bound: the cheapest pass over the bytes a transform reads and writes,
//! with the widest vectors the CPU has (AVX-512, else AVX2, else scalar code).
//!
//! - in place: f32 `x *= -1`, 16-bit `x ^= 0x8000` (a sign flip: the data stays bounded
//!   and normal however often it runs);
//! - src → dst, same type: `dst = -src` (f32) or `dst = src ^ 0x8000` (16-bit);
//! - 16-bit src → f32 dst: `dst = bits(src) << 16` as f32 (bf16's exact widening; for f16
//!   the same traffic, the values do not matter).
//!
//! The caller passes one row at a time for strided rows (the gaps are not touched), or the
//! whole buffer for contiguous rows.

use crate::{as_bits as as_u16, as_bits_mut as as_u16_mut, as_f32, as_f32_mut};
use quarot::{DType, Element};

#[derive(Clone, Copy, PartialEq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Level {
    Avx512,
    Avx2,
    Scalar,
}

fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// The instruction set the stream loops use here.
pub fn isa_name() -> &'static str {
    match level() {
        Level::Avx512 => "AVX-512",
        Level::Avx2 => "AVX2",
        Level::Scalar => "scalar",
    }
}

/// In-place pass over `x`.
pub fn inplace<T: Element>(x: &mut [T]) {
    if T::DTYPE == DType::F32 {
        inplace_f32(as_f32_mut(x));
    } else {
        inplace_u16(as_u16_mut(x));
    }
}

/// src → dst pass (`src.len() == dst.len()`): same type, or 16-bit → f32.
pub fn into<S: Element, D: Element>(src: &[S], dst: &mut [D]) {
    assert_eq!(src.len(), dst.len());
    match (S::DTYPE, D::DTYPE) {
        (DType::F32, DType::F32) => copy_f32(as_f32(src), as_f32_mut(dst)),
        (DType::F32, _) => panic!("stream: f32 -> 16-bit is not a case of this bench"),
        (_, DType::F32) => widen_u16(as_u16(src), as_f32_mut(dst)),
        _ => copy_u16(as_u16(src), as_u16_mut(dst)),
    }
}

fn inplace_f32(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the CPU has the instruction set of the variant called.
        Level::Avx512 => return unsafe { x86::inplace_f32_avx512(x) },
        Level::Avx2 => return unsafe { x86::inplace_f32_avx2(x) },
        Level::Scalar => {}
    }
    let s = std::hint::black_box(-1.0f32);
    for v in x {
        *v *= s;
    }
}

fn inplace_u16(x: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: as above.
        Level::Avx512 => return unsafe { x86::inplace_u16_avx512(x) },
        Level::Avx2 => return unsafe { x86::inplace_u16_avx2(x) },
        Level::Scalar => {}
    }
    let m = std::hint::black_box(0x8000u16);
    for v in x {
        *v ^= m;
    }
}

fn copy_f32(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: as above.
        Level::Avx512 => return unsafe { x86::copy_f32_avx512(src, dst) },
        Level::Avx2 => return unsafe { x86::copy_f32_avx2(src, dst) },
        Level::Scalar => {}
    }
    let s = std::hint::black_box(-1.0f32);
    for (d, v) in dst.iter_mut().zip(src) {
        *d = v * s;
    }
}

fn copy_u16(src: &[u16], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: as above.
        Level::Avx512 => return unsafe { x86::copy_u16_avx512(src, dst) },
        Level::Avx2 => return unsafe { x86::copy_u16_avx2(src, dst) },
        Level::Scalar => {}
    }
    let m = std::hint::black_box(0x8000u16);
    for (d, v) in dst.iter_mut().zip(src) {
        *d = v ^ m;
    }
}

fn widen_u16(src: &[u16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: as above.
        Level::Avx512 => return unsafe { x86::widen_u16_avx512(src, dst) },
        Level::Avx2 => return unsafe { x86::widen_u16_avx2(src, dst) },
        Level::Scalar => {}
    }
    for (d, v) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(*v) << 16);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn inplace_f32_avx512(x: &mut [f32]) {
        let (len, p) = (x.len(), x.as_mut_ptr());
        // SAFETY: every access is below len.
        unsafe {
            let s = _mm512_set1_ps(-1.0);
            let mut i = 0;
            while i + 64 <= len {
                let q = p.add(i);
                let (a, b, c, d) = (
                    _mm512_loadu_ps(q),
                    _mm512_loadu_ps(q.add(16)),
                    _mm512_loadu_ps(q.add(32)),
                    _mm512_loadu_ps(q.add(48)),
                );
                _mm512_storeu_ps(q, _mm512_mul_ps(a, s));
                _mm512_storeu_ps(q.add(16), _mm512_mul_ps(b, s));
                _mm512_storeu_ps(q.add(32), _mm512_mul_ps(c, s));
                _mm512_storeu_ps(q.add(48), _mm512_mul_ps(d, s));
                i += 64;
            }
            while i < len {
                *p.add(i) *= -1.0;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn inplace_f32_avx2(x: &mut [f32]) {
        let (len, p) = (x.len(), x.as_mut_ptr());
        // SAFETY: every access is below len.
        unsafe {
            let s = _mm256_set1_ps(-1.0);
            let mut i = 0;
            while i + 32 <= len {
                let q = p.add(i);
                let (a, b, c, d) = (
                    _mm256_loadu_ps(q),
                    _mm256_loadu_ps(q.add(8)),
                    _mm256_loadu_ps(q.add(16)),
                    _mm256_loadu_ps(q.add(24)),
                );
                _mm256_storeu_ps(q, _mm256_mul_ps(a, s));
                _mm256_storeu_ps(q.add(8), _mm256_mul_ps(b, s));
                _mm256_storeu_ps(q.add(16), _mm256_mul_ps(c, s));
                _mm256_storeu_ps(q.add(24), _mm256_mul_ps(d, s));
                i += 32;
            }
            while i < len {
                *p.add(i) *= -1.0;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn inplace_u16_avx512(x: &mut [u16]) {
        let (len, p) = (x.len(), x.as_mut_ptr());
        // SAFETY: every access is below len.
        unsafe {
            let m = _mm512_set1_epi32(0x8000_8000u32 as i32);
            let mut i = 0;
            while i + 128 <= len {
                let q = p.add(i).cast::<__m512i>();
                let (a, b, c, d) = (
                    _mm512_loadu_si512(q),
                    _mm512_loadu_si512(q.add(1)),
                    _mm512_loadu_si512(q.add(2)),
                    _mm512_loadu_si512(q.add(3)),
                );
                _mm512_storeu_si512(q, _mm512_xor_si512(a, m));
                _mm512_storeu_si512(q.add(1), _mm512_xor_si512(b, m));
                _mm512_storeu_si512(q.add(2), _mm512_xor_si512(c, m));
                _mm512_storeu_si512(q.add(3), _mm512_xor_si512(d, m));
                i += 128;
            }
            while i < len {
                *p.add(i) ^= 0x8000;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn inplace_u16_avx2(x: &mut [u16]) {
        let (len, p) = (x.len(), x.as_mut_ptr());
        // SAFETY: every access is below len.
        unsafe {
            let m = _mm256_set1_epi32(0x8000_8000u32 as i32);
            let mut i = 0;
            while i + 64 <= len {
                let q = p.add(i).cast::<__m256i>();
                let (a, b, c, d) = (
                    _mm256_loadu_si256(q),
                    _mm256_loadu_si256(q.add(1)),
                    _mm256_loadu_si256(q.add(2)),
                    _mm256_loadu_si256(q.add(3)),
                );
                _mm256_storeu_si256(q, _mm256_xor_si256(a, m));
                _mm256_storeu_si256(q.add(1), _mm256_xor_si256(b, m));
                _mm256_storeu_si256(q.add(2), _mm256_xor_si256(c, m));
                _mm256_storeu_si256(q.add(3), _mm256_xor_si256(d, m));
                i += 64;
            }
            while i < len {
                *p.add(i) ^= 0x8000;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_f32_avx512(src: &[f32], dst: &mut [f32]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let k = _mm512_set1_ps(-1.0);
            let mut i = 0;
            while i + 64 <= len {
                let (a, b, c, e) = (
                    _mm512_loadu_ps(s.add(i)),
                    _mm512_loadu_ps(s.add(i + 16)),
                    _mm512_loadu_ps(s.add(i + 32)),
                    _mm512_loadu_ps(s.add(i + 48)),
                );
                _mm512_storeu_ps(d.add(i), _mm512_mul_ps(a, k));
                _mm512_storeu_ps(d.add(i + 16), _mm512_mul_ps(b, k));
                _mm512_storeu_ps(d.add(i + 32), _mm512_mul_ps(c, k));
                _mm512_storeu_ps(d.add(i + 48), _mm512_mul_ps(e, k));
                i += 64;
            }
            while i < len {
                *d.add(i) = -*s.add(i);
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn copy_f32_avx2(src: &[f32], dst: &mut [f32]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let k = _mm256_set1_ps(-1.0);
            let mut i = 0;
            while i + 32 <= len {
                let (a, b, c, e) = (
                    _mm256_loadu_ps(s.add(i)),
                    _mm256_loadu_ps(s.add(i + 8)),
                    _mm256_loadu_ps(s.add(i + 16)),
                    _mm256_loadu_ps(s.add(i + 24)),
                );
                _mm256_storeu_ps(d.add(i), _mm256_mul_ps(a, k));
                _mm256_storeu_ps(d.add(i + 8), _mm256_mul_ps(b, k));
                _mm256_storeu_ps(d.add(i + 16), _mm256_mul_ps(c, k));
                _mm256_storeu_ps(d.add(i + 24), _mm256_mul_ps(e, k));
                i += 32;
            }
            while i < len {
                *d.add(i) = -*s.add(i);
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_u16_avx512(src: &[u16], dst: &mut [u16]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let m = _mm512_set1_epi32(0x8000_8000u32 as i32);
            let mut i = 0;
            while i + 64 <= len {
                let (a, b) = (
                    _mm512_loadu_si512(s.add(i).cast()),
                    _mm512_loadu_si512(s.add(i + 32).cast()),
                );
                _mm512_storeu_si512(d.add(i).cast(), _mm512_xor_si512(a, m));
                _mm512_storeu_si512(d.add(i + 32).cast(), _mm512_xor_si512(b, m));
                i += 64;
            }
            while i < len {
                *d.add(i) = *s.add(i) ^ 0x8000;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn copy_u16_avx2(src: &[u16], dst: &mut [u16]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let m = _mm256_set1_epi32(0x8000_8000u32 as i32);
            let mut i = 0;
            while i + 32 <= len {
                let (a, b) = (
                    _mm256_loadu_si256(s.add(i).cast()),
                    _mm256_loadu_si256(s.add(i + 16).cast()),
                );
                _mm256_storeu_si256(d.add(i).cast(), _mm256_xor_si256(a, m));
                _mm256_storeu_si256(d.add(i + 16).cast(), _mm256_xor_si256(b, m));
                i += 32;
            }
            while i < len {
                *d.add(i) = *s.add(i) ^ 0x8000;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn widen_u16_avx512(src: &[u16], dst: &mut [f32]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let mut i = 0;
            while i + 32 <= len {
                let a = _mm256_loadu_si256(s.add(i).cast());
                let b = _mm256_loadu_si256(s.add(i + 16).cast());
                let wa = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(a));
                let wb = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(b));
                _mm512_storeu_si512(d.add(i).cast(), wa);
                _mm512_storeu_si512(d.add(i + 16).cast(), wb);
                i += 32;
            }
            while i < len {
                *d.add(i) = f32::from_bits(u32::from(*s.add(i)) << 16);
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn widen_u16_avx2(src: &[u16], dst: &mut [f32]) {
        let len = src.len().min(dst.len());
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every access is below len on both sides.
        unsafe {
            let mut i = 0;
            while i + 16 <= len {
                let a = _mm_loadu_si128(s.add(i).cast());
                let b = _mm_loadu_si128(s.add(i + 8).cast());
                let wa = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(a));
                let wb = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(b));
                _mm256_storeu_si256(d.add(i).cast(), wa);
                _mm256_storeu_si256(d.add(i + 8).cast(), wb);
                i += 16;
            }
            while i < len {
                *d.add(i) = f32::from_bits(u32::from(*s.add(i)) << 16);
                i += 1;
            }
        }
    }
}
