//! The online rotations of QuaRot, for engines: R4 (Quark's `R4Wrapper`: a normalized
//! Hadamard on the input of down_proj, then optional activation quantization, then the
//! engine's own op) and R3 (Quark's `QKRotation`: the engine's RoPE, then a normalized
//! Hadamard on every head of q and k).
//!
//! Handles are immutable after creation: `forward` takes `&self`, keeps its scratch per
//! thread (grown on demand and kept, so steady-state shapes allocate nothing), takes no
//! locks, and starts no threads. Callbacks run on the calling thread.

pub mod quant;

use crate::dispatch::{self, Isa};
use crate::element::{DType, Element};
use crate::error::{Error, Status};
use crate::hadamard::{
    self, normalized_scale, HadamardPlan, FLAG_BLOCK_DIAGONAL, FLAG_PAD_TRUNCATE, FLAG_PARALLEL,
    FLAG_TRANSPOSE_K,
};
use crate::kernel::Rows;
use half::{bf16, f16};
pub use quant::QuantConfig;
use std::cell::Cell;

/// `forward` flag: rotate (and fake-quantize) the caller's rows in place and hand those to
/// the op, instead of a copy in scratch.
pub const FORWARD_IN_PLACE: u32 = 1;

/// What happens between the rotation and the op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quant {
    /// Nothing: the op gets the rotated rows.
    None,
    /// Quantize and dequantize the rotated rows (same element type).
    Fake(QuantConfig),
    /// The op also gets int8 codes, scales and zero points (see [`quant`]).
    Real(QuantConfig),
    /// A caller's callback rewrites the rotated rows in place.
    Custom,
}

/// The activations the op receives. Raw pointers: they are handed to C.
#[derive(Clone, Copy, Debug)]
pub struct ActView {
    /// `rows` rows of `n` elements of `dtype`, `row_stride` elements apart.
    pub data: *const u8,
    /// Element type of `data`.
    pub dtype: DType,
    /// Rows.
    pub rows: usize,
    /// Row width.
    pub n: usize,
    /// Elements between row starts in `data`.
    pub row_stride: usize,
    /// Real quantization: codes (rows x n, row stride n); NULL otherwise.
    pub codes: *const i8,
    /// Real quantization: scales (rows x groups); NULL otherwise.
    pub scales: *const f32,
    /// Real quantization: zero points (rows x groups); NULL otherwise.
    pub zeros: *const f32,
    /// Values per group (n when per row); 0 without real quantization.
    pub group_size: usize,
    /// Groups per row; 0 without real quantization.
    pub groups: usize,
}

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
    static LAST_CALLBACK_CODE: Cell<i32> = const { Cell::new(0) };
}

/// The code the most recent failing callback returned on this thread (0 if none failed).
pub fn last_callback_code() -> i32 {
    LAST_CALLBACK_CODE.with(|c| c.get())
}

fn callback_failed(what: &str, code: i32) -> Error {
    LAST_CALLBACK_CODE.with(|c| c.set(code));
    Error::new(
        Status::Callback,
        format!("the {what} callback returned {code}"),
    )
}

/// Per-thread buffers of the handles.
#[derive(Default)]
struct Scratch {
    /// Rotated rows (f32 words, so 16-bit elements are aligned).
    rotated: Vec<f32>,
    /// One row widened to f32.
    row: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
    /// The transform's own scratch.
    transform: Vec<f32>,
}

/// Run `f` with this thread's scratch. A callback that re-enters libquarot on the same
/// thread finds no scratch and uses a fresh one (never a double borrow).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut s = SCRATCH.with(|c| c.take()).unwrap_or_default();
    let r = f(&mut s);
    SCRATCH.with(|c| c.set(Some(s)));
    r
}

fn check_handle_flags(flags: u32) -> Result<(), Error> {
    if flags & FLAG_PARALLEL != 0 {
        return Err(Error::new(
            Status::InvalidFlags,
            "QUAROT_FLAG_PARALLEL is not accepted by handles: they never start threads (split rows across your own threads)",
        ));
    }
    // QUAROT_FLAG_F32_ACCUMULATE is left to HadamardPlan::new, which says what it is for.
    let known = FLAG_TRANSPOSE_K
        | FLAG_PAD_TRUNCATE
        | FLAG_BLOCK_DIAGONAL
        | crate::rotate::ROTATE_FLAG_F32_ACCUMULATE;
    let unknown = flags & !known;
    if unknown != 0 {
        return Err(Error::new(
            Status::InvalidFlags,
            format!(
                "flags = {flags:#x} has bits {unknown:#x} that handles do not know (known: \
                 QUAROT_FLAG_TRANSPOSE_K, QUAROT_FLAG_PAD_TRUNCATE, QUAROT_FLAG_BLOCK_DIAGONAL)"
            ),
        ));
    }
    Ok(())
}

