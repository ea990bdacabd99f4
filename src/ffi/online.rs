//! C handles for the online rotations: `quarot_r4_wrapper` (Quark's R4Wrapper) and
//! `quarot_qk_rotation` (Quark's QKRotation), thin wrappers over `crate::online`.

use super::{guard, guard_value, null, quarot_dtype, quarot_status};
use crate::error::{Error, Status};
use crate::online::{self, ActView, QkRotation, QkShape, Quant, QuantConfig, R4Wrapper};
use std::ffi::{c_int, c_void};

/// What the op wrapped by a quarot_r4_wrapper receives: the rotated (and quantized) rows.
///
/// `data` always holds `rows` rows of `n` elements of `dtype`, `row_stride` elements apart:
/// the rotated rows (fake-quantized, with QUAROT_QUANT_FAKE; rewritten by your quantizer,
/// with QUAROT_QUANT_CUSTOM). With QUAROT_QUANT_REAL, `codes`, `scales` and `zeros` are
/// set too: element j of row i is represented as
/// `scales[i * groups + j / group_size] * (codes[i * n + j] - zeros[i * groups + j / group_size])`
/// (codes in [-2^(bits-1), 2^(bits-1) - 1]); otherwise they are NULL and group_size and
/// groups are 0. Everything it points to belongs to libquarot and is valid only during the
/// callback.
#[repr(C)]
pub struct quarot_activations {
    /// The rotated rows.
    pub data: *const c_void,
    /// Element type of `data` (the wrapper's).
    pub dtype: quarot_dtype,
    /// Number of rows.
    pub rows: usize,
    /// Row width.
    pub n: usize,
    /// Elements between row starts in `data`.
    pub row_stride: usize,
    /// QUAROT_QUANT_REAL: rows x n codes, row-major (row stride n); else NULL.
    pub codes: *const i8,
    /// QUAROT_QUANT_REAL: rows x groups scales; else NULL.
    pub scales: *const f32,
    /// QUAROT_QUANT_REAL: rows x groups zero points (integers, as floats); else NULL.
    pub zeros: *const f32,
    /// QUAROT_QUANT_REAL: values per group (n when per token); else 0.
    pub group_size: usize,
    /// QUAROT_QUANT_REAL: groups per row (n / group_size); else 0.
    pub groups: usize,
}

/// The op a quarot_r4_wrapper wraps (e.g. the engine's down_proj matmul): called by
/// quarot_r4_wrapper_forward with the user_data given at creation, the activations, and
/// the `out` pointer given to forward. Return 0 on success; any other value makes forward
/// fail with QUAROT_ERR_CALLBACK and is kept for quarot_last_callback_code(). Runs on the
/// thread that called forward; must not unwind (C++ exceptions) or longjmp through
/// libquarot.
pub type quarot_op_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        x: *const quarot_activations,
        out: *mut c_void,
    ) -> c_int,
>;

/// A caller's activation quantizer (QUAROT_QUANT_CUSTOM): rewrite `rows` rows of `n`
/// elements of `dtype` at `data` (`row_stride` elements apart) in place. Return 0 on
/// success; as quarot_op_fn otherwise.
pub type quarot_quant_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        data: *mut c_void,
        dtype: quarot_dtype,
        rows: usize,
        n: usize,
        row_stride: usize,
    ) -> c_int,
>;

/// quarot_quant_config.kind: no quantization.
pub const QUAROT_QUANT_NONE: u32 = 0;
/// quarot_quant_config.kind: fake quantization (quantize, dequantize, same element type).
pub const QUAROT_QUANT_FAKE: u32 = 1;
/// quarot_quant_config.kind: real quantization (int8 codes, scales, zero points for the op,
/// see quarot_activations), with the rotated rows in `data` as well.
pub const QUAROT_QUANT_REAL: u32 = 2;
/// quarot_quant_config.kind: the caller's quantizer (`custom`, `custom_user_data`).
pub const QUAROT_QUANT_CUSTOM: u32 = 3;

/// `quarot_r4_wrapper_forward` flag: rotate (and fake-quantize) the caller's rows in place
/// and pass those to the op, instead of a copy in libquarot's scratch.
pub const QUAROT_FORWARD_IN_PLACE: u32 = 1;

