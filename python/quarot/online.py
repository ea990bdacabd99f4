"""Online rotations as handles: :class:`R4Wrapper` (Quark's ``R4Wrapper``) and
:class:`QKRotation` (Quark's ``QKRotation``), with Python callbacks.

Callbacks and exceptions
------------------------
The Python callables given to a handle (the R4 op, a custom quantizer, the RoPE) are
wrapped in ctypes C callbacks that the handle keeps alive for its whole life, so the
caller need not keep references to them.

An exception raised by a callback never crosses into C: the wrapper catches it (any
``BaseException``), remembers it for the running ``forward`` call, and returns
:data:`CALLBACK_EXCEPTION_CODE` to libquarot, which then fails the call with
``ERR_CALLBACK``. ``forward`` re-raises **the original exception object directly** (not
wrapped; its traceback shows the callback's frames). A callback may also fail without an
exception by returning a nonzero int: ``forward`` then raises :class:`QuarotError` with
``status == ERR_CALLBACK`` and ``callback_code`` set to that int. Returning ``None`` (or 0)
is success. The handle stays usable after a failed call.
"""

from __future__ import annotations

import dataclasses
import operator
import threading
from ctypes import byref, c_void_p, cast
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from . import _arrays
from ._errors import check, error_from_status
from ._lib import LIB, OP_FN, QUANT_FN, ROPE_FN, QKShapeStruct, QuantConfigStruct, require
from .constants import (
    DTYPE_F32,
    FORWARD_IN_PLACE,
    OK,
    QUANT_CUSTOM,
    QUANT_FAKE,
    QUANT_NONE,
    QUANT_REAL,
)

__all__ = [
    "CALLBACK_EXCEPTION_CODE",
    "QuantConfig",
    "QuantizedRows",
    "quantize",
    "Activations",
    "QKShape",
    "R4Wrapper",
    "QKRotation",
]

#: What a wrapped Python callback returns to libquarot when it raised an exception.
CALLBACK_EXCEPTION_CODE = -1

_KIND_NAMES = {"none": QUANT_NONE, "fake": QUANT_FAKE, "real": QUANT_REAL, "custom": QUANT_CUSTOM}


# ---------------------------------------------------------------------------------------
# Callback plumbing
# ---------------------------------------------------------------------------------------


class _Call:
    """One running forward call: what its callbacks need, and what they raised."""

    __slots__ = ("np_dtype", "out", "exc", "view")

    def __init__(self, np_dtype, out=None, view=None):
        self.np_dtype = np_dtype
        self.out = out
        self.exc = None
        self.view = view


class _State:
    """Per-handle callback state, shared by the C callbacks (no reference to the handle
    object itself, so handle -> callbacks -> state has no cycle). The running calls are a
    per-thread stack: callbacks run on the thread that called forward."""

    def __init__(self, default_dtype):
        self.local = threading.local()
        self.default_dtype = default_dtype

    def stack(self):
        s = getattr(self.local, "stack", None)
        if s is None:
            s = self.local.stack = []
        return s

    def current(self) -> _Call:
        s = self.stack()
        return s[-1] if s else _Call(self.default_dtype)


def _result_code(res) -> int:
    if res is None:
        return 0
    if isinstance(res, (bool, np.bool_)) or not isinstance(res, (int, np.integer)):
        raise TypeError(f"a quarot callback must return None or an int code, not {type(res).__name__}")
    code = operator.index(res)
    if not -(1 << 31) <= code < (1 << 31):
        raise OverflowError(f"callback code {code} does not fit a C int")
    return code


def _run(call: _Call, fn, *args) -> int:
    """Call ``fn`` and turn its outcome into a C return code; never raises."""
    try:
        return _result_code(fn(*args))
    except BaseException as e:  # noqa: BLE001 - nothing may unwind into C
        if call.exc is None:
            call.exc = e
        return CALLBACK_EXCEPTION_CODE


def _finish(status: int, call: _Call) -> None:
    """After a forward call: raise what its callbacks raised, or the library's error."""
    if status != OK:
        err = error_from_status(status)  # right after the call, on this thread
        exc, call.exc = call.exc, None
        if exc is not None:
            raise exc
        raise err
    if call.exc is not None:  # defensive: a callback raised but the call succeeded
        exc, call.exc = call.exc, None
        raise exc


