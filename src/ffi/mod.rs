//! The C ABI: every `extern "C"` function of libquarot, and nothing else.
//!
//! Each export validates its arguments before touching memory, turns pointers into the
//! core's slices/rows, calls the safe core, and maps its `Error` to a status code plus a
//! per-thread message. Every export runs inside [`guard`] (or [`guard_value`]), which
//! catches panics so that none unwinds into C.
#![allow(non_camel_case_types)]

use crate::dispatch::{self, Isa};
use crate::element::{DType, Element};
use crate::error::{Error, Status};
use crate::hadamard::{self, Side};
use crate::kernel::Rows;
use half::{bf16, f16};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod online;
pub use online::*;

/// Status returned by every libquarot function that can fail (an int32_t in C before C23).
/// Values are fixed and never reused; `quarot_status_string()` describes one,
/// `quarot_last_error()` gives the details of the calling thread's last failure.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum quarot_status {
    /// Success.
    QUAROT_OK = 0,
    /// A required pointer was NULL (data/src/dst with rows > 0, or an output pointer).
    QUAROT_ERR_NULL_POINTER = 1,
    /// A width has no Hadamard matrix: n = 0, or n not K*2^m for a K with a known Hadamard
    /// matrix (QuaRot's table or a Paley order; the message names the nearest supported
    /// widths). For the transforms' n, quarot_hadamard_matrix's n, the handles' n,
    /// block_size and head_dim, and the Hadamard weight rotations' rotation_n >= 1 (a
    /// weight rotation's rotation_n = 0 is QUAROT_ERR_INVALID_ARGUMENT).
    QUAROT_ERR_UNSUPPORTED_SIZE = 2,
    /// A row stride is smaller than n.
    QUAROT_ERR_INVALID_STRIDE = 3,
    /// rows * row_stride (or its size in bytes) overflows the address space.
    QUAROT_ERR_SIZE_OVERFLOW = 4,
    /// flags has bits this version does not know.
    QUAROT_ERR_INVALID_FLAGS = 5,
    /// An element type that is not a QUAROT_DTYPE_* value.
    QUAROT_ERR_INVALID_DTYPE = 6,
    /// src and dst overlap without being the same rows (same pointer, stride and type).
    QUAROT_ERR_OVERLAP = 7,
    /// Another argument is out of range (non-finite scale, a Hadamard rotation's scale of 0,
    /// nth == 0, ith >= nth, rotation_n = 0, a layout that is no QUAROT_LAYOUT_*, signs
    /// other than +-1, an out_len below what is written, ...).
    QUAROT_ERR_INVALID_ARGUMENT = 8,
    /// Scratch memory could not be allocated; the data is unchanged.
    QUAROT_ERR_OUT_OF_MEMORY = 9,
    /// The worker pool for QUAROT_FLAG_PARALLEL could not be started; the data is unchanged.
    QUAROT_ERR_THREAD_POOL = 10,
    /// The environment variable QUAROT_ISA forces an instruction set this CPU lacks (or
    /// names none); nothing is computed until it is fixed.
    QUAROT_ERR_ISA_UNAVAILABLE = 11,
    /// A bug in libquarot was caught at the C boundary (a Rust panic); please report it.
    QUAROT_ERR_PANIC = 12,
    /// A callback of a handle (the wrapped op, the quantizer, the RoPE) returned nonzero;
    /// `quarot_last_callback_code()` gives its code.
    QUAROT_ERR_CALLBACK = 13,
}

const fn to_c(status: Status) -> quarot_status {
    use quarot_status::*;
    match status {
        Status::Ok => QUAROT_OK,
        Status::NullPointer => QUAROT_ERR_NULL_POINTER,
        Status::UnsupportedSize => QUAROT_ERR_UNSUPPORTED_SIZE,
        Status::InvalidStride => QUAROT_ERR_INVALID_STRIDE,
        Status::SizeOverflow => QUAROT_ERR_SIZE_OVERFLOW,
        Status::InvalidFlags => QUAROT_ERR_INVALID_FLAGS,
        Status::InvalidDtype => QUAROT_ERR_INVALID_DTYPE,
        Status::Overlap => QUAROT_ERR_OVERLAP,
        Status::InvalidArgument => QUAROT_ERR_INVALID_ARGUMENT,
        Status::OutOfMemory => QUAROT_ERR_OUT_OF_MEMORY,
        Status::ThreadPool => QUAROT_ERR_THREAD_POOL,
        Status::IsaUnavailable => QUAROT_ERR_ISA_UNAVAILABLE,
        Status::Panic => QUAROT_ERR_PANIC,
        Status::Callback => QUAROT_ERR_CALLBACK,
    }
}

/// Element type of a buffer (an int32_t; one of the QUAROT_DTYPE_* values). The values are
/// ggml's `enum ggml_type` numbers, so a GGML_TYPE_F32/F16/BF16 can be passed as is.
pub type quarot_dtype = i32;
/// IEEE binary32 (`float`).
pub const QUAROT_DTYPE_F32: quarot_dtype = 0;
/// IEEE binary16 bit patterns (`uint16_t`; ggml's `ggml_fp16_t`, C23 `_Float16`).
pub const QUAROT_DTYPE_F16: quarot_dtype = 1;
/// bfloat16 bit patterns (`uint16_t`; the upper 16 bits of a binary32).
pub const QUAROT_DTYPE_BF16: quarot_dtype = 30;

/// Instruction set of the kernels (an int32_t; one of the QUAROT_ISA_* values).
pub type quarot_isa = i32;
/// Portable scalar code.
pub const QUAROT_ISA_SCALAR: quarot_isa = 0;
/// x86-64 AVX2 + FMA + F16C.
pub const QUAROT_ISA_AVX2: quarot_isa = 1;
/// x86-64 AVX-512F.
pub const QUAROT_ISA_AVX512: quarot_isa = 2;

