//! Fuzz targets for every exported C function of libquarot (see fuzz/README.md).
//!
//! Each target decodes the fuzzer's bytes into one or more calls of the C ABI (the
//! `extern "C"` functions of `quarot::ffi`, exactly what a C program links) with random
//! sizes, strides, flags, element types, aliasing and NULL pointers, and checks:
//! - calls the target's own oracle says are valid return QUAROT_OK and produce the scalar
//!   reference's result (bit for bit where the library promises it, else within a bound);
//! - calls it says are invalid return an error status (never QUAROT_ERR_PANIC), set a
//!   non-empty `quarot_last_error()`, and leave every byte of every buffer untouched;
//! - nothing outside the described rows is ever written (canaries around and between rows).
//!
//! Any failed check panics, which libFuzzer reports as a crash with the input saved;
//! AddressSanitizer catches out-of-bounds accesses that the checks cannot see.

use quarot::ffi::{self, quarot_status};
use std::ffi::CStr;

pub mod misc;
pub mod online;
pub mod rotate;
pub mod transform;

/// Largest buffer (bytes) a target allocates; valid calls needing more are skipped.
pub const MAX_BYTES: usize = 1 << 21;

/// Reads the fuzzer's bytes as a stream of small decisions; zeros once exhausted.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.u8() as usize % items.len()]
    }
    /// True with probability about 1/`one_in`.
    pub fn chance(&mut self, one_in: u8) -> bool {
        self.u8().is_multiple_of(one_in)
    }

    /// A row width: mostly supported ones (QuaRot's K, Paley K, powers of two), some
    /// arbitrary, a few absurd.
    pub fn width(&mut self) -> usize {
        const WIDTHS: &[usize] = &[
            1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 12, 24, 48, 96, 192, 20, 40,
            80, 160, 28, 56, 112, 36, 72, 144, 44, 88, 52, 104, 60, 120, 108, 216, 140, 280, 156,
            172, 344, 688, 1376, 68, 76, 152, 304, 100, 148, 684, 1368, 3, 5, 6, 7, 50, 92, 107,
            214, 428, 856, 1712, 360, 13696, 1000, 4095, 4097,
        ];
        match self.u8() % 8 {
            0..=4 => self.pick(WIDTHS),
            5 | 6 => self.u16() as usize % 4200,
            _ => self.pick(&[
                0,
                usize::MAX,
                usize::MAX / 2,
                usize::MAX / 2 + 1,
                1 << 40,
                (1 << 40) * 172,
                isize::MAX as usize,
                1 << 62,
            ]),
        }
    }

    /// A row count: mostly 0..=8, sometimes absurd.
    pub fn rows(&mut self) -> usize {
        if self.chance(16) {
            self.pick(&[usize::MAX, usize::MAX / 2, 1 << 40, 1 << 62, 3 << 30])
        } else {
            self.u8() as usize % 9
        }
    }

    /// A row stride for width n: mostly n + small, sometimes too small, sometimes absurd.
    pub fn stride(&mut self, n: usize) -> usize {
        match self.u8() % 10 {
            0..=6 => n.saturating_add(self.u8() as usize % 5),
            7 => n.saturating_sub(1 + self.u8() as usize % 3),
            8 => n.saturating_mul(2),
            _ => self.pick(&[usize::MAX, usize::MAX / 3, 1 << 40, isize::MAX as usize, 0]),
        }
    }

    /// A float scale: mostly the normalized one or 1, sometimes anything.
    pub fn scale(&mut self, n: usize) -> f32 {
        match self.u8() % 8 {
            0..=3 => quarot::normalized_scale(n),
            4 => 1.0,
            5 => self.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.5, 1e-40]),
            _ => f32::from_bits(self.u32()),
        }
    }

    /// Element type code: mostly a valid one, sometimes not.
    pub fn dtype(&mut self) -> i32 {
        match self.u8() % 10 {
            0..=2 => ffi::QUAROT_DTYPE_F32,
            3..=5 => ffi::QUAROT_DTYPE_F16,
            6..=8 => ffi::QUAROT_DTYPE_BF16,
            _ => self.pick(&[-1, 2, 29, 31, i32::MAX, i32::MIN, 7]),
        }
    }
}

/// Bytes per element of a valid dtype code, None for an invalid one.
pub fn elem_size(dtype: i32) -> Option<usize> {
    match dtype {
        ffi::QUAROT_DTYPE_F32 => Some(4),
        ffi::QUAROT_DTYPE_F16 | ffi::QUAROT_DTYPE_BF16 => Some(2),
        _ => None,
    }
}

/// Elements spanned by `rows` rows of n, `stride` apart, in bytes of `size`; None on
/// overflow or beyond isize::MAX bytes. 0 rows span nothing.
pub fn span_bytes(rows: usize, n: usize, stride: usize, size: usize) -> Option<usize> {
    if rows == 0 {
        return Some(0);
    }
    let elems = (rows - 1).checked_mul(stride)?.checked_add(n)?;
    let bytes = elems.checked_mul(size)?;
    (bytes <= isize::MAX as usize).then_some(bytes)
}

/// A heap buffer (8-byte aligned) filled with a canary pattern.
#[derive(Clone)]
pub struct Buf {
    words: Vec<u64>,
    len: usize,
}

/// The canary byte for position i (not constant, so shifted copies are noticed).
fn canary(i: usize) -> u8 {
    0xA5 ^ (i as u8).wrapping_mul(31)
}