def _quant_callback(state: _State, quantizer: Callable) -> QUANT_FN:
    def quant(_user_data, data, _dtype, rows, n, row_stride):
        call = state.current()
        try:
            view = _arrays.pointer_view(data, call.np_dtype, (rows, n), (row_stride, 1), writable=True)
        except BaseException as e:  # noqa: BLE001
            call.exc = call.exc or e
            return CALLBACK_EXCEPTION_CODE
        return _run(call, quantizer, view)

    return QUANT_FN(quant)


# ---------------------------------------------------------------------------------------
# Quantization config
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """Activation quantization between the R4 rotation and the op
    (``struct quarot_quant_config``; QuaRot's per-token round-to-nearest quantizer).

    Attributes:
        kind: ``QUANT_NONE``, ``QUANT_FAKE`` (quantize + dequantize, same element type),
            ``QUANT_REAL`` (the op also gets int8 codes, scales and zero points) or
            ``QUANT_CUSTOM`` (``quantizer`` rewrites the rows); the strings ``"none"``,
            ``"fake"``, ``"real"``, ``"custom"`` are accepted too.
        bits: 2..8 (FAKE and REAL).
        symmetric: symmetric (zero point 0) or asymmetric.
        group_size: values per group along a row (must divide n); 0 = one group per row.
        clip_ratio: in (0, 1]; 1 disables clipping (QuaRot uses 0.9 for activations).
        quantizer: for ``QUANT_CUSTOM``: ``quantizer(rows)`` gets a writable
            ``rows x n`` numpy view of the rotated rows and rewrites it in place; returns
            None (or 0), or a nonzero int to fail the forward call.

    The formulas are in quarot.h. Build one with the class methods :meth:`none`,
    :meth:`fake`, :meth:`real`, :meth:`custom`, or directly. Ranges are checked by the
    library when a handle is created (QuarotError ERR_INVALID_ARGUMENT).
    """

    kind: int = QUANT_NONE
    bits: int = 4
    symmetric: bool = True
    group_size: int = 0
    clip_ratio: float = 1.0
    quantizer: Optional[Callable[[np.ndarray], Optional[int]]] = None

    def __post_init__(self):
        kind = self.kind
        if isinstance(kind, str):
            if kind.lower() not in _KIND_NAMES:
                raise ValueError(f"unknown quantization kind {kind!r}: expected one of {sorted(_KIND_NAMES)}")
            kind = _KIND_NAMES[kind.lower()]
        object.__setattr__(self, "kind", operator.index(kind))
        object.__setattr__(self, "bits", operator.index(self.bits))
        object.__setattr__(self, "group_size", _arrays.size_arg(self.group_size, "group_size"))
        object.__setattr__(self, "clip_ratio", float(self.clip_ratio))
        object.__setattr__(self, "symmetric", bool(self.symmetric))
        if self.kind == QUANT_CUSTOM and not callable(self.quantizer):
            raise ValueError("QUANT_CUSTOM needs a callable quantizer")

    @classmethod
    def none(cls) -> "QuantConfig":
        """No quantization."""
        return cls(QUANT_NONE)

    @classmethod
    def fake(cls, bits: int, *, symmetric: bool = True, group_size: int = 0, clip_ratio: float = 1.0) -> "QuantConfig":
        """Fake quantization: the op gets the dequantized values."""
        return cls(QUANT_FAKE, bits, symmetric, group_size, clip_ratio)

    @classmethod
    def real(cls, bits: int, *, symmetric: bool = True, group_size: int = 0, clip_ratio: float = 1.0) -> "QuantConfig":
        """Real quantization: the op also gets int8 codes, scales and zero points."""
        return cls(QUANT_REAL, bits, symmetric, group_size, clip_ratio)

    @classmethod
    def custom(cls, quantizer: Callable[[np.ndarray], Optional[int]]) -> "QuantConfig":
        """The caller's quantizer: ``quantizer(rows)`` rewrites a ``rows x n`` view."""
        return cls(QUANT_CUSTOM, quantizer=quantizer)

    def to_struct(self, custom_fn: Optional[QUANT_FN] = None) -> QuantConfigStruct:
        """The C ``struct quarot_quant_config`` for this config.

        For ``QUANT_CUSTOM``, ``custom_fn`` is the C callback to put in the struct; by
        default a standalone wrapper of ``quantizer`` (exceptions in it are swallowed and
        reported as code CALLBACK_EXCEPTION_CODE; the handles use their own wrapper, which
        re-raises them). The struct keeps the callback object alive.
        """
        s = QuantConfigStruct()
        s.kind = self.kind
        s.bits = self.bits
        s.symmetric = 1 if self.symmetric else 0
        s.group_size = self.group_size
        s.clip_ratio = self.clip_ratio
        if self.kind == QUANT_CUSTOM:
            if custom_fn is None:
                custom_fn = _quant_callback(_State(_arrays.numpy_dtype(DTYPE_F32)), self.quantizer)
            s.custom = custom_fn
        s.custom_user_data = None
        return s