/// Elements spanned by `rows` rows of `n` elements `stride` apart, in bytes too, or an
/// overflow error.
fn extent(what: &str, rows: usize, n: usize, stride: usize, elem: usize) -> Result<usize, Error> {
    if rows == 0 {
        return Ok(0);
    }
    (rows - 1)
        .checked_mul(stride)
        .and_then(|x| x.checked_add(n))
        .filter(|&x| {
            x.checked_mul(elem)
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| {
            Error::new(
                Status::SizeOverflow,
                format!("{what}: {rows} rows with stride {stride} overflow the address space"),
            )
        })
}

/// Transform `rows` rows (`n` = plan width) from src to dst with the handle's scratch.
///
/// # Safety
/// As `hadamard::execute_with_scratch`.
#[allow(clippy::too_many_arguments)]
unsafe fn transform(
    isa: Isa,
    dtype: DType,
    plan: &HadamardPlan,
    scale: f32,
    src: *const u8,
    src_stride: usize,
    dst: *mut u8,
    dst_stride: usize,
    rows: usize,
    scratch: &mut Vec<f32>,
) -> Result<(), Error> {
    unsafe fn go<T: Element>(
        isa: Isa,
        plan: &HadamardPlan,
        scale: f32,
        src: *const u8,
        src_stride: usize,
        dst: *mut u8,
        dst_stride: usize,
        rows: usize,
        scratch: &mut Vec<f32>,
    ) -> Result<(), Error> {
        let job = Rows {
            src: src.cast::<T>(),
            src_stride,
            dst: dst.cast::<T>(),
            dst_stride,
            rows,
        };
        // SAFETY: forwarded.
        unsafe { hadamard::execute_with_scratch(isa, plan, scale, job, scratch) }
    }
    // SAFETY: forwarded; the element type matches the buffers (the caller's dtype).
    unsafe {
        match dtype {
            DType::F32 => go::<f32>(
                isa, plan, scale, src, src_stride, dst, dst_stride, rows, scratch,
            ),
            DType::F16 => go::<f16>(
                isa, plan, scale, src, src_stride, dst, dst_stride, rows, scratch,
            ),
            DType::Bf16 => go::<bf16>(
                isa, plan, scale, src, src_stride, dst, dst_stride, rows, scratch,
            ),
        }
    }
}

/// Read element `i` of a row of `dtype` as f32.
///
/// # Safety
/// `p` points to a valid row of that type with more than `i` elements.
#[inline]
unsafe fn widen_row(dtype: DType, p: *const u8, out: &mut [f32]) {
    unsafe fn go<T: Element>(p: *const u8, out: &mut [f32]) {
        // SAFETY: the caller's contract; aligned (scratch rows are f32-aligned, caller
        // rows are the caller's typed memory).
        let row = unsafe { std::slice::from_raw_parts(p.cast::<T>(), out.len()) };
        for (o, v) in out.iter_mut().zip(row) {
            *o = v.to_f32();
        }
    }
    // SAFETY: forwarded.
    unsafe {
        match dtype {
            DType::F32 => go::<f32>(p, out),
            DType::F16 => go::<f16>(p, out),
            DType::Bf16 => go::<bf16>(p, out),
        }
    }
}

/// Round `x` once to `dtype` and store it as the row at `p`.
///
/// # Safety
/// As `widen_row`, writable.
#[inline]
unsafe fn narrow_row(dtype: DType, x: &[f32], p: *mut u8) {
    unsafe fn go<T: Element>(x: &[f32], p: *mut u8) {
        // SAFETY: the caller's contract.
        let row = unsafe { std::slice::from_raw_parts_mut(p.cast::<T>(), x.len()) };
        for (o, &v) in row.iter_mut().zip(x) {
            *o = T::from_f32(v);
        }
    }
    // SAFETY: forwarded.
    unsafe {
        match dtype {
            DType::F32 => go::<f32>(x, p),
            DType::F16 => go::<f16>(x, p),
            DType::Bf16 => go::<bf16>(x, p),
        }
    }
}

/// Quark's `R4Wrapper` (the online R4): forward(x) = op(quantize(x * H)), H the normalized
/// Hadamard of width n (`matmul_hadU` layout), or of block size r applied to each block of
/// r values (Quark 0.10 `rotation_size`).
#[derive(Clone, Debug)]
pub struct R4Wrapper {
    n: usize,
    block: usize,
    dtype: DType,
    plan: HadamardPlan,
    scale: f32,
    quant: Quant,
    isa: Isa,
}

impl R4Wrapper {
    /// A wrapper for rows of width `n` of `dtype`; `block_size` 0 (or n) rotates whole
    /// rows, else it must divide n and be a supported width. `flags`: the transform's
    /// QUAROT_FLAG_TRANSPOSE_K / QUAROT_FLAG_PAD_TRUNCATE (not PARALLEL).
    pub fn new(
        n: usize,
        block_size: usize,
        dtype: DType,
        flags: u32,
        quant: Quant,
    ) -> Result<R4Wrapper, Error> {
        check_handle_flags(flags)?;
        if n == 0 {
            return Err(Error::new(
                Status::UnsupportedSize,
                "n = 0: the width must be at least 1",
            ));
        }
        let block = if block_size == 0 { n } else { block_size };
        if block > n || !n.is_multiple_of(block) {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("block_size = {block_size} does not divide n = {n}"),
            ));
        }
        // Errors about the block width name the parameter that set it.
        let name = if block == n { "n" } else { "block_size" };
        let plan = HadamardPlan::new_named(block, flags, name)?;
        if let Quant::Fake(c) | Quant::Real(c) = quant {
            c.validate(n)?;
        }
        Ok(R4Wrapper {
            n,
            block,
            dtype,
            plan,
            scale: normalized_scale(plan.n()),
            quant,
            isa: dispatch::active_isa()?,
        })
    }

    /// Row width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether [`Quant::Custom`] was asked for (the caller must pass a quantizer).
    pub fn quant(&self) -> Quant {
        self.quant
    }

    /// Rotate `rows` rows at `x` (`x_stride` elements apart), quantize, and call `op`.
    /// `custom` is called for [`Quant::Custom`] with (rows pointer, rows, n, row stride).
    /// Without [`FORWARD_IN_PLACE`] the caller's rows are only read.
    ///
    /// # Safety
    /// `x` must be valid for the described rows of the handle's element type (writable
    /// with [`FORWARD_IN_PLACE`]), and not be written by anyone else during the call.
    #[allow(clippy::type_complexity)]
    pub unsafe fn forward(
        &self,
        x: *mut u8,
        rows: usize,
        x_stride: usize,
        flags: u32,
        custom: Option<&mut dyn FnMut(*mut u8, usize, usize, usize) -> i32>,
        op: &mut dyn FnMut(&ActView) -> i32,
    ) -> Result<(), Error> {
        if flags & !FORWARD_IN_PLACE != 0 {
            return Err(Error::new(
                Status::InvalidFlags,
                format!(
                    "forward flags = {flags:#x} has unknown bits {:#x} (known: QUAROT_FORWARD_IN_PLACE = 1)",
                    flags & !FORWARD_IN_PLACE
                ),
            ));
        }
        let n = self.n;
        if x_stride < n {
            return Err(Error::new(
                Status::InvalidStride,
                format!("x_row_stride = {x_stride} is smaller than n = {n}"),
            ));
        }
        let elem = self.dtype.size();
        extent("x", rows, n, x_stride, elem)?;
        let mut custom = custom;
        if self.quant == Quant::Custom && custom.is_none() {
            return Err(Error::new(
                Status::NullPointer,
                "the handle was made for a custom quantizer and none was given",
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        if x.is_null() {
            return Err(Error::new(Status::NullPointer, "x is NULL"));
        }
        let in_place = flags & FORWARD_IN_PLACE != 0;
        with_scratch(|s| {
            // Everything that can fail for lack of memory happens before any write.
            let words = (rows * n * elem).div_ceil(4);
            if !in_place {
                hadamard::grow(&mut s.rotated, words, 0.0)?;
            }
            let (dst, dst_stride) = if in_place {
                (x, x_stride)
            } else {
                (s.rotated.as_mut_ptr().cast::<u8>(), n)
            };
            let per_row = n / self.block;
            let (mut groups, mut gs) = (0, 0);
            match self.quant {
                Quant::Fake(_) => hadamard::grow(&mut s.row, n, 0.0)?,
                Quant::Real(c) => {
                    gs = c.group(n);
                    groups = n / gs;
                    hadamard::grow(&mut s.row, n, 0.0)?;
                    hadamard::grow(&mut s.codes, rows * n, 0)?;
                    hadamard::grow(&mut s.scales, rows * groups, 0.0)?;
                    hadamard::grow(&mut s.zeros, rows * groups, 0.0)?;
                }
                _ => {}
            }
            // SAFETY (transform calls): x is valid for the rows (caller), dst is x itself
            // (same rows, same stride: in place) or scratch of rows * n elements; the
            // element type is the handle's.
            unsafe {
                if per_row == 1 {
                    transform(
                        self.isa,
                        self.dtype,
                        &self.plan,
                        self.scale,
                        x,
                        x_stride,
                        dst,
                        dst_stride,
                        rows,
                        &mut s.transform,
                    )?;
                } else {
                    // Each row is per_row contiguous blocks of `block` values.
                    for i in 0..rows {
                        transform(
                            self.isa,
                            self.dtype,
                            &self.plan,
                            self.scale,
                            x.add(i * x_stride * elem),
                            self.block,
                            dst.add(i * dst_stride * elem),
                            self.block,
                            per_row,
                            &mut s.transform,
                        )?;
                    }
                }
            }
            let row_ptr = |i: usize| dst.wrapping_add(i * dst_stride * elem);
            match self.quant {
                Quant::None => {}
                Quant::Fake(c) => {
                    for i in 0..rows {
                        let row = &mut s.row[..n];
                        // SAFETY: row i of dst (valid, see above).
                        unsafe { widen_row(self.dtype, row_ptr(i), row) };
                        c.fake_quantize(row);
                        // SAFETY: as above.
                        unsafe { narrow_row(self.dtype, row, row_ptr(i)) };
                    }
                }
                Quant::Real(c) => {
                    for i in 0..rows {
                        let row = &mut s.row[..n];
                        // SAFETY: as above.
                        unsafe { widen_row(self.dtype, row_ptr(i), row) };
                        c.quantize(
                            row,
                            &mut s.codes[i * n..(i + 1) * n],
                            &mut s.scales[i * groups..(i + 1) * groups],
                            &mut s.zeros[i * groups..(i + 1) * groups],
                        );
                    }
                }
                Quant::Custom => {
                    let f = custom.as_mut().expect("checked above");
                    let code = f(dst, rows, n, dst_stride);
                    if code != 0 {
                        return Err(callback_failed("quantization", code));
                    }
                }
            }
            let real = matches!(self.quant, Quant::Real(_));
            let view = ActView {
                data: dst,
                dtype: self.dtype,
                rows,
                n,
                row_stride: dst_stride,
                codes: if real {
                    s.codes.as_ptr()
                } else {
                    std::ptr::null()
                },
                scales: if real {
                    s.scales.as_ptr()
                } else {
                    std::ptr::null()
                },
                zeros: if real {
                    s.zeros.as_ptr()
                } else {
                    std::ptr::null()
                },
                group_size: gs,
                groups,
            };
            match op(&view) {
                0 => Ok(()),
                code => Err(callback_failed("op", code)),
            }
        })
    }
}

/// The layout of q and k for [`QkRotation::forward`] (and what the RoPE callback sees):
/// head h of token t of q starts at element t * q_token_stride + h * q_head_stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkShape {
    /// Tokens.
    pub tokens: usize,
    /// Heads of q.
    pub n_heads: usize,
    /// Heads of k (GQA: fewer than n_heads).
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Elements between tokens of q.
    pub q_token_stride: usize,
    /// Elements between heads of q.
    pub q_head_stride: usize,
    /// Elements between tokens of k.
    pub k_token_stride: usize,
    /// Elements between heads of k.
    pub k_head_stride: usize,
}

/// Quark's `QKRotation` after RoPE (`add_qk_rotation_after_function_call_in_forward`): the
/// engine's RoPE, then the normalized Hadamard of width head_dim on every head of q and k.
#[derive(Clone, Debug)]
pub struct QkRotation {
    head_dim: usize,
    dtype: DType,
    plan: HadamardPlan,
    scale: f32,
    isa: Isa,
}

/// Whether q and k are token-major views of the same rows (a fused QKV tensor: equal token
/// strides) whose per-token head ranges are disjoint: then no element of q is one of k even
/// though their address ranges interleave. Each token's heads occupy
/// [start, start + (heads - 1) * head_stride + head_dim) of its token stride; the two
/// footprints must not meet modulo the token stride.
fn interleaved_apart(s: &QkShape, q0: usize, k0: usize, elem: usize) -> bool {
    if s.q_token_stride != s.k_token_stride || s.tokens < 2 {
        return false;
    }
    let ts = s.q_token_stride * elem;
    let foot = |heads: usize, hs: usize| ((heads - 1) * hs + s.head_dim) * elem;
    let (fq, fk) = (
        foot(s.n_heads, s.q_head_stride),
        foot(s.n_kv_heads, s.k_head_stride),
    );
    if fq > ts || fk > ts || ts == 0 {
        return false; // not token-major
    }
    // k's footprint starts delta bytes after q's, within a token stride.
    let delta = if k0 >= q0 {
        (k0 - q0) % ts
    } else {
        (ts - (q0 - k0) % ts) % ts
    };
    delta >= fq && delta + fk <= ts
}

/// Check one tensor's layout: heads must not overlap; returns its extent in elements.
fn check_heads(
    what: &str,
    tokens: usize,
    heads: usize,
    d: usize,
    ts: usize,
    hs: usize,
    elem: usize,
) -> Result<usize, Error> {
    if heads == 0 {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("{what}: the number of heads is 0"),
        ));
    }
    if tokens == 0 {
        return Ok(0);
    }
    let bad = |msg: String| Err(Error::new(Status::InvalidStride, msg));
    if heads > 1 && hs < d {
        return bad(format!(
            "{what}_head_stride = {hs} is smaller than head_dim = {d}"
        ));
    }
    let head_span = extent(what, heads, d, hs, elem)?;
    // Token-major ([tokens, heads, d]) or head-major ([heads, tokens, d]) layouts.
    let token_major = tokens == 1 || ts >= head_span;
    let head_major = ts >= d && (heads == 1 || hs >= extent(what, tokens, d, ts, elem)?);
    if !token_major && !head_major {
        return bad(format!(
            "{what}: token stride {ts} and head stride {hs} make heads overlap (head_dim {d}, {heads} heads, {tokens} tokens)"
        ));
    }
    let last = (tokens - 1)
        .checked_mul(ts)
        .and_then(|a| (heads - 1).checked_mul(hs).and_then(|b| a.checked_add(b)))
        .and_then(|x| x.checked_add(d))
        .filter(|&x| {
            x.checked_mul(elem)
                .is_some_and(|b| b <= isize::MAX as usize)
        });
    last.ok_or_else(|| {
        Error::new(
            Status::SizeOverflow,
            format!("{what}: the strides overflow the address space"),
        )
    })
}

