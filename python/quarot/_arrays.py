"""numpy <-> libquarot buffer plumbing (internal).

Element types: float32 <-> DTYPE_F32, float16 <-> DTYPE_F16, ``ml_dtypes.bfloat16`` (when
ml_dtypes is importable) <-> DTYPE_BF16, and uint16 bit patterns for either 16-bit type
when the caller says which (``dtype="bf16"`` / ``dtype="f16"``).

Layouts: a batch of rows is a 1-D array (one row) or a 2-D array ``rows x n`` whose last
axis is contiguous; its row stride (numpy's ``strides[0]`` divided by the item size) is
passed to libquarot as is, so strided row views such as ``big[:, :n]`` need no copy.
Higher-dimensional arrays are accepted when their leading axes merge into one row axis
without a copy. Anything else (a non-contiguous last axis, negative or odd strides, a
misaligned buffer) is refused with ValueError unless ``copy=True``, in which case the work
is done on a contiguous copy that is written back afterwards.
"""

from __future__ import annotations

import ctypes
import operator

import numpy as np

from .constants import DTYPE_BF16, DTYPE_F16, DTYPE_F32

try:  # optional
    import ml_dtypes as _ml_dtypes

    BFLOAT16 = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - exercised only without ml_dtypes
    _ml_dtypes = None
    BFLOAT16 = None

F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)
U16 = np.dtype(np.uint16)

DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_F16: "f16", DTYPE_BF16: "bf16"}

_NAME_TO_CODE = {
    "f32": DTYPE_F32,
    "float32": DTYPE_F32,
    "fp32": DTYPE_F32,
    "f16": DTYPE_F16,
    "float16": DTYPE_F16,
    "fp16": DTYPE_F16,
    "half": DTYPE_F16,
    "bf16": DTYPE_BF16,
    "bfloat16": DTYPE_BF16,
}