class QuantizedRows(NamedTuple):
    """The result of :func:`quantize` with ``QUANT_REAL``: element j of row i is
    ``scales[i, j // group_size] * (codes[i, j] - zeros[i, j // group_size])``.

    ``codes`` (int8) has the shape of the input; ``scales`` and ``zeros`` (float32) have
    its leading shape plus ``groups`` (n / group_size, 1 per row when group_size is 0)."""

    codes: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray

    @property
    def group_size(self) -> int:
        """Values per group."""
        return self.codes.shape[-1] // self.scales.shape[-1] if self.scales.shape[-1] else 0

    def dequantize(self) -> np.ndarray:
        """The represented values as a new float32 array of the input's shape."""
        g = np.arange(self.codes.shape[-1]) // max(self.group_size, 1)
        return (self.scales[..., g] * (self.codes.astype(np.float32) - self.zeros[..., g])).astype(np.float32)


def quantize(x, config: QuantConfig, *, dtype=None, copy: bool = False):
    """The handles' activation quantizer on its own, without a rotation
    (``quarot_quantize``): e.g. for the inputs of other linear layers, or a weight per
    output channel (rows = out_features).

    ``x``: rows as for :func:`quarot.hadamard` (1-D, 2-D, strided rows; uint16 bit
    patterns with ``dtype=``). ``config``: a :class:`QuantConfig` of kind

    - ``QUANT_FAKE``: each row is quantized and dequantized in place; returns ``x``;
    - ``QUANT_REAL``: ``x`` is only read; returns a :class:`QuantizedRows` (codes, scales,
      zero points).

    Other kinds raise QuarotError (ERR_INVALID_ARGUMENT), as do out-of-range settings;
    nothing is written then.
    """
    fn = require("quarot_quantize")
    if not isinstance(config, QuantConfig):
        raise TypeError("config must be a QuantConfig")
    real = config.kind == QUANT_REAL
    r = _arrays.as_rows(x, name="x", spec=dtype, writable=not real, copy=copy)
    s = QuantConfigStruct()
    s.kind, s.bits, s.symmetric = config.kind, config.bits, 1 if config.symmetric else 0
    s.group_size, s.clip_ratio = config.group_size, config.clip_ratio
    if not real:
        check(fn(r.ptr, r.code, r.rows, r.n, r.stride, byref(s), None, None, None))
        r.write_back()
        return x
    gs = config.group_size or r.n
    # groups per row; rounded up so that the buffers are large enough even for a group
    # size the library will reject (it then writes nothing)
    groups = -(-r.n // gs) if gs else 1
    codes = np.empty((r.rows, r.n), np.int8)
    scales = np.empty((r.rows, groups), np.float32)
    zeros = np.empty((r.rows, groups), np.float32)
    check(fn(r.ptr, r.code, r.rows, r.n, r.stride, byref(s), codes.ctypes.data, scales.ctypes.data, zeros.ctypes.data))
    lead = x.shape[:-1]
    return QuantizedRows(codes.reshape(x.shape), scales.reshape(lead + (groups,)), zeros.reshape(lead + (groups,)))


# ---------------------------------------------------------------------------------------
# R4Wrapper
# ---------------------------------------------------------------------------------------


class Activations:
    """What an :class:`R4Wrapper` op receives (``struct quarot_activations``).

    All arrays are read-only numpy views of libquarot's memory (no copy) and are valid
    **only during the op call**: copy what you need to keep.

    Attributes:
        data: ``rows x n`` view of the rotated (and fake-quantized / custom-quantized) rows,
            of the element type the forward call's ``x`` had (float32, float16,
            ``ml_dtypes.bfloat16`` or uint16 bit patterns); ``data.strides[0]`` is the
            library's row stride.
        codes: with ``QUANT_REAL``: ``rows x n`` int8 codes in [-2^(bits-1), 2^(bits-1)-1];
            else None.
        scales, zeros: with ``QUANT_REAL``: ``rows x groups`` float32 scales and zero
            points; element j of row i is
            ``scales[i, j // group_size] * (codes[i, j] - zeros[i, j // group_size])``;
            else None.
        group_size, groups: with ``QUANT_REAL``: values per group and groups per row;
            else 0.
        rows, n, row_stride: the batch geometry (row_stride in elements).
        dtype: the element type code (``DTYPE_*``).
        out: the object passed to :meth:`R4Wrapper.forward` as ``out``.
    """

    __slots__ = ("data", "codes", "scales", "zeros", "group_size", "groups", "rows", "n", "row_stride", "dtype", "out")

    def dequantize(self) -> np.ndarray:
        """With ``QUANT_REAL``: the values the codes represent, as a new float32
        ``rows x n`` array."""
        if self.codes is None:
            raise ValueError("no codes: the wrapper does not use QUANT_REAL")
        g = np.arange(self.n) // self.group_size
        return (self.scales[:, g] * (self.codes.astype(np.float32) - self.zeros[:, g])).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"Activations(rows={self.rows}, n={self.n}, row_stride={self.row_stride}, "
            f"dtype={_arrays.DTYPE_NAMES.get(self.dtype, self.dtype)}, quantized={self.codes is not None})"
        )


