"""The Hadamard transform of rows, its size helpers, and library-wide utilities."""

from __future__ import annotations

from ctypes import byref, c_int32, c_size_t

import numpy as np

from . import _arrays
from ._errors import check, status_string  # status_string: re-exported
from ._lib import LIB
from .constants import (
    DTYPE_BF16,
    DTYPE_F16,
    DTYPE_F32,
    FLAG_BLOCK_DIAGONAL,
)

__all__ = [
    "hadamard",
    "hadamard_f32",
    "hadamard_f16",
    "hadamard_bf16",
    "size_supported",
    "nearest_sizes",
    "block_size",
    "hadamard_scale",
    "scale",
    "k_matrix",
    "rows_for_thread",
    "set_num_threads",
    "release_scratch",
    "scratch_retained",
    "version",
    "active_isa",
    "isa_available",
    "isa_name",
    "status_string",
    "last_error",
    "last_callback_code",
]

_TYPED = {
    DTYPE_F32: LIB.quarot_hadamard_f32,
    DTYPE_F16: LIB.quarot_hadamard_f16,
    DTYPE_BF16: LIB.quarot_hadamard_bf16,
}


def _text(b) -> str:
    return "" if b is None else b.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------
# Size helpers
# ---------------------------------------------------------------------------------------


def size_supported(n: int) -> int:
    """The K that width ``n`` uses (n = K * 2^m), or 0 if ``n`` is not supported (without
    ``FLAG_PAD_TRUNCATE`` / ``FLAG_BLOCK_DIAGONAL``). ``quarot_hadamard_size_supported``."""
    return int(LIB.quarot_hadamard_size_supported(_arrays.size_arg(n, "n")))


def nearest_sizes(n: int) -> tuple[int, int]:
    """The supported widths nearest to ``n`` as ``(below, above)``: the largest <= n and
    the smallest >= n (0 where there is none). ``quarot_hadamard_nearest_sizes``."""
    below, above = c_size_t(0), c_size_t(0)
    check(LIB.quarot_hadamard_nearest_sizes(_arrays.size_arg(n, "n"), byref(below), byref(above)))
    return int(below.value), int(above.value)


def block_size(n: int) -> int:
    """The block width ``FLAG_BLOCK_DIAGONAL`` uses for rows of width ``n``: n itself when
    supported, else the largest supported width dividing n, or 0 (n == 0, or odd and
    unsupported). ``quarot_hadamard_block_size``."""
    return int(LIB.quarot_hadamard_block_size(_arrays.size_arg(n, "n")))


def hadamard_scale(n: int) -> float:
    """``1/sqrt(n)`` rounded to float32 (returned as a Python float): the scale of the
    orthogonal transform of width ``n``, as Quark's ``matmul_hadU``. 0.0 for n == 0.
    ``quarot_hadamard_scale``."""
    return float(LIB.quarot_hadamard_scale(_arrays.size_arg(n, "n")))


#: Alias of :func:`hadamard_scale`.
scale = hadamard_scale


def k_matrix(k: int) -> np.ndarray:
    """The +-1 matrix H_K (a new ``K x K`` int8 array) used for widths K * 2^m: QuaRot's /
    Quark's for K in their table, SpinQuant's for 44, else the Paley construction.
    Raises :class:`QuarotError` (ERR_INVALID_ARGUMENT) for a K no width uses.
    ``quarot_hadamard_k_matrix``."""
    k = _arrays.size_arg(k, "k")
    out = np.empty((k, k), dtype=np.int8)
    check(LIB.quarot_hadamard_k_matrix(k, out.ctypes.data, out.size))
    return out


def _default_scale(n: int, flags: int) -> float:
    """The normalized scale for rows of width n under ``flags``."""
    if flags & FLAG_BLOCK_DIAGONAL:
        b = LIB.quarot_hadamard_block_size(n)
        if b:
            return float(LIB.quarot_hadamard_scale(b))
    return float(LIB.quarot_hadamard_scale(n))


def _scale_arg(scale, n: int, flags: int) -> float:
    if scale is None:
        return _default_scale(n, flags)
    return float(scale)