def dtype_code(spec) -> int:
    """Normalize an element-type spec to a ``quarot_dtype`` code.

    Accepts the codes 0 / 1 / 30, the strings ``"f32"``, ``"f16"``, ``"bf16"`` (and
    ``"float32"``, ``"float16"``, ``"bfloat16"``, ...), and numpy dtypes / scalar types
    float32, float16 and ``ml_dtypes.bfloat16``.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if int(spec) in DTYPE_NAMES:
            return int(spec)
        raise ValueError(f"unknown element type code {int(spec)}: expected 0 (f32), 1 (f16) or 30 (bf16)")
    if isinstance(spec, str):
        code = _NAME_TO_CODE.get(spec.lower())
        if code is not None:
            return code
    else:
        try:
            dt = np.dtype(spec)
        except TypeError:
            dt = None
        if dt is not None:
            if dt == F32:
                return DTYPE_F32
            if dt == F16:
                return DTYPE_F16
            if BFLOAT16 is not None and dt == BFLOAT16:
                return DTYPE_BF16
    raise ValueError(
        f"unknown element type {spec!r}: expected 'f32', 'f16' or 'bf16' (or float32, "
        "float16, ml_dtypes.bfloat16, or the codes 0, 1, 30)"
    )


def numpy_dtype(code: int) -> np.dtype:
    """The numpy dtype libquarot's element type ``code`` is presented as: float32,
    float16, and ``ml_dtypes.bfloat16`` (uint16 bit patterns when ml_dtypes is missing)."""
    if code == DTYPE_F32:
        return F32
    if code == DTYPE_F16:
        return F16
    if code == DTYPE_BF16:
        return BFLOAT16 if BFLOAT16 is not None else U16
    raise ValueError(f"unknown element type code {code}")


def array_code(arr_dtype: np.dtype, spec, name: str) -> int:
    """The element type of an array of numpy dtype ``arr_dtype``; ``spec`` (optional) says
    what it holds (needed for uint16 bit patterns)."""
    if spec is None:
        if arr_dtype == F32:
            return DTYPE_F32
        if arr_dtype == F16:
            return DTYPE_F16
        if BFLOAT16 is not None and arr_dtype == BFLOAT16:
            return DTYPE_BF16
        if arr_dtype == U16:
            raise TypeError(
                f"{name}: a uint16 array holds 16-bit bit patterns of unknown type: pass "
                "dtype='bf16' or dtype='f16'"
            )
        raise TypeError(
            f"{name}: unsupported element type {arr_dtype}; libquarot works on float32, "
            "float16 and bfloat16 (ml_dtypes.bfloat16, or uint16 bit patterns with dtype='bf16')"
        )
    code = dtype_code(spec)
    ok = {
        DTYPE_F32: arr_dtype == F32,
        DTYPE_F16: arr_dtype in (F16, U16),
        DTYPE_BF16: arr_dtype == U16 or (BFLOAT16 is not None and arr_dtype == BFLOAT16),
    }[code]
    if not ok:
        want = {
            DTYPE_F32: "float32",
            DTYPE_F16: "float16 or uint16 bit patterns",
            DTYPE_BF16: "ml_dtypes.bfloat16 or uint16 bit patterns",
        }[code]
        raise TypeError(f"{name}: a {arr_dtype} array cannot hold {DTYPE_NAMES[code]} values (expected {want})")
    return code


def size_arg(value, name: str) -> int:
    """A non-negative integer argument (size_t)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if v < 0 or v >= 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def flags_arg(value, name: str = "flags") -> int:
    """A uint32 flag set."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if v < 0 or v >= 1 << 32:
        raise ValueError(f"{name} must be a uint32 bit set, got {v}")
    return v


def _reshape_view(a: np.ndarray, shape):
    """``a`` reshaped without a copy, or None when that needs one."""
    try:
        return np.reshape(a, shape, copy=False)
    except TypeError:  # numpy < 2.1: no copy= keyword
        b = a.reshape(shape)
        return b if np.shares_memory(a, b) or a.size == 0 else None
    except ValueError:
        return None


class Rows:
    """A batch of rows as libquarot sees it: ``ptr``, ``rows``, ``n``, ``stride`` (in
    elements), ``code``; ``work`` is the 2-D array passed (the caller's memory, or a
    contiguous copy when ``copied``); :meth:`write_back` copies a worked copy back."""

    __slots__ = ("array", "work", "ptr", "rows", "n", "stride", "code", "copied", "writable")

    def write_back(self) -> None:
        if self.copied and self.writable:
            self.array[...] = self.work.reshape(self.array.shape)


def _row_layout(a2: np.ndarray):
    """(stride in elements, None) if libquarot can address ``a2`` directly, else
    (None, reason)."""
    rows, n = a2.shape
    if rows == 0 or n == 0:
        return n, None  # nothing is read or written
    isz = a2.itemsize
    s_row, s_col = a2.strides
    if n > 1 and s_col != isz:
        return None, "its last axis is not contiguous (numpy stride %d bytes, item size %d)" % (s_col, isz)
    if not a2.flags.aligned:
        return None, "its buffer is not aligned to its item size"
    if rows <= 1:
        return n, None
    if s_row < 0 or s_row % isz:
        return None, "its row stride (%d bytes) is negative or not a multiple of the item size" % s_row
    stride = s_row // isz
    if stride < n:
        return None, "its rows overlap (row stride %d < row width %d)" % (stride, n)
    return stride, None


def as_rows(a, *, name: str, spec=None, writable: bool, copy: bool, allow_nd: bool = True) -> Rows:
    """Validate ``a`` as a batch of rows for a libquarot call (see the module docstring)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(a).__name__}")
    code = array_code(a.dtype, spec, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (a row)")
    if a.ndim > 2 and not allow_nd:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only, but this operation writes it in place")
    n = a.shape[-1]
    if a.ndim == 1:
        a2 = a.reshape(1, n)  # always a view
    elif a.ndim == 2:
        a2 = a
    else:
        a2 = _reshape_view(a, (-1, n))
    reason = None
    stride = None
    if a2 is None:
        reason = "its leading axes cannot be merged into one row axis without a copy"
    else:
        stride, reason = _row_layout(a2)
    r = Rows()
    r.array = a
    r.n = n
    r.code = code
    r.writable = writable
    if reason is None:
        r.work = a2
        r.rows = a2.shape[0]
        r.stride = stride
        r.copied = False
    else:
        if not copy:
            raise ValueError(
                f"{name} cannot be passed to libquarot without a copy: {reason}. Pass "
                "copy=True to work on a contiguous copy"
                + (" (copied back into the array afterwards)" if writable else "")
            )
        work = np.array(a, order="C", copy=True).reshape(-1, n)
        r.work = work
        r.rows = work.shape[0]
        r.stride = n
        r.copied = True
    r.ptr = r.work.ctypes.data
    if r.rows <= 1:
        r.stride = n
    return r


def as_vector(a, *, name: str, code: int, length: int, writable: bool, copy: bool) -> Rows:
    """Validate a 1-D vector of ``length`` elements of element type ``code``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(a).__name__}")
    if a.ndim != 1 or a.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {a.shape}")
    array_code(a.dtype, DTYPE_NAMES[code], name)
    return as_rows(a, name=name, spec=DTYPE_NAMES[code], writable=writable, copy=copy)


def pointer_view(ptr: int, dtype: np.dtype, shape, strides_elems, *, writable: bool) -> np.ndarray:
    """A numpy array over memory owned by someone else (no copy): ``shape`` with strides in
    elements, starting at address ``ptr``. Valid only as long as that memory is."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if any(s == 0 for s in shape) or not ptr:
        out = np.empty(shape, dtype)
        out.flags.writeable = writable
        return out
    isz = dtype.itemsize
    extent = isz + sum((s - 1) * st * isz for s, st in zip(shape, strides_elems))
    buf = (ctypes.c_char * extent).from_address(ptr)
    strides = tuple(int(st) * isz for st in strides_elems)
    out = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    out.flags.writeable = writable
    return out


def float32_to_bf16_bits(x) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest even, NaN stays NaN) and return the
    uint16 bit patterns: for callers without ml_dtypes."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    quiet_nan = (bits >> 16) | 0x40  # keep sign and payload, force a quiet NaN
    return np.where(np.isnan(x), quiet_nan, rounded).astype(np.uint16)


def bf16_bits_to_float32(bits) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32 (exact)."""
    b = np.asarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << 16).view(np.float32)