def _op_callback(state: _State, op: Callable) -> OP_FN:
    def c_op(_user_data, x_ptr, _out):
        call = state.current()
        try:
            x = x_ptr.contents
            a = Activations()
            a.rows, a.n, a.row_stride, a.dtype = x.rows, x.n, x.row_stride, x.dtype
            a.data = _arrays.pointer_view(x.data, call.np_dtype, (x.rows, x.n), (x.row_stride, 1), writable=False)
            if x.codes:
                a.group_size, a.groups = x.group_size, x.groups
                a.codes = _arrays.pointer_view(x.codes, np.int8, (x.rows, x.n), (x.n, 1), writable=False)
                a.scales = _arrays.pointer_view(x.scales, np.float32, (x.rows, x.groups), (x.groups, 1), writable=False)
                a.zeros = _arrays.pointer_view(x.zeros, np.float32, (x.rows, x.groups), (x.groups, 1), writable=False)
            else:
                a.codes = a.scales = a.zeros = None
                a.group_size = a.groups = 0
            a.out = call.out
        except BaseException as e:  # noqa: BLE001
            call.exc = call.exc or e
            return CALLBACK_EXCEPTION_CODE
        return _run(call, op, a)

    return OP_FN(c_op)


class _Handle:
    """Common lifetime management of the two handle types."""

    _free = None  # set by subclasses: the C free function

    def __init__(self):
        self._handle = None  # first, so __del__ works even if __init__ fails

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._handle is None

    @property
    def address(self) -> int:
        """The C handle's address (for passing it to C code); raises if closed."""
        return self._ptr()

    def _ptr(self) -> int:
        h = self._handle
        if h is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return h

    def close(self) -> None:
        """Free the C handle (idempotent). Must not run while another thread is in
        :meth:`forward` on this handle."""
        h, self._handle = self._handle, None
        if h is not None and self._free is not None:
            self._free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class R4Wrapper(_Handle):
    """Quark's ``R4Wrapper`` / ``InputRotationWrapper`` around an op:
    ``forward(x) = op(quantize(rotate(x)))`` (``quarot_r4_wrapper_new``).

    ``rotate`` is the normalized Hadamard of width ``n`` in ``matmul_hadU`` layout (what
    :func:`quarot.hadamard` applies with the default scale and the same ``flags``), or with
    ``block_size`` r (0 or n: whole rows) the same on each block of r values (Quark 0.10
    ``rotation_size``). Rotate the op's weight offline with the same matrix
    (:func:`quarot.rotate_in_channels_hadamard` with ``LAYOUT_MATMUL_HADU``) so that
    ``op(rotate(x))`` equals the unrotated op on x.

    Args:
        n: row width.
        op: ``op(activations: Activations) -> None | int``, called once per forward with
            the rotated rows (see :class:`Activations`); ``activations.out`` is forward's
            ``out`` argument. Exceptions propagate out of :meth:`forward` (see the module
            docstring).
        block_size: see above.
        dtype: element type of the rows: ``"f32"``, ``"f16"`` or ``"bf16"`` (or a numpy
            dtype / code).
        flags: ``FLAG_TRANSPOSE_K``, ``FLAG_PAD_TRUNCATE``, ``FLAG_BLOCK_DIAGONAL``.
        quant: a :class:`QuantConfig`, or None for no quantization.
        quantizer: shorthand for ``quant=QuantConfig.custom(quantizer)``: a callable that
            rewrites a writable ``rows x n`` view of the rotated rows in place before the
            op sees them.

    The handle frees itself when garbage-collected; use :meth:`close` or ``with`` to free
    it deterministically. It keeps ``op`` and the quantizer alive.
    """

    _free = staticmethod(LIB.quarot_r4_wrapper_free)

    def __init__(
        self,
        n: int,
        op: Callable[[Activations], Optional[int]],
        *,
        block_size: int = 0,
        dtype="f32",
        flags: int = 0,
        quant: Optional[QuantConfig] = None,
        quantizer: Optional[Callable[[np.ndarray], Optional[int]]] = None,
    ):
        super().__init__()
        if not callable(op):
            raise TypeError("op must be callable")
        if quantizer is not None:
            if quant is not None:
                raise ValueError("pass either quant or quantizer, not both")
            quant = QuantConfig.custom(quantizer)
        if quant is not None and not isinstance(quant, QuantConfig):
            raise TypeError("quant must be a QuantConfig or None")
        self.n = _arrays.size_arg(n, "n")
        self.block_size = _arrays.size_arg(block_size, "block_size")
        self.dtype = _arrays.dtype_code(dtype)
        self.flags = _arrays.flags_arg(flags)
        self.quant = quant
        self.op = op
        self._state = _State(_arrays.numpy_dtype(self.dtype))
        self._c_op = _op_callback(self._state, op)
        self._c_quant = None
        qs = None
        if quant is not None:
            if quant.kind == QUANT_CUSTOM:
                self._c_quant = _quant_callback(self._state, quant.quantizer)
            qs = quant.to_struct(self._c_quant)
        self._c_quant_struct = qs
        out = c_void_p()
        check(
            LIB.quarot_r4_wrapper_new(
                self.n, self.block_size, self.dtype, self.flags, None if qs is None else byref(qs), self._c_op, None, byref(out)
            )
        )
        self._handle = out.value

    def forward(self, x, out: Any = None, *, in_place: bool = False, flags: int = 0, copy: bool = False):
        """Rotate (and quantize) the rows of ``x`` and call the op on them
        (``quarot_r4_wrapper_forward``).

        Args:
            x: ``rows x n`` (or one row of n) array of the wrapper's element type (uint16
                bit patterns are taken as that type); rows may be strided.
            out: any Python object; the op sees it as ``activations.out`` (e.g. the array
                the op writes its result into). Returned by forward.
            in_place: rotate (and fake-quantize) ``x`` itself and hand those rows to the op
                (``FORWARD_IN_PLACE``; ``x`` then holds the rotated rows, also when the op
                failed). Otherwise ``x`` is only read.
            flags: raw forward flags (``FORWARD_IN_PLACE``), OR-ed with ``in_place``.
            copy: as for :func:`quarot.hadamard`.

        Returns:
            ``out``.

        Raises:
            The exception the op or quantizer raised, as is; QuarotError for a library
            error (``ERR_CALLBACK`` with ``callback_code`` when a callback returned a
            nonzero int).
        """
        h = self._ptr()
        flags = _arrays.flags_arg(flags) | (FORWARD_IN_PLACE if in_place else 0)
        writable = bool(flags & FORWARD_IN_PLACE)
        r = _arrays.as_rows(x, name="x", spec=self.dtype, writable=writable, copy=copy)
        if r.n != self.n:
            raise ValueError(f"x has rows of {r.n} values, the wrapper's width is {self.n}")
        call = _Call(x.dtype, out)
        stack = self._state.stack()
        stack.append(call)
        try:
            status = LIB.quarot_r4_wrapper_forward(h, r.ptr, r.rows, r.stride, None, flags)
            if writable:
                r.write_back()  # the rows are rotated even when the op failed
            _finish(status, call)
        finally:
            stack.pop()
        return out

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"R4Wrapper(n={self.n}, block_size={self.block_size}, "
            f"dtype={_arrays.DTYPE_NAMES[self.dtype]!r}, flags={self.flags}, quant={self.quant}"
            f"{', closed' if self.closed else ''})"
        )