/// Activation quantization between the rotation and the op (QuaRot's per-token
/// round-to-nearest `ActQuantizer`). For each group of `group_size` consecutive values of a
/// row (the whole row when group_size is 0), in float:
///
/// - xmin = min(min(group), 0) * clip_ratio, xmax = max(max(group), 0) * clip_ratio;
/// - symmetric: maxq = 2^(bits-1) - 1; amax = max(-xmin, xmax); scale = amax / maxq (1 when
///   amax = 0); zero = 0; q = clamp(round(x / scale), -(maxq + 1), maxq);
/// - asymmetric: maxq = 2^bits - 1; (xmin, xmax) = (-1, 1) when both are 0;
///   scale = (xmax - xmin) / maxq; zero = round(-xmin / scale);
///   q = clamp(round(x / scale) + zero, 0, maxq);
/// - round is to nearest, ties to even; the quantized value is scale * (q - zero), rounded
///   once to the element type for QUAROT_QUANT_FAKE.
///
/// QUAROT_QUANT_REAL passes q (shifted by -2^(bits-1) when asymmetric, the zero point with
/// it, so codes are int8 in both cases) in quarot_activations.
#[repr(C)]
pub struct quarot_quant_config {
    /// QUAROT_QUANT_NONE, _FAKE, _REAL or _CUSTOM.
    pub kind: u32,
    /// 2..8 (FAKE and REAL).
    pub bits: u32,
    /// Nonzero: symmetric; 0: asymmetric.
    pub symmetric: u32,
    /// Values per group along a row (must divide n); 0: one group per row (per token).
    pub group_size: usize,
    /// In (0, 1]; 1 disables clipping (QuaRot uses 0.9 for activations).
    pub clip_ratio: f32,
    /// QUAROT_QUANT_CUSTOM: the quantizer (required).
    pub custom: quarot_quant_fn,
    /// QUAROT_QUANT_CUSTOM: passed to `custom` untouched.
    pub custom_user_data: *mut c_void,
}

/// An R4 wrapper (opaque): Quark's `R4Wrapper` around an engine op. Immutable after
/// creation; quarot_r4_wrapper_forward may run on many threads at once on one handle
/// (libquarot's scratch is per thread), provided the op and quantizer callbacks and their
/// user_data can be used from those threads. Free it with quarot_r4_wrapper_free.
pub struct quarot_r4_wrapper {
    core: R4Wrapper,
    op: unsafe extern "C" fn(*mut c_void, *const quarot_activations, *mut c_void) -> c_int,
    op_user_data: *mut c_void,
    quant: quarot_quant_fn,
    quant_user_data: *mut c_void,
}

fn quant_from_c(
    q: Option<&quarot_quant_config>,
) -> Result<(Quant, quarot_quant_fn, *mut c_void), Error> {
    let Some(q) = q else {
        return Ok((Quant::None, None, std::ptr::null_mut()));
    };
    let cfg = QuantConfig {
        bits: q.bits,
        symmetric: q.symmetric != 0,
        group_size: q.group_size,
        clip_ratio: q.clip_ratio,
    };
    match q.kind {
        QUAROT_QUANT_NONE => Ok((Quant::None, None, std::ptr::null_mut())),
        QUAROT_QUANT_FAKE => Ok((Quant::Fake(cfg), None, std::ptr::null_mut())),
        QUAROT_QUANT_REAL => Ok((Quant::Real(cfg), None, std::ptr::null_mut())),
        QUAROT_QUANT_CUSTOM => match q.custom {
            Some(_) => Ok((Quant::Custom, q.custom, q.custom_user_data)),
            None => Err(null("quant->custom (QUAROT_QUANT_CUSTOM)")),
        },
        k => Err(Error::new(
            Status::InvalidArgument,
            format!("quant->kind = {k} (known: 0 none, 1 fake, 2 real, 3 custom)"),
        )),
    }
}