impl Buf {
    pub fn new(len: usize) -> Buf {
        let mut b = Buf {
            words: vec![0; len.div_ceil(8) + 1],
            len,
        };
        for i in 0..len {
            b.bytes_mut()[i] = canary(i);
        }
        b
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the words hold at least len bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }
    pub fn ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr() as *mut u8
    }
    pub fn is_canary(&self, i: usize) -> bool {
        self.bytes()[i] == canary(i)
    }

    /// Element `i` (of `dtype`, at byte offset `off`) as f32.
    pub fn get(&self, dtype: i32, off: usize, i: usize) -> f32 {
        let b = self.bytes();
        match dtype {
            ffi::QUAROT_DTYPE_F32 => {
                let p = off + 4 * i;
                f32::from_le_bytes(b[p..p + 4].try_into().unwrap())
            }
            _ => {
                let p = off + 2 * i;
                let bits = u16::from_le_bytes(b[p..p + 2].try_into().unwrap());
                bits16_to_f32(dtype, bits)
            }
        }
    }
    /// Raw bits of element `i` (u32 for f32, u16 widened for the 16-bit types).
    pub fn bits(&self, dtype: i32, off: usize, i: usize) -> u32 {
        let b = self.bytes();
        match dtype {
            ffi::QUAROT_DTYPE_F32 => {
                let p = off + 4 * i;
                u32::from_le_bytes(b[p..p + 4].try_into().unwrap())
            }
            _ => {
                let p = off + 2 * i;
                u16::from_le_bytes(b[p..p + 2].try_into().unwrap()) as u32
            }
        }
    }
    pub fn set_bits(&mut self, dtype: i32, off: usize, i: usize, bits: u32) {
        match dtype {
            ffi::QUAROT_DTYPE_F32 => {
                let p = off + 4 * i;
                self.bytes_mut()[p..p + 4].copy_from_slice(&bits.to_le_bytes());
            }
            _ => {
                let p = off + 2 * i;
                self.bytes_mut()[p..p + 2].copy_from_slice(&(bits as u16).to_le_bytes());
            }
        }
    }
    pub fn set(&mut self, dtype: i32, off: usize, i: usize, v: f32) {
        self.set_bits(dtype, off, i, f32_to_bits(dtype, v));
    }
}

pub fn bits16_to_f32(dtype: i32, bits: u16) -> f32 {
    if dtype == ffi::QUAROT_DTYPE_F16 {
        half::f16::from_bits(bits).to_f32()
    } else {
        half::bf16::from_bits(bits).to_f32()
    }
}

/// `v` rounded once (nearest even) to `dtype`, as bits.
pub fn f32_to_bits(dtype: i32, v: f32) -> u32 {
    match dtype {
        ffi::QUAROT_DTYPE_F32 => v.to_bits(),
        ffi::QUAROT_DTYPE_F16 => half::f16::from_f32(v).to_bits() as u32,
        _ => half::bf16::from_f32(v).to_bits() as u32,
    }
}

pub fn is_inf_bits(dtype: i32, bits: u32) -> bool {
    match dtype {
        ffi::QUAROT_DTYPE_F32 => f32::from_bits(bits).is_infinite(),
        _ => bits16_to_f32(dtype, bits as u16).is_infinite(),
    }
}

pub fn is_nan_bits(dtype: i32, bits: u32) -> bool {
    match dtype {
        ffi::QUAROT_DTYPE_F32 => f32::from_bits(bits).is_nan(),
        _ => bits16_to_f32(dtype, bits as u16).is_nan(),
    }
}

/// How row values are generated.
#[derive(Clone, Copy)]
pub enum Fill {
    /// Any bit pattern (NaN, Inf, subnormals included), taken from the input.
    Raw,
    /// Small integers.
    Ints,
    /// Pseudo-random values of moderate size.
    Mixed,
}

impl Input<'_> {
    pub fn fill(&mut self) -> Fill {
        match self.u8() % 4 {
            0 => Fill::Raw,
            1 => Fill::Ints,
            _ => Fill::Mixed,
        }
    }
    /// Write `rows` rows of n values of `dtype` at byte offset `off`, `stride` elements
    /// apart.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_rows(
        &mut self,
        fill: Fill,
        buf: &mut Buf,
        dtype: i32,
        off: usize,
        rows: usize,
        n: usize,
        stride: usize,
    ) {
        let mut state = self.u64() | 1;
        for r in 0..rows {
            for j in 0..n {
                let i = r * stride + j;
                match fill {
                    Fill::Raw => {
                        let bits = self.u32();
                        buf.set_bits(dtype, off, i, bits);
                    }
                    Fill::Ints => buf.set(dtype, off, i, (self.u8() % 9) as f32 - 4.0),
                    Fill::Mixed => {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0;
                        buf.set(dtype, off, i, v);
                    }
                }
            }
        }
    }
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(ffi::quarot_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Checks for a call the oracle said is invalid: an error (never a caught panic), a
/// message, and every buffer byte-identical to its copy from before the call.
pub fn expect_rejected(what: &str, st: quarot_status, before: &[(&[u8], &Buf)]) {
    assert!(
        st != quarot_status::QUAROT_OK,
        "{what}: accepted an invalid call"
    );
    assert!(
        st != quarot_status::QUAROT_ERR_PANIC,
        "{what}: panic caught at the C boundary: {}",
        last_error()
    );
    assert!(!last_error().is_empty(), "{what}: {st:?} without a message");
    for (i, (old, buf)) in before.iter().enumerate() {
        assert!(
            *old == buf.bytes(),
            "{what}: {st:?} but buffer {i} was written"
        );
    }
}

/// Checks for a call the oracle said is valid.
pub fn expect_ok(what: &str, st: quarot_status) {
    assert!(
        st == quarot_status::QUAROT_OK,
        "{what}: valid call failed with {st:?}: {}",
        last_error()
    );
    assert!(
        last_error().is_empty(),
        "{what}: OK but last error {:?}",
        last_error()
    );
}