# ---------------------------------------------------------------------------------------
# QKRotation
# ---------------------------------------------------------------------------------------


class QKShape(NamedTuple):
    """The layout of q and k (``struct quarot_qk_shape``), in elements: head h of token t
    starts at ``q + t * q_token_stride + h * q_head_stride`` (k likewise with n_kv_heads
    heads)."""

    tokens: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    q_token_stride: int
    q_head_stride: int
    k_token_stride: int
    k_head_stride: int

    @classmethod
    def contiguous(cls, tokens: int, n_heads: int, n_kv_heads: int, head_dim: int) -> "QKShape":
        """``[tokens, heads, head_dim]`` contiguous buffers."""
        return cls(tokens, n_heads, n_kv_heads, head_dim, n_heads * head_dim, head_dim, n_kv_heads * head_dim, head_dim)

    @classmethod
    def head_major(cls, tokens: int, n_heads: int, n_kv_heads: int, head_dim: int) -> "QKShape":
        """``[heads, tokens, head_dim]`` contiguous buffers."""
        return cls(tokens, n_heads, n_kv_heads, head_dim, head_dim, tokens * head_dim, head_dim, tokens * head_dim)

    def to_struct(self) -> QKShapeStruct:
        """The C ``struct quarot_qk_shape``."""
        return QKShapeStruct(*(_arrays.size_arg(v, f) for v, f in zip(self, self._fields)))