/// Flag: use H_K^T instead of H_K (Quark >= 0.11 `matmul_hadU`). With the normalized scale
/// it is also the inverse of the transform without this flag. No effect when K is 1, 28
/// or 36 (symmetric).
pub const QUAROT_FLAG_TRANSPOSE_K: u32 = 1;
/// Flag: Quark <= 0.10 `hadamard_transform` / `hadamard_multiply` / `QKRotation`
/// compatibility. Each row is zero-padded to the next power of two P, transformed with
/// H_P, and truncated back to n: y = scale * H_P[0:n, 0:n] x. Any n >= 1 is accepted.
/// For n that is not a power of two this map is NOT orthogonal (norms change by several
/// percent). Needs n floats of scratch rounded up to P.
pub const QUAROT_FLAG_PAD_TRUNCATE: u32 = 2;
/// Flag: split the rows over libquarot's own worker pool (see quarot_set_num_threads).
/// Without it a call runs entirely on the calling thread. Transforms of fewer than
/// 2^19 elements (rows * n) run on the calling thread even with it: waking the pool costs
/// more than it saves there.
pub const QUAROT_FLAG_PARALLEL: u32 = 4;
/// Flag: for widths with no known Hadamard matrix (quarot_hadamard_size_supported(n) == 0,
/// e.g. 13696 = 107 * 128), transform each row as n / b independent blocks of b values,
/// b = quarot_hadamard_block_size(n), the largest supported width dividing n. When n is
/// supported b = n and the flag changes nothing. This is weaker mixing than a rotation of
/// the whole row (values only mix within their block), and the orthogonal scale is then
/// quarot_hadamard_scale(b), not quarot_hadamard_scale(n). Cannot be combined with
/// QUAROT_FLAG_PAD_TRUNCATE. Odd n (only blocks of 1 divide it) stays unsupported.
pub const QUAROT_FLAG_BLOCK_DIAGONAL: u32 = 16;

// The C values are spelled out as literals because cbindgen copies only literals into the
// header; these compile-time checks keep them equal to the core's.
const _: () = {
    assert!(QUAROT_DTYPE_F32 == DType::F32 as i32);
    assert!(QUAROT_DTYPE_F16 == DType::F16 as i32);
    assert!(QUAROT_DTYPE_BF16 == DType::Bf16 as i32);
    assert!(QUAROT_ISA_SCALAR == Isa::Scalar as i32);
    assert!(QUAROT_ISA_AVX2 == Isa::Avx2 as i32);
    assert!(QUAROT_ISA_AVX512 == Isa::Avx512 as i32);
    assert!(QUAROT_FLAG_TRANSPOSE_K == hadamard::FLAG_TRANSPOSE_K);
    assert!(QUAROT_FLAG_PAD_TRUNCATE == hadamard::FLAG_PAD_TRUNCATE);
    assert!(QUAROT_FLAG_PARALLEL == hadamard::FLAG_PARALLEL);
    assert!(QUAROT_FLAG_BLOCK_DIAGONAL == hadamard::FLAG_BLOCK_DIAGONAL);
    assert!(
        QUAROT_FLAG_TRANSPOSE_K
            | QUAROT_FLAG_PAD_TRUNCATE
            | QUAROT_FLAG_PARALLEL
            | QUAROT_FLAG_BLOCK_DIAGONAL
            == hadamard::KNOWN_FLAGS
    );
    // quarot_status_string() decodes a C status with Status::from_code, so the raw values
    // of the two enums must agree.
    let mut i = 0;
    while i < Status::ALL.len() {
        assert!(to_c(Status::ALL[i]) as i32 == Status::ALL[i] as i32);
        i += 1;
    }
};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        // Success on a thread whose message is already empty is the common case: no
        // allocation for it.
        if message.is_empty() && e.as_bytes().is_empty() {
            return;
        }
        *e = CString::new(message.replace('\0', " ")).unwrap_or_default();
    });
}

/// Run an export's body: catch panics, record the message, map the status.
fn guard(body: impl FnOnce() -> Result<(), Error>) -> quarot_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            quarot_status::QUAROT_OK
        }
        Ok(Err(e)) => {
            set_last_error(&e.message);
            to_c(e.status)
        }
        Err(_) => {
            set_last_error("internal panic caught at the C boundary");
            quarot_status::QUAROT_ERR_PANIC
        }
    }
}

/// For exports that return a value instead of a status: `fallback` if the body panics.
fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn null(what: &str) -> Error {
    Error::new(Status::NullPointer, format!("{what} is NULL"))
}

fn dtype(code: quarot_dtype, what: &str) -> Result<DType, Error> {
    DType::from_code(code).ok_or_else(|| {
        Error::new(
            Status::InvalidDtype,
            format!("{what} = {code} is not a quarot_dtype (0 = f32, 1 = f16, 30 = bf16)"),
        )
    })
}

/// What the export calls its buffers and strides, for the error messages: (src, src_stride,
/// dst, dst_stride) for quarot_hadamard, (data, row_stride) twice for the in-place ones.
#[derive(Clone, Copy)]
struct Names {
    src: &'static str,
    src_stride: &'static str,
    dst: &'static str,
    dst_stride: &'static str,
}

const NAMES_SRC_DST: Names = Names {
    src: "src",
    src_stride: "src_stride",
    dst: "dst",
    dst_stride: "dst_stride",
};

const NAMES_IN_PLACE: Names = Names {
    src: "data",
    src_stride: "row_stride",
    dst: "data",
    dst_stride: "row_stride",
};