/// Create an R4 wrapper (Quark's `R4Wrapper` / `InputRotationWrapper`): forward(x) =
/// op(quantize(rotate(x))), where rotate is the normalized Hadamard of width n in
/// `matmul_hadU` layout (the matrix quarot_hadamard_f32 applies with scale
/// quarot_hadamard_scale(n) and the same flags), or, with block_size r (0 or n: whole
/// rows), the same for each block of r consecutive values (Quark 0.10 `rotation_size`).
/// Rotate down_proj's weight offline with the same matrix (quarot_rotate_in_channels_hadamard,
/// QUAROT_LAYOUT_MATMUL_HADU) so that op(rotate(x)) equals the unrotated op on x.
///
/// `dtype`: element type of the rows; `flags`: QUAROT_FLAG_TRANSPOSE_K,
/// QUAROT_FLAG_PAD_TRUNCATE, QUAROT_FLAG_BLOCK_DIAGONAL (for an n, or block_size, with no
/// Hadamard matrix: blocks of quarot_hadamard_block_size, as the transforms do);
/// QUAROT_FLAG_PARALLEL is rejected (handles never start threads); `quant`: NULL for none, else copied (the struct need not outlive the call);
/// `op`: required; `user_data` is passed to it untouched.
///
/// Writes `*out` only on success. Errors: QUAROT_ERR_NULL_POINTER (out, op, a custom
/// quantizer), QUAROT_ERR_INVALID_DTYPE, QUAROT_ERR_INVALID_FLAGS,
/// QUAROT_ERR_UNSUPPORTED_SIZE (n or block_size has no Hadamard matrix),
/// QUAROT_ERR_INVALID_ARGUMENT (block_size not dividing n; bits outside 2..8; clip_ratio
/// outside (0, 1]; group_size not dividing n; unknown quant kind). Thread-safe.
///
/// # Safety
/// `quant`, if not NULL, must point to a quarot_quant_config; `out` to writable storage
/// for a pointer.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn quarot_r4_wrapper_new(
    n: usize,
    block_size: usize,
    dtype: quarot_dtype,
    flags: u32,
    quant: *const quarot_quant_config,
    op: quarot_op_fn,
    user_data: *mut c_void,
    out: *mut *mut quarot_r4_wrapper,
) -> quarot_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let Some(op) = op else {
            return Err(null("op"));
        };
        let dt = super::dtype(dtype, "dtype")?;
        // SAFETY: the caller's contract (NULL or a valid config).
        let (q, qf, qu) = quant_from_c(unsafe { quant.as_ref() })?;
        let core = R4Wrapper::new(n, block_size, dt, flags, q)?;
        let handle = Box::new(quarot_r4_wrapper {
            core,
            op,
            op_user_data: user_data,
            quant: qf,
            quant_user_data: qu,
        });
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Run the wrapper on `rows` rows at `x` (`x_row_stride` elements apart, >= n): rotate,
/// quantize (as configured), then call op(user_data, &activations, out). `out` is passed
/// through untouched (the op's output, e.g. the down_proj result).
///
/// The caller's rows are only read, unless `flags` has QUAROT_FORWARD_IN_PLACE: then they
/// are rotated (and fake-quantized) in place and the op receives them (`x` then holds the
/// rotated rows after the call, also when the op failed). rows = 0: nothing is called.
///
/// Errors: QUAROT_ERR_NULL_POINTER (w; x with rows > 0), QUAROT_ERR_INVALID_FLAGS,
/// QUAROT_ERR_INVALID_STRIDE, QUAROT_ERR_SIZE_OVERFLOW, QUAROT_ERR_OUT_OF_MEMORY (nothing
/// written), QUAROT_ERR_CALLBACK (the op or quantizer returned nonzero; see
/// quarot_last_callback_code). The handle stays usable after any error.
///
/// Scratch: without QUAROT_FORWARD_IN_PLACE the rotated rows go to a per-thread buffer of
/// libquarot, grown on demand and kept for the thread's next call (rows * n elements, plus
/// codes and scales with QUAROT_QUANT_REAL): steady-state shapes allocate nothing. No
/// threads, no locks: call it from as many threads at once as you like.
///
/// # Safety
/// `w` must come from quarot_r4_wrapper_new and not be freed; `x` must be valid for the
/// described rows of the wrapper's dtype (writable with QUAROT_FORWARD_IN_PLACE).
#[no_mangle]
pub unsafe extern "C" fn quarot_r4_wrapper_forward(
    w: *const quarot_r4_wrapper,
    x: *mut c_void,
    rows: usize,
    x_row_stride: usize,
    out: *mut c_void,
    flags: u32,
) -> quarot_status {
    guard(|| {
        // SAFETY: the caller's contract (NULL or a live handle).
        let Some(w) = (unsafe { w.as_ref() }) else {
            return Err(null("w"));
        };
        let dt = w.core.dtype() as quarot_dtype;
        let mut op = |v: &ActView| -> i32 {
            let a = quarot_activations {
                data: v.data.cast(),
                dtype: dt,
                rows: v.rows,
                n: v.n,
                row_stride: v.row_stride,
                codes: v.codes,
                scales: v.scales,
                zeros: v.zeros,
                group_size: v.group_size,
                groups: v.groups,
            };
            // SAFETY: the op's C contract; `a` lives for the call.
            unsafe { (w.op)(w.op_user_data, &a, out) }
        };
        let mut quant = |p: *mut u8, rows: usize, n: usize, stride: usize| -> i32 {
            match w.quant {
                // SAFETY: the quantizer's C contract; the rows are valid for the call.
                Some(f) => unsafe { f(w.quant_user_data, p.cast(), dt, rows, n, stride) },
                None => 0,
            }
        };
        let custom: Option<&mut dyn FnMut(*mut u8, usize, usize, usize) -> i32> =
            if w.quant.is_some() {
                Some(&mut quant)
            } else {
                None
            };
        // SAFETY: x's validity is the caller's contract.
        unsafe {
            w.core
                .forward(x.cast(), rows, x_row_stride, flags, custom, &mut op)
        }
    })
}

