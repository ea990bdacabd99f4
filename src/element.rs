//! The element types a transform reads and writes: f32, IEEE binary16 and bfloat16.
//!
//! All arithmetic is done in f32; 16-bit inputs are widened exactly and results are
//! rounded once, to nearest even.

use half::{bf16, f16};

/// Element type tag, shared with C as `quarot_dtype`. The values are ggml's `ggml_type`
/// numbers (GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_BF16 = 30), so engines can cast.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32 (`float`).
    F32 = 0,
    /// IEEE binary16, stored as its 16-bit pattern (`uint16_t`, `_Float16`, ggml's `ggml_fp16_t`).
    F16 = 1,
    /// bfloat16, stored as its 16-bit pattern (the upper half of a binary32).
    Bf16 = 30,
}

impl DType {
    /// The tag with raw value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            30 => Some(DType::Bf16),
            _ => None,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type the transforms accept: `f32`, [`half::f16`] or [`half::bf16`].
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The C tag of this type.
    const DTYPE: DType;
    /// Zero of this type.
    const ZERO: Self;
    /// Exact widening to f32.
    fn to_f32(self) -> f32;
    /// Rounding (to nearest even) from f32.
    fn from_f32(x: f32) -> Self;
    /// Rounding (to nearest even) from f64, once: not through a rounded f32.
    fn from_f64(x: f64) -> Self;
}

/// `x` rounded to f32 with round-to-odd: truncate toward zero and set the last bit when
/// inexact. Rounding that again to a format with at most 22 significant bits (f16, bf16)
/// gives the correctly rounded result of `x`, which a plain `x as f32` would not
/// (double rounding).
#[inline]
pub(crate) fn f64_to_f32_round_to_odd(x: f64) -> f32 {
    let t = x as f32;
    if t.is_nan() || f64::from(t) == x {
        return t;
    }
    let mut bits = t.to_bits();
    if f64::from(t).abs() > x.abs() {
        // Rounded away from zero (possibly to infinity): step back toward zero.
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    const ZERO: Self = f16::ZERO;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        f16::from_f32(f64_to_f32_round_to_odd(x))
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::Bf16;
    const ZERO: Self = bf16::ZERO;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        bf16::from_f32(f64_to_f32_round_to_odd(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Note: `bf16::from_f64` would call half's inherent method, which rounds twice.

    /// Exact rounding of an f64 to a binary format with `p` significant bits and minimum
    /// normal exponent `emin`, by integer arithmetic on the f64 (finite, in range).
    fn round_exact(x: f64, p: i32, emin: i32) -> f64 {
        if x == 0.0 {
            return x;
        }
        let e = x.abs().log2().floor() as i32;
        let q = (e.max(emin) - (p - 1)) as f64; // exponent of the target ulp
        let scaled = x / q.exp2();
        let r = scaled.round();
        // ties to even
        let r = if (scaled - scaled.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - scaled.signum()
        } else {
            r
        };
        r * q.exp2()
    }

    #[test]
    fn from_f64_rounds_once() {
        // Values just above a bf16 / f16 tie: double rounding through f32 would round down.
        let tie_bf16 = 1.0 + 2f64.powi(-8); // halfway between 1 and 1 + 2^-7
        let x = tie_bf16 + 2f64.powi(-40);
        assert_eq!(
            <bf16 as Element>::from_f64(x).to_f32(),
            (1.0 + 2f64.powi(-7)) as f32
        );
        assert_eq!(
            bf16::from_f32(x as f32).to_f32(),
            1.0,
            "the double rounding this avoids"
        );
        let tie_f16 = 1.0 + 2f64.powi(-11);
        let x = tie_f16 + 2f64.powi(-40);
        assert_eq!(
            <f16 as Element>::from_f64(x).to_f32(),
            (1.0 + 2f64.powi(-10)) as f32
        );
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mant = (s >> 12) as f64 / (1u64 << 52) as f64 + 1.0;
            let e = ((s & 0x3f) as i32) - 40; // 2^-40 .. 2^23
            let x = if s & 0x40 != 0 { -mant } else { mant } * 2f64.powi(e);
            assert_eq!(
                f64::from(<bf16 as Element>::from_f64(x).to_f32()),
                round_exact(x, 8, -126),
                "bf16 {x:e}"
            );
            if x.abs() < 65000.0 {
                assert_eq!(
                    f64::from(<f16 as Element>::from_f64(x).to_f32()),
                    round_exact(x, 11, -14),
                    "f16 {x:e}"
                );
            }
        }
        assert!(<f16 as Element>::from_f64(1e6).to_f32().is_infinite());
        assert!(<bf16 as Element>::from_f64(f64::NAN).to_f32().is_nan());
        assert!(<bf16 as Element>::from_f64(1e300).to_f32().is_infinite());
    }
}