# ---------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------


def hadamard(x, scale=None, flags: int = 0, out=None, *, dtype=None, out_dtype=None, copy: bool = False):
    """Apply ``y = scale * (H_K kron H_{2^m}) y`` to every row of ``x``.

    Args:
        x: a numpy array of rows: 1-D (one row) or 2-D ``rows x n`` (more dimensions are
            fine when the leading ones merge into rows without a copy), of float32,
            float16 or bfloat16 (``ml_dtypes.bfloat16``, or uint16 bit patterns with
            ``dtype="bf16"``). Rows may be a strided view (e.g. ``big[:, :n]``): the row
            stride is passed to the library and the elements between rows are never
            touched. The last axis must be contiguous (see ``copy``).
        scale: the factor applied to the result. ``None`` (default) is the normalized,
            orthogonal scale: :func:`hadamard_scale` (n), or of the block width
            (:func:`block_size` (n)) with ``FLAG_BLOCK_DIAGONAL``. With
            ``FLAG_PAD_TRUNCATE`` it is 1/sqrt of the unpadded n, like Quark's
            ``hadamard_multiply``; pass ``scale=1.0`` for ``hadamard_transform``.
        flags: ``FLAG_*`` bits (``FLAG_TRANSPOSE_K``, ``FLAG_PAD_TRUNCATE``,
            ``FLAG_PARALLEL``, ``FLAG_BLOCK_DIAGONAL``).
        out: ``None`` to transform ``x`` in place (``quarot_hadamard_f32`` / ``_f16`` /
            ``_bf16``); or an array of the same shape, of any of the three element
            types, that receives the result with type conversion (``quarot_hadamard``);
            ``x`` is then only read (``out`` may be ``x`` itself).
        dtype: what ``x`` holds, needed only for uint16 bit patterns (``"bf16"`` or
            ``"f16"``).
        out_dtype: the same for ``out``.
        copy: if False (default) an array libquarot cannot address directly (last axis
            not contiguous, e.g. ``x[:, ::2]`` or ``x.T``; negative strides; misaligned)
            raises ValueError. If True such arrays go through a contiguous copy, and the
            result is copied back into the caller's array.

    Returns:
        The array holding the result: ``x`` (in place) or ``out``.

    Raises:
        QuarotError: a status from the library (e.g. ERR_UNSUPPORTED_SIZE with the
            nearest supported widths in ``.message``); the data is then unchanged.
        ValueError: read-only target, layout that needs ``copy=True``, shape mismatch.
        TypeError: unsupported element type.
    """
    flags = _arrays.flags_arg(flags)
    if out is None:
        r = _arrays.as_rows(x, name="x", spec=dtype, writable=True, copy=copy)
        s = _scale_arg(scale, r.n, flags)
        check(_TYPED[r.code](r.ptr, r.rows, r.n, r.stride, s, flags))
        r.write_back()
        return x
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, not {type(out).__name__}")
    if isinstance(x, np.ndarray) and x.shape != out.shape:
        raise ValueError(f"out has shape {out.shape}, x has shape {x.shape}: they must match")
    src = _arrays.as_rows(x, name="x", spec=dtype, writable=False, copy=copy)
    dst = _arrays.as_rows(out, name="out", spec=out_dtype, writable=True, copy=copy)
    s = _scale_arg(scale, src.n, flags)
    check(
        LIB.quarot_hadamard(
            src.ptr, src.code, src.stride, dst.ptr, dst.code, dst.stride, src.rows, src.n, s, flags
        )
    )
    dst.write_back()
    return out


def _typed(code: int, x, scale, flags, dtype_name: str, copy: bool):
    flags = _arrays.flags_arg(flags)
    r = _arrays.as_rows(x, name="x", spec=dtype_name, writable=True, copy=copy)
    s = _scale_arg(scale, r.n, flags)
    check(_TYPED[code](r.ptr, r.rows, r.n, r.stride, s, flags))
    r.write_back()
    return x