/// Validate and run a transform whose src/dst pointers and types are already known.
///
/// # Safety
/// The pointers must be valid for the rows they describe (the C contract).
#[allow(clippy::too_many_arguments)]
unsafe fn transform_raw(
    names: Names,
    src: *const c_void,
    src_type: DType,
    src_stride: usize,
    dst: *mut c_void,
    dst_type: DType,
    dst_stride: usize,
    rows: usize,
    n: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    let (plan, src_len, dst_len) = hadamard::check_job(
        n,
        flags,
        scale,
        rows,
        Side {
            name: names.src,
            stride_name: names.src_stride,
            stride: src_stride,
            elem_size: src_type.size(),
        },
        Side {
            name: names.dst,
            stride_name: names.dst_stride,
            stride: dst_stride,
            elem_size: dst_type.size(),
        },
    )?;
    if rows == 0 {
        return Ok(());
    }
    if src.is_null() {
        return Err(null(names.src));
    }
    if dst.is_null() {
        return Err(null(names.dst));
    }
    let isa = dispatch::active_isa()?;
    // Same rows: an in-place call. Otherwise the byte ranges must not meet.
    let same =
        std::ptr::eq(src, dst.cast_const()) && src_type == dst_type && src_stride == dst_stride;
    if !same {
        let (s0, s1) = (src as usize, src as usize + src_len * src_type.size());
        let (d0, d1) = (dst as usize, dst as usize + dst_len * dst_type.size());
        if s0 < d1 && d0 < s1 {
            return Err(Error::new(
                Status::Overlap,
                format!(
                    "src [{s0:#x}, {s1:#x}) and dst [{d0:#x}, {d1:#x}) overlap but are not the same rows \
                     (same pointer, stride and type); use separate buffers or an in-place call"
                ),
            ));
        }
    }
    macro_rules! go {
        ($ts:ty, $td:ty) => {{
            let job = Rows::<$ts, $td> {
                src: src.cast(),
                src_stride,
                dst: dst.cast(),
                dst_stride,
                rows,
            };
            // SAFETY: validated above; memory validity is the caller's C contract.
            unsafe { hadamard::execute(isa, &plan, scale, job) }
        }};
    }
    match (src_type, dst_type) {
        (DType::F32, DType::F32) => go!(f32, f32),
        (DType::F32, DType::F16) => go!(f32, f16),
        (DType::F32, DType::Bf16) => go!(f32, bf16),
        (DType::F16, DType::F32) => go!(f16, f32),
        (DType::F16, DType::F16) => go!(f16, f16),
        (DType::F16, DType::Bf16) => go!(f16, bf16),
        (DType::Bf16, DType::F32) => go!(bf16, f32),
        (DType::Bf16, DType::F16) => go!(bf16, f16),
        (DType::Bf16, DType::Bf16) => go!(bf16, bf16),
    }
}

unsafe fn in_place<T: Element>(
    data: *mut T,
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    // SAFETY: forwarded C contract (NULL is rejected inside, after the other checks).
    unsafe {
        transform_raw(
            NAMES_IN_PLACE,
            data.cast_const().cast(),
            T::DTYPE,
            row_stride,
            data.cast(),
            T::DTYPE,
            row_stride,
            rows,
            n,
            scale,
            flags,
        )
    }
}

/// Transform `rows` float vectors in place.
///
/// Vector r is the n contiguous floats at `data + r * row_stride` (row_stride in elements,
/// at least n); elements between vectors are never read or written. Each vector x becomes
/// y = scale * (H_K (x) H_{2^m}) x for n = K * 2^m (see quarot_hadamard_size_supported):
/// with scale = quarot_hadamard_scale(n) this is Quark's/QuaRot's `matmul_hadU`, with
/// scale = 1 the unnormalized transform. `flags` is a combination of
/// QUAROT_FLAG_TRANSPOSE_K, QUAROT_FLAG_PAD_TRUNCATE, QUAROT_FLAG_PARALLEL and
/// QUAROT_FLAG_BLOCK_DIAGONAL (QUAROT_FLAG_F32_ACCUMULATE is for the weight rotations only).
///
/// rows == 0 is a no-op and `data` may then be NULL (n, stride, scale and flags are still
/// checked). On any error nothing is written. Runs on the calling thread only (unless
/// QUAROT_FLAG_PARALLEL); thread-safe and re-entrant: concurrent calls on disjoint rows are
/// fine. NaN and Inf propagate like in any sum.
///
/// Returns QUAROT_OK, or QUAROT_ERR_NULL_POINTER (data NULL with rows > 0),
/// QUAROT_ERR_UNSUPPORTED_SIZE (n = 0, or no Hadamard matrix of width n),
/// QUAROT_ERR_INVALID_STRIDE (row_stride < n), QUAROT_ERR_SIZE_OVERFLOW,
/// QUAROT_ERR_INVALID_FLAGS (an unknown bit, QUAROT_FLAG_F32_ACCUMULATE, or
/// QUAROT_FLAG_BLOCK_DIAGONAL with QUAROT_FLAG_PAD_TRUNCATE), QUAROT_ERR_INVALID_ARGUMENT
/// (non-finite scale), QUAROT_ERR_OUT_OF_MEMORY, QUAROT_ERR_THREAD_POOL or
/// QUAROT_ERR_ISA_UNAVAILABLE; quarot_last_error() then says why.
///
/// # Safety
/// `data` must point to rows * row_stride floats (the last row needs only n).
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_f32(
    data: *mut f32,
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe { in_place(data, rows, n, row_stride, scale, flags) })
}

/// Transform `rows` IEEE binary16 vectors (bit patterns in uint16_t) in place.
///
/// Same contract as quarot_hadamard_f32; the values are widened to float, all arithmetic
/// is in float, and each result is rounded once to binary16 (nearest even). Results that
/// exceed the binary16 range become +-Inf.
///
/// # Safety
/// `data` must point to rows * row_stride uint16_t (the last row needs only n).
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_f16(
    data: *mut u16,
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe { in_place(data.cast::<f16>(), rows, n, row_stride, scale, flags) })
}

/// Transform `rows` bfloat16 vectors (bit patterns in uint16_t) in place.
///
/// Same contract as quarot_hadamard_f32; the values are widened to float, all arithmetic
/// is in float, and each result is rounded once to bfloat16 (nearest even, subnormals kept,
/// NaN stays NaN).
///
/// # Safety
/// `data` must point to rows * row_stride uint16_t (the last row needs only n).
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_bf16(
    data: *mut u16,
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe { in_place(data.cast::<bf16>(), rows, n, row_stride, scale, flags) })
}