_LAYOUTS = ("thd", "htd")


def _qk_operand(a, name: str, code: int, head_dim: int, layout: str, copy: bool):
    """(work array in the caller's axes, ptr, tokens, heads, token stride, head stride,
    writeback) for q or k given as an array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(a).__name__}")
    _arrays.array_code(a.dtype, _arrays.DTYPE_NAMES[code], name)
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only, but QKRotation.forward writes it in place")
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"{name}: a 4-D array must have a leading batch axis of 1, got shape {a.shape}")
        a3 = a[0]
    elif a.ndim == 3:
        a3 = a
    elif a.ndim == 2:
        if layout != "thd":
            raise ValueError(f"{name}: a 2-D array is [tokens, heads * head_dim]; layout must be 'thd'")
        if a.shape[1] % head_dim:
            raise ValueError(f"{name}: rows of {a.shape[1]} values are not whole heads of {head_dim}")
        if a.shape[1] and a.strides[1] != a.itemsize and a.shape[1] > 1:
            a3 = None
        else:
            a3 = np.lib.stride_tricks.as_strided(
                a, (a.shape[0], a.shape[1] // head_dim, head_dim), (a.strides[0], head_dim * a.itemsize, a.itemsize)
            )
    else:
        raise ValueError(f"{name} must be 2-D, 3-D or 4-D (with a leading 1), got shape {a.shape}")

    def geometry(v):
        if layout == "thd":
            tokens, heads, d = v.shape
            ts, hs, es = v.strides
        else:
            heads, tokens, d = v.shape
            hs, ts, es = v.strides
        return tokens, heads, d, ts, hs, es

    reason = None
    if a3 is None:
        reason = "its last axis is not contiguous"
    else:
        tokens, heads, d, ts, hs, es = geometry(a3)
        if d != head_dim:
            raise ValueError(f"{name}: heads of {d} values, the handle's head_dim is {head_dim} (layout {layout!r})")
        isz = a3.itemsize
        if d > 1 and es != isz:
            reason = "its last axis is not contiguous"
        elif not a3.flags.aligned:
            reason = "its buffer is not aligned"
        elif (tokens > 1 and (ts < 0 or ts % isz)) or (heads > 1 and (hs < 0 or hs % isz)):
            reason = "its token or head stride is negative or not a multiple of the item size"
    if reason is not None:
        if not copy:
            raise ValueError(
                f"{name} cannot be passed to libquarot without a copy: {reason}. Pass copy=True "
                "to work on a contiguous copy (copied back afterwards)"
            )
        work = np.array(a, order="C", copy=True)
        w3 = work[0] if work.ndim == 4 else work
        if work.ndim == 2:
            w3 = work.reshape(work.shape[0], -1, head_dim)

        def writeback():
            a[...] = work

        a3 = w3
        tokens, heads, d, ts, hs, es = geometry(a3)
        if d != head_dim:
            raise ValueError(f"{name}: heads of {d} values, the handle's head_dim is {head_dim}")
    else:
        work = a

        def writeback():
            pass

    isz = a3.itemsize
    ts_e = ts // isz if tokens > 1 else max(heads * (hs // isz if heads > 1 else head_dim), head_dim)
    hs_e = hs // isz if heads > 1 else head_dim
    return work, a3.ctypes.data, tokens, heads, ts_e, hs_e, writeback


def _present(view_thd: np.ndarray, like: np.ndarray, layout: str) -> np.ndarray:
    """A [tokens, heads, d] view rearranged into the axes of the caller's array."""
    v = view_thd if layout == "thd" else view_thd.transpose(1, 0, 2)
    if like.ndim == 4:
        return v[np.newaxis]
    if like.ndim == 2:
        t, h, d = view_thd.shape
        flat = _arrays._reshape_view(view_thd, (t, h * d))
        return flat if flat is not None else view_thd
    return v