def hadamard_f32(x, scale=None, flags: int = 0, *, copy: bool = False):
    """:func:`hadamard` in place on a float32 array (``quarot_hadamard_f32``)."""
    return _typed(DTYPE_F32, x, scale, flags, "f32", copy)


def hadamard_f16(x, scale=None, flags: int = 0, *, copy: bool = False):
    """:func:`hadamard` in place on IEEE binary16 values: a float16 array or uint16 bit
    patterns (``quarot_hadamard_f16``)."""
    return _typed(DTYPE_F16, x, scale, flags, "f16", copy)


def hadamard_bf16(x, scale=None, flags: int = 0, *, copy: bool = False):
    """:func:`hadamard` in place on bfloat16 values: an ``ml_dtypes.bfloat16`` array or
    uint16 bit patterns (``quarot_hadamard_bf16``)."""
    return _typed(DTYPE_BF16, x, scale, flags, "bf16", copy)


# ---------------------------------------------------------------------------------------
# Threads, scratch, versions, errors
# ---------------------------------------------------------------------------------------


def rows_for_thread(rows: int, ith: int, nth: int) -> tuple[int, int]:
    """The rows worker ``ith`` of ``nth`` should process, as ``(first, count)``: a
    balanced split covering ``range(rows)`` exactly once. ``quarot_rows_for_thread``."""
    first, count = c_size_t(0), c_size_t(0)
    check(
        LIB.quarot_rows_for_thread(
            _arrays.size_arg(rows, "rows"),
            _arrays.size_arg(ith, "ith"),
            _arrays.size_arg(nth, "nth"),
            byref(first),
            byref(count),
        )
    )
    return int(first.value), int(count.value)


def set_num_threads(n: int = 0) -> None:
    """Size of the worker pool used with ``FLAG_PARALLEL``: ``n`` threads (1..4096), or 0
    for the default (``QUAROT_NUM_THREADS``, else the number of CPUs).
    ``quarot_set_num_threads``."""
    check(LIB.quarot_set_num_threads(_arrays.size_arg(n, "n")))


def release_scratch() -> int:
    """Free the scratch memory the weight rotations keep between calls; returns the
    number of bytes freed. ``quarot_release_scratch``."""
    return int(LIB.quarot_release_scratch())


def scratch_retained() -> int:
    """Bytes of scratch memory libquarot currently keeps between calls.
    ``quarot_scratch_retained``."""
    return int(LIB.quarot_scratch_retained())


def version() -> str:
    """The loaded library's version string, e.g. ``"0.1.0"`` (``quarot_version``);
    compare with ``quarot.VERSION_STRING``, the header version of these bindings."""
    return _text(LIB.quarot_version())


def active_isa() -> int:
    """The instruction set the transforms use (``ISA_SCALAR`` / ``ISA_AVX2`` /
    ``ISA_AVX512``); raises QuarotError (ERR_ISA_UNAVAILABLE) when ``QUAROT_ISA`` forces
    one this CPU lacks. ``quarot_active_isa``."""
    out = c_int32(0)
    check(LIB.quarot_active_isa(byref(out)))
    return int(out.value)


def isa_available(isa: int) -> bool:
    """Whether this CPU can run instruction set ``isa`` (False for unknown values).
    ``quarot_isa_available``."""
    return bool(LIB.quarot_isa_available(int(isa)))


def isa_name(isa: int | None = None) -> str:
    """The name of instruction set ``isa`` (``"scalar"``, ``"avx2"``, ``"avx512"``, or
    ``"unknown"``); the active one when ``isa`` is None. ``quarot_isa_name``."""
    if isa is None:
        isa = active_isa()
    return _text(LIB.quarot_isa_name(int(isa)))


def last_error() -> str:
    """Details of the calling thread's most recent failed libquarot call (``""`` after a
    success). :class:`QuarotError` already carries it as ``.message``.
    ``quarot_last_error``."""
    return _text(LIB.quarot_last_error())


def last_callback_code() -> int:
    """The code returned by the most recent failing callback on this thread (0 if none).
    ``quarot_last_callback_code``."""
    return int(LIB.quarot_last_callback_code())