/// Transform `rows` vectors from `src` into `dst`, converting the element type.
///
/// Vector r is read at `src + r * src_stride` and written at `dst + r * dst_stride`
/// (strides in elements of each buffer's own type, each >= n). Any combination of
/// QUAROT_DTYPE_F32/F16/BF16 is allowed (e.g. f16 in, f32 out, as ggml's ops do).
/// `src` and `dst` may be the very same rows (same pointer, stride and type: an in-place
/// call); any other overlap of the two address ranges is QUAROT_ERR_OVERLAP. Only the n
/// elements of each dst row are written. Everything else as quarot_hadamard_f32; the
/// errors are those of quarot_hadamard_f32 plus QUAROT_ERR_INVALID_DTYPE and
/// QUAROT_ERR_OVERLAP.
///
/// For ggml tensors: src_stride = nb[1] / ggml_type_size(type) (rows must be contiguous
/// inside, nb[0] == element size).
///
/// # Safety
/// `src` and `dst` must be valid for their rows as described.
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard(
    src: *const c_void,
    src_type: quarot_dtype,
    src_stride: usize,
    dst: *mut c_void,
    dst_type: quarot_dtype,
    dst_stride: usize,
    rows: usize,
    n: usize,
    scale: f32,
    flags: u32,
) -> quarot_status {
    guard(|| {
        let st = dtype(src_type, "src_type")?;
        let dt = dtype(dst_type, "dst_type")?;
        // SAFETY: forwarded C contract.
        unsafe {
            transform_raw(
                NAMES_SRC_DST,
                src,
                st,
                src_stride,
                dst,
                dt,
                dst_stride,
                rows,
                n,
                scale,
                flags,
            )
        }
    })
}

/// The K that width n uses, or 0 if n is not supported (without
/// QUAROT_FLAG_PAD_TRUNCATE or QUAROT_FLAG_BLOCK_DIAGONAL). n = K * 2^m:
/// - QuaRot's and Quark's choice first, unchanged: the first of 172, 156, 140, 108, 60,
///   52, 36, 28, 40, 20, 12 (then SpinQuant's 44) with n % K == 0 and n / K a power of
///   two; 1 if n is a power of two. These K use QuaRot's matrices bit for bit.
/// - Otherwise the smallest K = (odd part of n) * 2^j, j >= 2, K <= 1024, that a Paley
///   construction gives (e.g. 4864 = 76 * 64: K = 76, Paley II over GF(37); 25600 =
///   100 * 256: K = 100, Paley II over GF(49)). The constructions are deterministic and
///   specified in the README ("Widths beyond QuaRot's table"); quarot_hadamard_k_matrix
///   writes the matrix.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_hadamard_size_supported(n: usize) -> usize {
    guard_value(0, || hadamard::hadamard_k(n).unwrap_or(0))
}

/// The supported widths nearest to n: `*below` = the largest <= n, `*above` = the
/// smallest >= n (0 where there is none). Either pointer may be NULL. Thread-safe.
///
/// # Safety
/// Non-NULL pointers must be valid for one size_t write.
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_nearest_sizes(
    n: usize,
    below: *mut usize,
    above: *mut usize,
) -> quarot_status {
    guard(|| {
        let (b, a) = hadamard::nearest_supported(n);
        // SAFETY: caller contract; NULL is skipped.
        unsafe {
            if !below.is_null() {
                *below = b.unwrap_or(0);
            }
            if !above.is_null() {
                *above = a.unwrap_or(0);
            }
        }
        Ok(())
    })
}

/// The block width QUAROT_FLAG_BLOCK_DIAGONAL uses for rows of width n: n itself when n is
/// supported, else the largest supported width dividing n (e.g. 13696 -> 128: 107 blocks),
/// or 0 when n is 0 or odd and unsupported (only blocks of 1 would divide it). Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_hadamard_block_size(n: usize) -> usize {
    guard_value(0, || hadamard::block_size(n).unwrap_or(0))
}

/// 1/sqrt(n) rounded to float: the scale of the orthogonal (normalized) transform, as in
/// Quark's `matmul_hadU` and `hadamard_multiply` (also with QUAROT_FLAG_PAD_TRUNCATE, where
/// Quark divides by sqrt of the unpadded n). 0 for n == 0. Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_hadamard_scale(n: usize) -> f32 {
    guard_value(0.0, || hadamard::normalized_scale(n))
}

/// Copy the +-1 matrix H_K (row-major, K*K int8_t) used for widths K * 2^m into `out`:
/// for K in QuaRot's table bit-identical to QuaRot's / Quark's (SpinQuant's for K = 44),
/// for other K the Paley construction (see quarot_hadamard_size_supported). `out_len` is
/// the capacity of `out` in elements and must be >= K*K. Thread-safe.
///
/// On error nothing is written. Errors: QUAROT_ERR_INVALID_ARGUMENT (a K with neither, e.g.
/// 0, 92, or a power of two; out_len < K*K), QUAROT_ERR_NULL_POINTER (out).
///
/// # Safety
/// `out` must be valid for `out_len` int8_t writes.
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_k_matrix(
    k: usize,
    out: *mut i8,
    out_len: usize,
) -> quarot_status {
    guard(|| {
        let m = hadamard::k_matrix(k).ok_or_else(|| {
            Error::new(
                Status::InvalidArgument,
                format!(
                    "K = {k} is no width's K (QuaRot's table: 12, 20, 28, 36, 40, 44, 52, 60, 108, \
                     140, 156, 172; or a Paley order <= 1024, a multiple of 4 with K - 1 a prime \
                     power = 3 mod 4 or K/2 - 1 a prime power = 1 mod 4)"
                ),
            )
        })?;
        if out.is_null() {
            return Err(null("out"));
        }
        if out_len < m.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("out_len = {out_len} is less than K*K = {}", m.len()),
            ));
        }
        // SAFETY: caller contract, length checked.
        unsafe { std::ptr::copy_nonoverlapping(m.as_ptr(), out, m.len()) };
        Ok(())
    })
}