def _rope_callback(state: _State, rope: Callable) -> ROPE_FN:
    def c_rope(_user_data, q_ptr, k_ptr, _dtype, shape_ptr, _call_arg):
        call = state.current()
        try:
            s = shape_ptr.contents
            shape = QKShape(
                s.tokens, s.n_heads, s.n_kv_heads, s.head_dim, s.q_token_stride, s.q_head_stride, s.k_token_stride, s.k_head_stride
            )
            q = _arrays.pointer_view(q_ptr, call.np_dtype, (s.tokens, s.n_heads, s.head_dim), (s.q_token_stride, s.q_head_stride, 1), writable=True)
            k = _arrays.pointer_view(k_ptr, call.np_dtype, (s.tokens, s.n_kv_heads, s.head_dim), (s.k_token_stride, s.k_head_stride, 1), writable=True)
            if call.view is not None:
                q, k = call.view(q, k)
            call_arg = call.out
        except BaseException as e:  # noqa: BLE001
            call.exc = call.exc or e
            return CALLBACK_EXCEPTION_CODE
        return _run(call, rope, q, k, shape, call_arg)

    return ROPE_FN(c_rope)


class QKRotation(_Handle):
    """Quark's ``QKRotation`` (``quarot_qk_rotation_new``): :meth:`forward` calls
    ``rope`` (if any) on q and k, then applies the normalized Hadamard of width
    ``head_dim`` (``matmul_hadU`` layout) to every head of q and k, in place. This is what
    replaces an engine's call to RoPE (Quark's
    ``add_qk_rotation_after_function_call_in_forward``).

    Args:
        head_dim: values per head (64/128/256 and the K * 2^m widths are exact orthogonal
            rotations; ``FLAG_PAD_TRUNCATE`` reproduces Quark <= 0.10 for any head_dim).
        rope: ``rope(q, k, shape, call_arg) -> None | int``, or None to only rotate. ``q``
            and ``k`` are writable numpy views of the very buffers passed to forward (no
            copy), in the same axes as those arrays (``[tokens, heads, head_dim]`` views
            when forward got an explicit ``shape``); ``shape`` is a :class:`QKShape`;
            ``call_arg`` is forward's ``call_arg``. It must modify q and k in place.
            Exceptions propagate out of :meth:`forward` (see the module docstring); q and
            k then hold what the callback left, unrotated.
        dtype: ``"f32"``, ``"f16"`` or ``"bf16"`` (or a numpy dtype / code).
        flags: ``FLAG_TRANSPOSE_K``, ``FLAG_PAD_TRUNCATE``, ``FLAG_BLOCK_DIAGONAL``.

    The handle frees itself when garbage-collected; use :meth:`close` or ``with`` to free
    it deterministically. It keeps ``rope`` alive.
    """

    _free = staticmethod(LIB.quarot_qk_rotation_free)

    def __init__(self, head_dim: int, rope: Optional[Callable] = None, *, dtype="f32", flags: int = 0):
        super().__init__()
        if rope is not None and not callable(rope):
            raise TypeError("rope must be callable or None")
        self.head_dim = _arrays.size_arg(head_dim, "head_dim")
        self.dtype = _arrays.dtype_code(dtype)
        self.flags = _arrays.flags_arg(flags)
        self.rope = rope
        self._state = _State(_arrays.numpy_dtype(self.dtype))
        self._c_rope = None if rope is None else _rope_callback(self._state, rope)
        out = c_void_p()
        c_rope = self._c_rope if self._c_rope is not None else cast(None, ROPE_FN)  # NULL: rotate only
        check(LIB.quarot_qk_rotation_new(self.head_dim, self.dtype, self.flags, c_rope, None, byref(out)))
        self._handle = out.value

    def forward(self, q, k, call_arg: Any = None, *, layout: str = "thd", shape: Optional[QKShape] = None, copy: bool = False):
        """Run the RoPE callback on q and k, then rotate every head of both in place
        (``quarot_qk_rotation_forward``).

        Args:
            q, k: arrays of the handle's element type (uint16 bit patterns are taken as
                that type), written in place. With ``layout="thd"`` (default) they are
                ``[tokens, heads, head_dim]`` (or 2-D ``[tokens, heads * head_dim]``); with
                ``layout="htd"`` ``[heads, tokens, head_dim]``; a 4-D array with a leading
                axis of 1 (e.g. Quark's ``[1, heads, seq, head_dim]`` with ``"htd"``) is
                accepted too. Any strides work as long as the last axis is contiguous
                (k may have fewer heads than q: GQA).
            call_arg: any Python object, passed to ``rope`` as its ``call_arg``.
            layout: ``"thd"`` or ``"htd"``, see above.
            shape: an explicit :class:`QKShape` instead: q and k are then C-contiguous
                buffers (any shape) holding the heads it describes (checked to fit).
            copy: as for :func:`quarot.hadamard` (the RoPE then sees the copies).

        Returns:
            ``(q, k)``.
        """
        h = self._ptr()
        if shape is not None:
            return self._forward_shape(h, q, k, call_arg, shape)
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
        qw, qp, qt, qh, qts, qhs, q_back = _qk_operand(q, "q", self.dtype, self.head_dim, layout, copy)
        kw, kp, kt, kh, kts, khs, k_back = _qk_operand(k, "k", self.dtype, self.head_dim, layout, copy)
        if qt != kt:
            raise ValueError(f"q has {qt} tokens, k has {kt}")
        if q.dtype != k.dtype:
            raise TypeError(f"q ({q.dtype}) and k ({k.dtype}) must have the same dtype")
        s = QKShapeStruct(qt, qh, kh, self.head_dim, qts, qhs, kts, khs)

        def view(qv, kv):
            return _present(qv, qw, layout), _present(kv, kw, layout)

        try:
            self._run(h, qp, kp, s, _Call(q.dtype, call_arg, view))
        finally:
            q_back()  # copies (copy=True) go back also when the RoPE failed
            k_back()
        return q, k

    def _forward_shape(self, h, q, k, call_arg, shape):
        if not isinstance(shape, QKShape):
            shape = QKShape(*shape)
        s = shape.to_struct()
        for name, a, heads, ts, hs in (
            ("q", q, shape.n_heads, shape.q_token_stride, shape.q_head_stride),
            ("k", k, shape.n_kv_heads, shape.k_token_stride, shape.k_head_stride),
        ):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{name} must be a numpy array, not {type(a).__name__}")
            _arrays.array_code(a.dtype, _arrays.DTYPE_NAMES[self.dtype], name)
            if not a.flags.writeable:
                raise ValueError(f"{name} is read-only, but QKRotation.forward writes it in place")
            if not (a.flags.c_contiguous and a.flags.aligned):
                raise ValueError(f"{name} must be C-contiguous and aligned when an explicit shape is given")
            if shape.tokens and heads:
                need = (shape.tokens - 1) * ts + (heads - 1) * hs + shape.head_dim
                if need > a.size:
                    raise ValueError(f"{name} holds {a.size} elements, the shape needs {need}")
        if q.dtype != k.dtype:
            raise TypeError(f"q ({q.dtype}) and k ({k.dtype}) must have the same dtype")
        self._run(h, q.ctypes.data, k.ctypes.data, s, _Call(q.dtype, call_arg))
        return q, k

    def _run(self, h, qp, kp, s, call):
        stack = self._state.stack()
        stack.append(call)
        try:
            status = LIB.quarot_qk_rotation_forward(h, qp, kp, byref(s), None)
            _finish(status, call)
        finally:
            stack.pop()

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"QKRotation(head_dim={self.head_dim}, dtype={_arrays.DTYPE_NAMES[self.dtype]!r}, "
            f"flags={self.flags}, rope={'yes' if self.rope else 'no'}{', closed' if self.closed else ''})"
        )