/// Free an R4 wrapper; NULL is a no-op. Not while another thread uses it.
///
/// # Safety
/// `w` must be NULL or come from quarot_r4_wrapper_new, and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn quarot_r4_wrapper_free(w: *mut quarot_r4_wrapper) {
    guard_value((), || {
        if !w.is_null() {
            // SAFETY: the caller's contract: made by Box::into_raw in _new, freed once.
            drop(unsafe { Box::from_raw(w) });
        }
    })
}

/// The layout of q and k for quarot_qk_rotation_forward, in elements: head h of token t
/// starts at q + t * q_token_stride + h * q_head_stride (k likewise, with n_kv_heads heads:
/// GQA). [tokens, heads, head_dim] contiguous is q_token_stride = n_heads * head_dim,
/// q_head_stride = head_dim; head-major layouts ([heads, tokens, head_dim]) work too.
/// With tokens > 0, each of q and k must be token-major (a token's heads fit in its token
/// stride: token_stride >= (heads - 1) * head_stride + head_dim, head_stride >= head_dim)
/// or head-major (a head's tokens fit in its head stride), so heads never overlap; and q
/// and k must not overlap: either their address ranges (first to last element) do not
/// meet, or both are token-major views of one fused row (a QKV tensor [tokens, (n_heads +
/// 2 * n_kv_heads) * head_dim] with q at column 0 and k at column n_heads * head_dim:
/// q_token_stride == k_token_stride) whose per-token head ranges do not meet. n_heads,
/// n_kv_heads and head_dim are checked even for tokens = 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct quarot_qk_shape {
    /// Tokens (0: forward does nothing).
    pub tokens: usize,
    /// Heads of q (>= 1).
    pub n_heads: usize,
    /// Heads of k (>= 1; fewer than n_heads with GQA).
    pub n_kv_heads: usize,
    /// Values per head: the handle's head_dim.
    pub head_dim: usize,
    /// Elements between consecutive tokens of q.
    pub q_token_stride: usize,
    /// Elements between consecutive heads of q.
    pub q_head_stride: usize,
    /// Elements between consecutive tokens of k.
    pub k_token_stride: usize,
    /// Elements between consecutive heads of k.
    pub k_head_stride: usize,
}