/// The rows worker `ith` of `nth` should process, for engines that call a transform from
/// each of their own threads (ggml custom ops get ith/nth): rows `*first .. *first + *count`.
/// The split is balanced (counts differ by at most one) and the nth ranges cover
/// 0..rows exactly once. QUAROT_ERR_INVALID_ARGUMENT if nth == 0 or ith >= nth.
/// Thread-safe.
///
/// # Safety
/// `first` and `count` must be valid for one size_t write each.
#[no_mangle]
pub unsafe extern "C" fn quarot_rows_for_thread(
    rows: usize,
    ith: usize,
    nth: usize,
    first: *mut usize,
    count: *mut usize,
) -> quarot_status {
    guard(|| {
        if first.is_null() {
            return Err(null("first"));
        }
        if count.is_null() {
            return Err(null("count"));
        }
        let (f, c) = crate::parallel::rows_for_thread(rows, ith, nth)?;
        // SAFETY: caller contract, checked non-NULL.
        unsafe {
            *first = f;
            *count = c;
        }
        Ok(())
    })
}

/// Size of the worker pool used by calls with QUAROT_FLAG_PARALLEL: n threads (1..4096),
/// or 0 for the default (environment variable QUAROT_NUM_THREADS, else the number of
/// CPUs). The pool is rebuilt at the next parallel call; calls already running finish on
/// the old one (a pool that cannot start is reported by that call, as
/// QUAROT_ERR_THREAD_POOL). Thread-safe.
///
/// Errors: QUAROT_ERR_INVALID_ARGUMENT (n > 4096; the setting is then unchanged).
#[no_mangle]
pub extern "C" fn quarot_set_num_threads(n: usize) -> quarot_status {
    guard(|| crate::parallel::set_num_threads(n))
}

/// Free the scratch memory libquarot keeps between calls; returns the number of bytes
/// freed.
///
/// Dense weight rotations (quarot_rotate_in_channels / _out_channels) need about
/// rotation_n^2 * 8 bytes (f64 mode; * 4 with QUAROT_FLAG_F32_ACCUMULATE) for the packed
/// rotation and a few MiB of row panels per thread. Mapping that memory afresh costs a page
/// fault per 4 KiB, so buffers of 1 MiB or more are kept after a call (at most 8 of them)
/// and reused by the next one, as BLAS libraries keep theirs. Call this when you are done
/// rotating (e.g. after converting a model) to give the memory back. Later calls allocate
/// again as needed. Thread-safe; buffers in use by running calls are not affected.
#[no_mangle]
pub extern "C" fn quarot_release_scratch() -> usize {
    guard_value(0, crate::scratch::release)
}

/// Bytes of scratch memory libquarot currently keeps between calls (see
/// quarot_release_scratch). Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_scratch_retained() -> usize {
    guard_value(0, crate::scratch::retained)
}

/// A static, NUL-terminated description of a status code; "unknown status" for a value
/// that is not one. Never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_status_string(code: i32) -> *const c_char {
    guard_value(c"unknown status".as_ptr(), || {
        match Status::from_code(code) {
            Some(s) => s.description_c().as_ptr(),
            None => c"unknown status".as_ptr(),
        }
    })
}

/// Details of the calling thread's most recent failed libquarot call, e.g.
/// "n = 11000 is not K*2^m for a K with a known Hadamard matrix (...); nearest supported
/// widths: 10944, 11008; ...";
/// "" after a call that succeeded. Never NULL. The string belongs to libquarot and stays
/// valid until the next libquarot call on the same thread. Thread-safe (one message per
/// thread).
#[no_mangle]
pub extern "C" fn quarot_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
}

/// The library version as a static string, e.g. "0.1.0" (compare with QUAROT_VERSION_STRING
/// from the header you compiled against). Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"",
        };
    VERSION.as_ptr()
}

/// The instruction set the transforms use, written to `*out`; chosen once per process from
/// the CPU (or forced by the environment variable QUAROT_ISA = scalar | avx2 | avx512).
/// QUAROT_ERR_ISA_UNAVAILABLE if QUAROT_ISA names a set this CPU lacks. Thread-safe.
///
/// # Safety
/// `out` must be valid for one quarot_isa write.
#[no_mangle]
pub unsafe extern "C" fn quarot_active_isa(out: *mut quarot_isa) -> quarot_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let isa = dispatch::active_isa()?;
        // SAFETY: caller contract, checked non-NULL.
        unsafe { *out = isa as i32 };
        Ok(())
    })
}

/// 1 if this CPU can run instruction set `isa`, else 0 (also for unknown values).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_isa_available(isa: quarot_isa) -> i32 {
    guard_value(0, || {
        Isa::from_code(isa).map_or(0, |i| i32::from(i.is_available()))
    })
}

/// Static name of an instruction set ("scalar", "avx2", "avx512"), or "unknown". Never
/// NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_isa_name(isa: quarot_isa) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        Isa::from_code(isa).map_or(c"unknown".as_ptr(), |i| i.name_c().as_ptr())
    })
}

// ---------------------------------------------------------------------------------------
// Weight rotation
// ---------------------------------------------------------------------------------------

/// Flag for the weight-rotation functions: accumulate the dense product in float (the
/// rotation and the weights rounded to float first) instead of double. About twice as fast;
/// results are then no longer bit-identical to Quark (errors of a few float ulps of the
/// largest value in the row, so small outputs of f16/bf16 weights can be several ulps off).
/// Only quarot_rotate_in_channels / quarot_rotate_out_channels take it: the Hadamard weight
/// rotations (always double), the transforms and the handles reject it with
/// QUAROT_ERR_INVALID_FLAGS.
pub const QUAROT_FLAG_F32_ACCUMULATE: u32 = 8;

