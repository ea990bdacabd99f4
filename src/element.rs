//! The element types a transform reads and writes: f32, IEEE binary16 and bfloat16.
//!
//! All arithmetic is done in f32; 16-bit inputs are widened exactly and results are
//! rounded once, to nearest even.

use half::{bf16, f16};

/// Element type tag, shared with C as `quarot_dtype`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32 (`float`).
    F32 = 0,
    /// IEEE binary16, stored as its 16-bit pattern (`uint16_t`, `_Float16`, ggml's `ggml_fp16_t`).
    F16 = 1,
    /// bfloat16, stored as its 16-bit pattern (the upper half of a binary32).
    Bf16 = 2,
}

impl DType {
    /// The tag with raw value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::Bf16),
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
}