impl QkRotation {
    /// A rotation for heads of `head_dim` values of `dtype`; `flags`: QUAROT_FLAG_TRANSPOSE_K
    /// and QUAROT_FLAG_PAD_TRUNCATE as for the transform (not PARALLEL).
    pub fn new(head_dim: usize, dtype: DType, flags: u32) -> Result<QkRotation, Error> {
        check_handle_flags(flags)?;
        let plan = HadamardPlan::new_named(head_dim, flags, "head_dim")?;
        Ok(QkRotation {
            head_dim,
            dtype,
            plan,
            scale: normalized_scale(plan.n()),
            isa: dispatch::active_isa()?,
        })
    }

    /// head_dim.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Check `shape`, call `rope` (if any), then rotate every head of q and k in place.
    ///
    /// # Safety
    /// q and k must be valid, writable memory for the described heads of the handle's
    /// element type, and not be used by anyone else during the call.
    pub unsafe fn forward(
        &self,
        q: *mut u8,
        k: *mut u8,
        shape: &QkShape,
        rope: Option<&mut dyn FnMut(&QkShape) -> i32>,
    ) -> Result<(), Error> {
        let d = self.head_dim;
        if shape.head_dim != d {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "head_dim = {} but the handle was made for {d}",
                    shape.head_dim
                ),
            ));
        }
        let elem = self.dtype.size();
        let s = shape;
        let q_len = check_heads(
            "q",
            s.tokens,
            s.n_heads,
            d,
            s.q_token_stride,
            s.q_head_stride,
            elem,
        )?;
        let k_len = check_heads(
            "k",
            s.tokens,
            s.n_kv_heads,
            d,
            s.k_token_stride,
            s.k_head_stride,
            elem,
        )?;
        if s.tokens == 0 {
            return Ok(());
        }
        if q.is_null() {
            return Err(Error::new(Status::NullPointer, "q is NULL"));
        }
        if k.is_null() {
            return Err(Error::new(Status::NullPointer, "k is NULL"));
        }
        let (q0, k0) = (q as usize, k as usize);
        if q0 < k0 + k_len * elem && k0 < q0 + q_len * elem && !interleaved_apart(s, q0, k0, elem) {
            return Err(Error::new(
                Status::Overlap,
                "q and k overlap; they must be separate buffers, disjoint parts of one, or \
                 token-major views of one fused row with the same token stride and disjoint \
                 head ranges",
            ));
        }
        if let Some(rope) = rope {
            let code = rope(shape);
            if code != 0 {
                return Err(callback_failed("rope", code));
            }
        }
        with_scratch(|sc| {
            for (p, heads, ts, hs) in [
                (q, s.n_heads, s.q_token_stride, s.q_head_stride),
                (k, s.n_kv_heads, s.k_token_stride, s.k_head_stride),
            ] {
                // One call per head over its tokens, or per token over its heads,
                // whichever has more rows per call.
                let (outer, inner, os, is) = if s.tokens >= heads {
                    (heads, s.tokens, hs, ts)
                } else {
                    (s.tokens, heads, ts, hs)
                };
                for o in 0..outer {
                    let base = p.wrapping_add(o * os * elem);
                    // SAFETY: the heads were checked to lie in the caller's buffer without
                    // overlapping; in place (same rows, same stride).
                    unsafe {
                        transform(
                            self.isa,
                            self.dtype,
                            &self.plan,
                            self.scale,
                            base,
                            is,
                            base,
                            is,
                            inner,
                            &mut sc.transform,
                        )?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Where [`quantize_rows`] puts real quantization's results: `codes` rows x n (row stride
/// n), `scales` and `zeros` rows x groups.
pub struct RealOut<'a> {
    /// int8 codes.
    pub codes: &'a mut [i8],
    /// One scale per group.
    pub scales: &'a mut [f32],
    /// One zero point per group.
    pub zeros: &'a mut [f32],
}

/// The activation quantizer of the handles, on its own (no rotation): `rows` rows of `n`
/// values of `T`, `stride` apart in `data`. Without `real`, each row is fake-quantized in
/// place (rounded once to `T`); with it, `data` is only read and the codes, scales and zero
/// points are written. Everything is checked before anything is written.
pub fn quantize_rows<T: Element>(
    data: &mut [T],
    rows: usize,
    n: usize,
    stride: usize,
    cfg: &QuantConfig,
    real: Option<RealOut<'_>>,
) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::new(Status::InvalidArgument, "n = 0"));
    }
    cfg.validate(n)?;
    if stride < n {
        return Err(Error::new(
            Status::InvalidStride,
            format!("row_stride = {stride} is smaller than n = {n}"),
        ));
    }
    let need = extent("data", rows, n, stride, std::mem::size_of::<T>())?;
    if data.len() < need {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("data has {} elements, the rows need {need}", data.len()),
        ));
    }
    let groups = n / cfg.group(n);
    if let Some(r) = &real {
        let codes = rows.checked_mul(n);
        let params = rows.checked_mul(groups);
        let (Some(codes), Some(params)) = (codes, params) else {
            return Err(Error::new(Status::SizeOverflow, "rows * n overflows"));
        };
        if r.codes.len() < codes || r.scales.len() < params || r.zeros.len() < params {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "real quantization needs {codes} codes and {params} scales and zero points"
                ),
            ));
        }
    }
    let mut row = Vec::new();
    row.try_reserve_exact(n).map_err(|_| {
        Error::new(
            Status::OutOfMemory,
            format!("could not allocate a row of {n} f32"),
        )
    })?;
    row.resize(n, 0.0f32);
    let mut real = real;
    for r in 0..rows {
        let src = &mut data[r * stride..r * stride + n];
        for (o, v) in row.iter_mut().zip(src.iter()) {
            *o = v.to_f32();
        }
        match &mut real {
            None => {
                cfg.fake_quantize(&mut row);
                for (d, v) in src.iter_mut().zip(&row) {
                    *d = T::from_f32(*v);
                }
            }
            Some(out) => cfg.quantize(
                &row,
                &mut out.codes[r * n..(r + 1) * n],
                &mut out.scales[r * groups..(r + 1) * groups],
                &mut out.zeros[r * groups..(r + 1) * groups],
            ),
        }
    }
    Ok(())
}