/// Layout of a Hadamard rotation matrix R of size n = K * 2^m (an int32_t; one of the
/// QUAROT_LAYOUT_* values).
pub type quarot_hadamard_layout = i32;
/// R = kron(H_K, H_{2^m})^T * scale: Quark <= 0.10 `matmul_hadU` (x * R == matmul_hadU(x))
/// and Quark <= 0.10 `random_hadamard_matrix` (with signs, scale quarot_quark_hadamard_scale).
pub const QUAROT_LAYOUT_MATMUL_HADU: quarot_hadamard_layout = 0;
/// R = kron(H_K, H_{2^m}) * scale: Quark >= 0.11 `matmul_hadU` / `random_hadamard_matrix`
/// (scale quarot_quark_hadamard_scale) and Quark >= 0.11 `get_rotation_matrix(n,
/// random=False)` (scale 1/sqrt(n)).
pub const QUAROT_LAYOUT_MATMUL_HADU_T: quarot_hadamard_layout = 1;
/// R = kron(H_{2^m}, H_K) * scale: Quark <= 0.10 `get_rotation_matrix(n, random=False)`
/// (scale 1/sqrt(n)).
pub const QUAROT_LAYOUT_KRON_POW2_K: quarot_hadamard_layout = 2;

const _: () = {
    assert!(QUAROT_FLAG_F32_ACCUMULATE == crate::rotate::ROTATE_FLAG_F32_ACCUMULATE);
    assert!(QUAROT_LAYOUT_MATMUL_HADU == HadamardLayout::MatmulHadU as i32);
    assert!(QUAROT_LAYOUT_MATMUL_HADU_T == HadamardLayout::MatmulHadUTransposed as i32);
    assert!(QUAROT_LAYOUT_KRON_POW2_K == HadamardLayout::KronPow2K as i32);
};

use crate::rotate::{self, HadamardLayout, HadamardRotation, Rotation};

/// Validate and run a weight rotation through the raw pointers of the C contract.
#[allow(clippy::too_many_arguments)]
unsafe fn rotate_c(
    channels_out: bool,
    weight: *mut c_void,
    dtype_code: quarot_dtype,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    bias: *mut c_void,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    let dt = dtype(dtype_code, "dtype")?;
    let channels = if channels_out {
        rotate::Channels::Out
    } else {
        rotate::Channels::In
    };
    rotate::validate(
        channels,
        out_features,
        in_features,
        row_stride,
        rotation,
        flags,
    )?;
    if out_features == 0 || in_features == 0 {
        // An empty weight: nothing is rotated (not the bias either), but a bad R is still
        // an error, as in the Rust API (found by fuzz/).
        if let Rotation::Dense { matrix, n } = rotation {
            rotate::check_finite(matrix, *n)?;
        }
        return Ok(());
    }
    if weight.is_null() {
        return Err(null("weight"));
    }
    if !bias.is_null() {
        let w0 = weight as usize;
        let w1 = w0 + ((out_features - 1) * row_stride + in_features) * dt.size();
        let (b0, b1) = (bias as usize, bias as usize + out_features * dt.size());
        if b0 < w1 && w0 < b1 {
            return Err(Error::new(Status::Overlap, "bias overlaps the weight"));
        }
    }
    macro_rules! go {
        ($t:ty) => {
            // SAFETY: validated; pointer validity is the caller's C contract.
            unsafe {
                rotate::rotate_raw::<$t>(
                    channels_out,
                    weight.cast(),
                    out_features,
                    in_features,
                    row_stride,
                    bias.cast(),
                    rotation,
                    flags,
                )
            }
        };
    }
    match dt {
        DType::F32 => go!(f32),
        DType::F16 => go!(f16),
        DType::Bf16 => go!(bf16),
    }
}

/// The dense rotation of the C contract as a slice (NULL and size checked).
unsafe fn dense_rotation<'a>(
    rotation: *const f64,
    rotation_n: usize,
) -> Result<Rotation<'a>, Error> {
    if rotation.is_null() {
        return Err(null("rotation"));
    }
    let len = rotation_n
        .checked_mul(rotation_n)
        .filter(|l| l.checked_mul(8).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| {
            Error::new(
                Status::SizeOverflow,
                format!("rotation_n = {rotation_n} squared overflows"),
            )
        })?;
    Ok(Rotation::Dense {
        // SAFETY: the caller's contract: rotation_n * rotation_n readable doubles.
        matrix: unsafe { std::slice::from_raw_parts(rotation, len) },
        n: rotation_n,
    })
}

/// The Hadamard rotation of the C contract (signs may be NULL).
unsafe fn hadamard_rotation<'a>(
    rotation_n: usize,
    layout: quarot_hadamard_layout,
    signs: *const i8,
    scale: f64,
) -> Result<Rotation<'a>, Error> {
    let layout = HadamardLayout::from_code(layout).ok_or_else(|| {
        Error::new(
            Status::InvalidArgument,
            format!("layout = {layout} is not a QUAROT_LAYOUT_* value (0, 1, 2)"),
        )
    })?;
    let signs = if signs.is_null() {
        None
    } else if rotation_n > isize::MAX as usize {
        // No caller can have that many signs; a slice that long cannot even be formed.
        return Err(Error::new(
            Status::SizeOverflow,
            format!("rotation_n = {rotation_n} overflows the address space"),
        ));
    } else {
        // SAFETY: the caller's contract: rotation_n readable int8_t.
        Some(unsafe { std::slice::from_raw_parts(signs, rotation_n) })
    };
    Ok(Rotation::Hadamard(HadamardRotation {
        n: rotation_n,
        layout,
        signs,
        scale,
    }))
}