/// The engine's RoPE, wrapped by a quarot_qk_rotation: apply it to q and k in place.
/// `call_arg` is forward's per-call argument (positions, cos/sin tables, ...). Return 0 on
/// success; any other value makes forward fail with QUAROT_ERR_CALLBACK before anything is
/// rotated (q and k then hold what the callback left). Runs on the thread that called
/// forward; must not unwind or longjmp through libquarot.
pub type quarot_rope_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        q: *mut c_void,
        k: *mut c_void,
        dtype: quarot_dtype,
        shape: *const quarot_qk_shape,
        call_arg: *mut c_void,
    ) -> c_int,
>;

/// A QK rotation (opaque): Quark's `QKRotation` as installed by
/// `add_qk_rotation_after_function_call_in_forward`. Immutable after creation; forward may
/// run on many threads at once on one handle. Free it with quarot_qk_rotation_free.
pub struct quarot_qk_rotation {
    core: QkRotation,
    rope: quarot_rope_fn,
    user_data: *mut c_void,
}

/// Create a QK rotation for heads of `head_dim` values of `dtype`: forward calls `rope`
/// (may be NULL: then it only rotates), then applies the normalized Hadamard of width
/// head_dim (`matmul_hadU` layout, scale quarot_hadamard_scale(head_dim)) to every head of
/// q and of k, in place. head_dim 64/128/256 and the K * 2^m widths (80, 96, 112, 160,
/// 192, ...) are exact orthogonal rotations; `flags` as for the transform
/// (QUAROT_FLAG_TRANSPOSE_K; QUAROT_FLAG_PAD_TRUNCATE reproduces Quark <= 0.10 for any
/// head_dim; QUAROT_FLAG_BLOCK_DIAGONAL); QUAROT_FLAG_PARALLEL is rejected.
///
/// In an engine this replaces the call to RoPE in attention: where it did
/// `rope(q, k, pos)`, it calls `quarot_qk_rotation_forward(h, q, k, &shape, pos)` with
/// `rope` as the callback, which is what Quark's
/// `add_qk_rotation_after_function_call_in_forward` does to the model's forward.
///
/// Writes `*out` only on success. Errors: QUAROT_ERR_NULL_POINTER (out),
/// QUAROT_ERR_INVALID_DTYPE, QUAROT_ERR_INVALID_FLAGS, QUAROT_ERR_UNSUPPORTED_SIZE.
/// Thread-safe.
///
/// # Safety
/// `out` must be writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn quarot_qk_rotation_new(
    head_dim: usize,
    dtype: quarot_dtype,
    flags: u32,
    rope: quarot_rope_fn,
    user_data: *mut c_void,
    out: *mut *mut quarot_qk_rotation,
) -> quarot_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let dt = super::dtype(dtype, "dtype")?;
        let core = QkRotation::new(head_dim, dt, flags)?;
        let handle = Box::new(quarot_qk_rotation {
            core,
            rope,
            user_data,
        });
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Call the RoPE callback (if any) on q and k, then rotate every head of both in place.
/// `shape` gives the layout (its head_dim must be the handle's); `call_arg` goes to the
/// callback untouched. tokens = 0: nothing is called.
///
/// Errors (nothing written, callback not called): QUAROT_ERR_NULL_POINTER (h, shape; q or k
/// with tokens > 0), QUAROT_ERR_INVALID_ARGUMENT (head_dim mismatch, n_heads or n_kv_heads
/// = 0; also with tokens = 0), QUAROT_ERR_INVALID_STRIDE (a layout that is neither
/// token- nor head-major, see quarot_qk_shape), QUAROT_ERR_OVERLAP (q and k
/// overlap, see quarot_qk_shape), QUAROT_ERR_SIZE_OVERFLOW; QUAROT_ERR_CALLBACK from the callback. The handle
/// stays usable after any error. No allocation for steady-state shapes (scratch per
/// thread), no threads, no locks.
///
/// # Safety
/// `h` must come from quarot_qk_rotation_new and not be freed; q and k must be valid,
/// writable memory for the described heads of the handle's dtype.
#[no_mangle]
pub unsafe extern "C" fn quarot_qk_rotation_forward(
    h: *const quarot_qk_rotation,
    q: *mut c_void,
    k: *mut c_void,
    shape: *const quarot_qk_shape,
    call_arg: *mut c_void,
) -> quarot_status {
    guard(|| {
        // SAFETY: the caller's contract (NULL or a live handle / a valid shape).
        let Some(h) = (unsafe { h.as_ref() }) else {
            return Err(null("h"));
        };
        // SAFETY: as above.
        let Some(cs) = (unsafe { shape.as_ref() }) else {
            return Err(null("shape"));
        };
        let s = QkShape {
            tokens: cs.tokens,
            n_heads: cs.n_heads,
            n_kv_heads: cs.n_kv_heads,
            head_dim: cs.head_dim,
            q_token_stride: cs.q_token_stride,
            q_head_stride: cs.q_head_stride,
            k_token_stride: cs.k_token_stride,
            k_head_stride: cs.k_head_stride,
        };
        let dt = h.core.dtype() as quarot_dtype;
        let mut rope = |_: &QkShape| -> i32 {
            match h.rope {
                // SAFETY: the callback's C contract; cs lives for the call.
                Some(f) => unsafe { f(h.user_data, q, k, dt, cs, call_arg) },
                None => 0,
            }
        };
        let cb: Option<&mut dyn FnMut(&QkShape) -> i32> = if h.rope.is_some() {
            Some(&mut rope)
        } else {
            None
        };
        // SAFETY: q and k's validity is the caller's contract.
        unsafe { h.core.forward(q.cast(), k.cast(), &s, cb) }
    })
}