/// Rotate the input channels of a weight in place (Quark's `rotate_in_channels2`).
///
/// W is out_features x in_features, row-major, rows `row_stride` elements apart (>= in_features),
/// of element type `dtype`. `rotation` is R, rotation_n x rotation_n doubles, row-major;
/// rotation_n must divide in_features, and each block of rotation_n consecutive columns
/// becomes W[:, block] * R (rotation_n == in_features: the plain R1 case; rotation_n ==
/// head_dim on o_proj: R2).
///
/// Exactness: the default mode computes each result as a double-precision sum and rounds it
/// once to `dtype` (round to nearest even), as Quark does in float64 (Quark then rounds
/// f16/bf16 twice, through float32; results can differ from Quark by one ulp there).
/// `flags`: QUAROT_FLAG_PARALLEL (use libquarot's worker pool) and QUAROT_FLAG_F32_ACCUMULATE.
///
/// Memory: O(panel) scratch per thread plus one packed copy of R; never a copy of W. Large
/// scratch buffers are kept for the next call until quarot_release_scratch().
/// On error nothing is written. Errors: QUAROT_ERR_NULL_POINTER (weight with a non-empty
/// matrix, or rotation), QUAROT_ERR_INVALID_DTYPE, QUAROT_ERR_INVALID_FLAGS (a bit other
/// than QUAROT_FLAG_PARALLEL and QUAROT_FLAG_F32_ACCUMULATE), QUAROT_ERR_INVALID_STRIDE,
/// QUAROT_ERR_INVALID_ARGUMENT (rotation_n = 0 or not dividing in_features, non-finite
/// entries of R), QUAROT_ERR_SIZE_OVERFLOW (the weight's extent, or rotation_n^2),
/// QUAROT_ERR_OUT_OF_MEMORY, QUAROT_ERR_THREAD_POOL (QUAROT_FLAG_PARALLEL),
/// QUAROT_ERR_ISA_UNAVAILABLE. Thread-safe; no threads unless QUAROT_FLAG_PARALLEL.
///
/// # Safety
/// `weight` must be valid for the described matrix; `rotation` for rotation_n^2 doubles.
#[no_mangle]
pub unsafe extern "C" fn quarot_rotate_in_channels(
    weight: *mut c_void,
    dtype: quarot_dtype,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    rotation: *const f64,
    rotation_n: usize,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe {
        let rot = dense_rotation(rotation, rotation_n)?;
        rotate_c(
            false,
            weight,
            dtype,
            out_features,
            in_features,
            row_stride,
            std::ptr::null_mut(),
            &rot,
            flags,
        )
    })
}

/// Rotate the output channels of a weight (and its bias) in place (Quark's
/// `rotate_out_channels2`).
///
/// W as for quarot_rotate_in_channels; rotation_n must divide out_features, and each block
/// of rotation_n consecutive rows becomes R^T * W[block, :]; if `bias` (out_features
/// elements of `dtype`) is not NULL, bias[block] becomes R^T * bias[block]. rotation_n ==
/// head_dim on v_proj is R2 (with GQA, v_proj has n_kv_heads * head_dim rows).
/// Everything else as quarot_rotate_in_channels; a bias overlapping the weight is
/// QUAROT_ERR_OVERLAP. An empty weight (out_features or in_features 0) is a no-op, for
/// the bias too (the arguments are still checked).
///
/// # Safety
/// As quarot_rotate_in_channels; `bias`, if not NULL, valid for out_features elements.
#[no_mangle]
pub unsafe extern "C" fn quarot_rotate_out_channels(
    weight: *mut c_void,
    dtype: quarot_dtype,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    bias: *mut c_void,
    rotation: *const f64,
    rotation_n: usize,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe {
        let rot = dense_rotation(rotation, rotation_n)?;
        rotate_c(
            true,
            weight,
            dtype,
            out_features,
            in_features,
            row_stride,
            bias,
            &rot,
            flags,
        )
    })
}

/// quarot_rotate_in_channels with the Hadamard rotation R = diag(signs) * M_layout * scale
/// of size rotation_n (a supported width, see quarot_hadamard_size_supported), applied with
/// the fast transform in double precision: O(n log n + n K) per row instead of O(n^2), and
/// R is never formed. `signs` (rotation_n values of +1 or -1) may be NULL for none; scale
/// must be finite and nonzero (a zero scale is no rotation).
/// Examples: Quark <= 0.10 `get_rotation_matrix(n, random=False)` is layout
/// QUAROT_LAYOUT_KRON_POW2_K with scale 1/sqrt(n); `random_hadamard_matrix(n)` (Quark <= 0.10)
/// is QUAROT_LAYOUT_MATMUL_HADU with signs from quarot_random_signs and scale
/// quarot_quark_hadamard_scale(n). `flags`: QUAROT_FLAG_PARALLEL only.
///
/// On error nothing is written. Errors: QUAROT_ERR_NULL_POINTER (weight with a non-empty
/// matrix), QUAROT_ERR_INVALID_DTYPE, QUAROT_ERR_INVALID_FLAGS (any bit but
/// QUAROT_FLAG_PARALLEL, QUAROT_FLAG_F32_ACCUMULATE included: this path always computes in
/// double), QUAROT_ERR_INVALID_STRIDE, QUAROT_ERR_INVALID_ARGUMENT (rotation_n = 0 or not
/// dividing in_features, exactly as for quarot_rotate_in_channels; layout not a
/// QUAROT_LAYOUT_* value; scale not finite, or 0; an entry of signs other than +1 / -1),
/// QUAROT_ERR_UNSUPPORTED_SIZE (rotation_n >= 1 divides in_features but has no Hadamard
/// matrix), QUAROT_ERR_SIZE_OVERFLOW, QUAROT_ERR_OUT_OF_MEMORY, QUAROT_ERR_THREAD_POOL
/// (QUAROT_FLAG_PARALLEL), QUAROT_ERR_ISA_UNAVAILABLE. Thread-safe.
///
/// # Safety
/// `weight` as for quarot_rotate_in_channels; `signs` NULL or valid for rotation_n values.
#[no_mangle]
pub unsafe extern "C" fn quarot_rotate_in_channels_hadamard(
    weight: *mut c_void,
    dtype: quarot_dtype,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    rotation_n: usize,
    layout: quarot_hadamard_layout,
    signs: *const i8,
    scale: f64,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe {
        let rot = hadamard_rotation(rotation_n, layout, signs, scale)?;
        rotate_c(
            false,
            weight,
            dtype,
            out_features,
            in_features,
            row_stride,
            std::ptr::null_mut(),
            &rot,
            flags,
        )
    })
}

/// quarot_rotate_out_channels with a Hadamard rotation (see
/// quarot_rotate_in_channels_hadamard): each block of rotation_n consecutive rows becomes
/// R^T * W[block, :] (and bias[block] becomes R^T * bias[block] when `bias` is not
/// NULL); scale must be finite and nonzero.
///
/// Errors: those of quarot_rotate_in_channels_hadamard with out_features in place of
/// in_features (rotation_n = 0 or not dividing out_features: QUAROT_ERR_INVALID_ARGUMENT;
/// a rotation_n >= 1 dividing it with no Hadamard matrix: QUAROT_ERR_UNSUPPORTED_SIZE),
/// plus QUAROT_ERR_OVERLAP (bias overlaps the weight).
///
/// # Safety
/// As quarot_rotate_out_channels; `signs` NULL or valid for rotation_n values.
#[no_mangle]
pub unsafe extern "C" fn quarot_rotate_out_channels_hadamard(
    weight: *mut c_void,
    dtype: quarot_dtype,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    bias: *mut c_void,
    rotation_n: usize,
    layout: quarot_hadamard_layout,
    signs: *const i8,
    scale: f64,
    flags: u32,
) -> quarot_status {
    guard(|| unsafe {
        let rot = hadamard_rotation(rotation_n, layout, signs, scale)?;
        rotate_c(
            true,
            weight,
            dtype,
            out_features,
            in_features,
            row_stride,
            bias,
            &rot,
            flags,
        )
    })
}

/// Write the Hadamard rotation R = diag(signs) * M_layout * scale (n x n doubles, row-major)
/// into `out` (capacity `out_len` doubles, >= n * n). n must be a supported width (see
/// quarot_hadamard_size_supported); `signs` (n values of +1 or -1) may be NULL; scale must
/// be finite and nonzero. With layout
/// QUAROT_LAYOUT_MATMUL_HADU, signs from quarot_random_signs(seed) and scale
/// quarot_quark_hadamard_scale(n) this is Quark 0.9's `random_hadamard_matrix(n)` after
/// `torch.manual_seed(seed)`; QUAROT_LAYOUT_KRON_POW2_K with scale 1/sqrt(n) is Quark 0.9's
/// `get_rotation_matrix(n, random=False)`. Thread-safe.
///
/// On error nothing is written. Errors: QUAROT_ERR_INVALID_ARGUMENT (layout not a
/// QUAROT_LAYOUT_* value; out_len < n * n; scale not finite, or 0; an entry of signs other
/// than +1 / -1), QUAROT_ERR_UNSUPPORTED_SIZE (n = 0, or no Hadamard matrix of size n),
/// QUAROT_ERR_SIZE_OVERFLOW (n * n overflows), QUAROT_ERR_NULL_POINTER (out).
///
/// # Safety
/// `out` valid for out_len doubles; `signs` NULL or valid for n values.
#[no_mangle]
pub unsafe extern "C" fn quarot_hadamard_matrix(
    out: *mut f64,
    out_len: usize,
    n: usize,
    layout: quarot_hadamard_layout,
    signs: *const i8,
    scale: f64,
) -> quarot_status {
    guard(|| unsafe {
        let rot = hadamard_rotation(n, layout, signs, scale)?;
        let Rotation::Hadamard(h) = rot else {
            unreachable!()
        };
        // n = 0 is a width with no Hadamard matrix here (QUAROT_ERR_UNSUPPORTED_SIZE), as for
        // the transforms; only the weight rotations call rotation_n = 0 an invalid argument.
        rotate::check_hadamard_n(n, "n")?;
        let need = n.checked_mul(n).ok_or_else(|| {
            Error::new(Status::SizeOverflow, format!("n = {n} squared overflows"))
        })?;
        if out.is_null() {
            return Err(null("out"));
        }
        if out_len < need {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("out_len = {out_len} is less than n * n = {need}"),
            ));
        }
        rotate::matrices::hadamard_matrix(std::slice::from_raw_parts_mut(out, need), &h)
    })
}

/// 1 / (double) sqrtf(n): the normalization of Quark's `matmul_hadU` and
/// `random_hadamard_matrix` (they divide by the float32 square root of n). 0 for n == 0.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn quarot_quark_hadamard_scale(n: usize) -> f64 {
    guard_value(0.0, || {
        if n == 0 {
            0.0
        } else {
            rotate::quark_hadamard_scale(n)
        }
    })
}

/// Write n random signs (+1 / -1) into `out`: s_i = 2 * (MT19937(seed) output i & 1) - 1,
/// identical on every platform and equal to `torch.manual_seed(seed);
/// torch.randint(0, 2, (n,)) * 2 - 1` on the CPU (only the low 32 bits of seed are used,
/// as torch does). n == 0 writes nothing, and `out` may then be NULL. Thread-safe.
///
/// Errors: QUAROT_ERR_NULL_POINTER (out NULL with n > 0); nothing else.
///
/// # Safety
/// `out` valid for n int8_t writes.
#[no_mangle]
pub unsafe extern "C" fn quarot_random_signs(out: *mut i8, n: usize, seed: u64) -> quarot_status {
    guard(|| {
        if n == 0 {
            return Ok(());
        }
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: caller contract.
        rotate::matrices::random_signs(unsafe { std::slice::from_raw_parts_mut(out, n) }, seed);
        Ok(())
    })
}

/// Write a random orthogonal n x n matrix (row-major doubles, Haar-distributed: Householder QR
/// of a seeded Gaussian matrix with sign-fixed R) into `out` (capacity out_len >= n * n).
/// Deterministic for a seed. O(n^3) on the calling thread. Thread-safe.
///
/// On error nothing is written. Errors: QUAROT_ERR_NULL_POINTER (out),
/// QUAROT_ERR_INVALID_ARGUMENT (n = 0: any n >= 1 is a valid size here, so 0 is an invalid
/// argument rather than an unsupported width; out_len < n * n), QUAROT_ERR_SIZE_OVERFLOW
/// (n * n overflows).
///
/// # Safety
/// `out` valid for out_len doubles.
#[no_mangle]
pub unsafe extern "C" fn quarot_random_orthogonal(
    out: *mut f64,
    out_len: usize,
    n: usize,
    seed: u64,
) -> quarot_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: caller contract.
        rotate::matrices::random_orthogonal(
            unsafe { std::slice::from_raw_parts_mut(out, out_len) },
            n,
            seed,
        )
    })
}