/// Free a QK rotation; NULL is a no-op. Not while another thread uses it.
///
/// # Safety
/// `h` must be NULL or come from quarot_qk_rotation_new, and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn quarot_qk_rotation_free(h: *mut quarot_qk_rotation) {
    guard_value((), || {
        if !h.is_null() {
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(h) });
        }
    })
}

/// The code returned by the most recent callback that failed on this thread (the reason
/// for the last QUAROT_ERR_CALLBACK); 0 if none has. Thread-safe (per thread).
#[no_mangle]
pub extern "C" fn quarot_last_callback_code() -> c_int {
    guard_value(0, online::last_callback_code)
}

const _: () = assert!(QUAROT_FORWARD_IN_PLACE == online::FORWARD_IN_PLACE);

/// The activation quantizer of the handles (see quarot_quant_config for the formulas), on
/// its own, without a rotation: e.g. to quantize the inputs of other linear layers the same
/// way, or a weight per output channel (rows = out_features, n = in_features).
///
/// `data`: `rows` rows of `n` elements of `dtype`, `row_stride` (>= n) elements apart.
/// `config->kind`:
/// - QUAROT_QUANT_FAKE: each row is quantized and dequantized in place, rounded once to
///   `dtype`; `codes`, `scales`, `zeros` are not used (may be NULL).
/// - QUAROT_QUANT_REAL: `data` is only read; `codes` (rows * n int8, row stride n),
///   `scales` and `zeros` (rows * groups floats each, groups = n / group_size, 1 per row
///   when group_size is 0) are written, as in quarot_activations.
/// - QUAROT_QUANT_NONE and QUAROT_QUANT_CUSTOM: QUAROT_ERR_INVALID_ARGUMENT.
///
/// rows = 0 does nothing (pointers may then be NULL; the config is still checked).
/// Errors: QUAROT_ERR_NULL_POINTER (config; data with rows > 0; codes, scales or zeros for
/// REAL), QUAROT_ERR_INVALID_DTYPE, QUAROT_ERR_INVALID_STRIDE, QUAROT_ERR_SIZE_OVERFLOW,
/// QUAROT_ERR_INVALID_ARGUMENT (n = 0, bits outside 2..8, clip_ratio outside (0, 1],
/// group_size not dividing n, kind), QUAROT_ERR_OUT_OF_MEMORY; nothing is written on error.
/// One row of n floats of scratch per call. Thread-safe (no shared state).
///
/// # Safety
/// `data` must be valid for the described rows (writable for FAKE); `config` must point to
/// a quarot_quant_config; for REAL, `codes`, `scales` and `zeros` must be valid for the
/// sizes above.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn quarot_quantize(
    data: *mut c_void,
    dtype: quarot_dtype,
    rows: usize,
    n: usize,
    row_stride: usize,
    config: *const quarot_quant_config,
    codes: *mut i8,
    scales: *mut f32,
    zeros: *mut f32,
) -> quarot_status {
    guard(|| {
        // SAFETY: the caller's contract (NULL or a valid config).
        let Some(q) = (unsafe { config.as_ref() }) else {
            return Err(null("config"));
        };
        let dt = super::dtype(dtype, "dtype")?;
        let cfg = QuantConfig {
            bits: q.bits,
            symmetric: q.symmetric != 0,
            group_size: q.group_size,
            clip_ratio: q.clip_ratio,
        };
        let is_real = match q.kind {
            QUAROT_QUANT_FAKE => false,
            QUAROT_QUANT_REAL => true,
            k => {
                return Err(Error::new(
                    Status::InvalidArgument,
                    format!(
                        "config->kind = {k}: quarot_quantize takes QUAROT_QUANT_FAKE (1) or QUAROT_QUANT_REAL (2)"
                    ),
                ))
            }
        };
        if n == 0 {
            return Err(Error::new(Status::InvalidArgument, "n = 0"));
        }
        cfg.validate(n)?;
        if rows == 0 {
            if row_stride < n {
                return Err(Error::new(
                    Status::InvalidStride,
                    format!("row_stride = {row_stride} is smaller than n = {n}"),
                ));
            }
            return Ok(());
        }
        if data.is_null() {
            return Err(null("data"));
        }
        if is_real && (codes.is_null() || scales.is_null() || zeros.is_null()) {
            return Err(null("codes, scales or zeros (QUAROT_QUANT_REAL)"));
        }
        if row_stride < n {
            return Err(Error::new(
                Status::InvalidStride,
                format!("row_stride = {row_stride} is smaller than n = {n}"),
            ));
        }
        let len = (rows - 1)
            .checked_mul(row_stride)
            .and_then(|x| x.checked_add(n))
            .filter(|&x| {
                x.checked_mul(dt.size())
                    .is_some_and(|b| b <= isize::MAX as usize)
            })
            .ok_or_else(|| {
                Error::new(
                    Status::SizeOverflow,
                    format!(
                        "rows = {rows} with row_stride = {row_stride} overflows the address space"
                    ),
                )
            })?;
        let groups = n / cfg.group(n);
        let (ncodes, nparams) = match (rows.checked_mul(n), rows.checked_mul(groups)) {
            (Some(c), Some(p)) if c <= isize::MAX as usize && p <= isize::MAX as usize / 4 => {
                (c, p)
            }
            _ => return Err(Error::new(Status::SizeOverflow, "rows * n overflows")),
        };
        // SAFETY: the caller's contract: the outputs are valid for these sizes.
        let real = is_real.then(|| unsafe {
            online::RealOut {
                codes: std::slice::from_raw_parts_mut(codes, ncodes),
                scales: std::slice::from_raw_parts_mut(scales, nparams),
                zeros: std::slice::from_raw_parts_mut(zeros, nparams),
            }
        });
        // SAFETY: the caller's contract: data covers `len` elements of the type.
        unsafe {
            match dt {
                crate::DType::F32 => online::quantize_rows(
                    std::slice::from_raw_parts_mut(data.cast::<f32>(), len),
                    rows,
                    n,
                    row_stride,
                    &cfg,
                    real,
                ),
                crate::DType::F16 => online::quantize_rows(
                    std::slice::from_raw_parts_mut(data.cast::<half::f16>(), len),
                    rows,
                    n,
                    row_stride,
                    &cfg,
                    real,
                ),
                crate::DType::Bf16 => online::quantize_rows(
                    std::slice::from_raw_parts_mut(data.cast::<half::bf16>(), len),
                    rows,
                    n,
                    row_stride,
                    &cfg,
                    real,
                ),
            }
        }
    })
}
