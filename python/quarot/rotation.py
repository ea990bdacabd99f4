"""Offline weight rotation (Quark's ``rotate_in_channels2`` / ``rotate_out_channels2``)
and the rotation-matrix generators."""

from __future__ import annotations

import math

import numpy as np

from . import _arrays
from ._errors import check
from ._lib import LIB
from .constants import LAYOUT_MATMUL_HADU

__all__ = [
    "rotate_in_channels",
    "rotate_out_channels",
    "rotate_in_channels_hadamard",
    "rotate_out_channels_hadamard",
    "hadamard_matrix",
    "quark_hadamard_scale",
    "random_signs",
    "random_orthogonal",
]


def _weight(w, dtype, copy):
    if isinstance(w, np.ndarray) and w.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features x in_features), got shape {w.shape}")
    return _arrays.as_rows(w, name="weight", spec=dtype, writable=True, copy=copy, allow_nd=False)


def _rotation(rotation) -> np.ndarray:
    r = np.ascontiguousarray(rotation, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"rotation must be a square 2-D matrix, got shape {r.shape}")
    return r


def _signs(signs, n: int):
    if signs is None:
        return None
    s = np.ascontiguousarray(signs)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"signs must have shape ({n},), got {s.shape}")
    if s.dtype != np.int8:
        if not np.all((s == 1) | (s == -1)):
            raise ValueError("signs must all be +1 or -1")
        s = s.astype(np.int8)
    return s


def _bias(bias, w: _arrays.Rows, copy: bool):
    if bias is None:
        return None
    return _arrays.as_vector(bias, name="bias", code=w.code, length=w.rows, writable=True, copy=copy)


def _scale_or_default(scale, n: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(n) if n else 0.0
    return float(scale)


def rotate_in_channels(weight, rotation, flags: int = 0, *, dtype=None, copy: bool = False):
    """Rotate the input channels of a weight in place: Quark's ``rotate_in_channels2``.

    ``weight`` is ``out_features x in_features`` (float32 / float16 / bfloat16; uint16 bit
    patterns with ``dtype="bf16"`` or ``"f16"``; rows may be a strided view). ``rotation``
    is R, an ``r x r`` matrix (converted to float64); r must divide in_features, and each
    block of r consecutive columns becomes ``W[:, block] @ R`` (r == in_features: R1;
    r == head_dim on o_proj: R2). Each result is a float64 sum rounded once to the weight
    type. ``flags``: ``FLAG_PARALLEL``, ``FLAG_F32_ACCUMULATE``. ``copy`` as for
    :func:`quarot.hadamard`. Returns ``weight``. ``quarot_rotate_in_channels``.
    """
    flags = _arrays.flags_arg(flags)
    w = _weight(weight, dtype, copy)
    r = _rotation(rotation)
    check(
        LIB.quarot_rotate_in_channels(
            w.ptr, w.code, w.rows, w.n, w.stride, r.ctypes.data, r.shape[0], flags
        )
    )
    w.write_back()
    return weight


def rotate_out_channels(weight, rotation, bias=None, flags: int = 0, *, dtype=None, copy: bool = False):
    """Rotate the output channels of a weight (and its bias) in place: Quark's
    ``rotate_out_channels2``.

    Each block of r consecutive rows of ``weight`` becomes ``R.T @ W[block, :]``, and if
    ``bias`` (a 1-D array of out_features elements of the weight's element type) is given,
    ``bias[block]`` becomes ``R.T @ bias[block]``. r must divide out_features (r ==
    head_dim on v_proj: R2). Everything else as :func:`rotate_in_channels`. Returns
    ``weight``. ``quarot_rotate_out_channels``.
    """
    flags = _arrays.flags_arg(flags)
    w = _weight(weight, dtype, copy)
    r = _rotation(rotation)
    b = _bias(bias, w, copy)
    check(
        LIB.quarot_rotate_out_channels(
            w.ptr,
            w.code,
            w.rows,
            w.n,
            w.stride,
            None if b is None else b.ptr,
            r.ctypes.data,
            r.shape[0],
            flags,
        )
    )
    w.write_back()
    if b is not None:
        b.write_back()
    return weight


def rotate_in_channels_hadamard(
    weight,
    rotation_n: int | None = None,
    *,
    layout: int = LAYOUT_MATMUL_HADU,
    signs=None,
    scale: float | None = None,
    flags: int = 0,
    dtype=None,
    copy: bool = False,
):
    """:func:`rotate_in_channels` with the Hadamard rotation
    ``R = diag(signs) @ M_layout * scale`` of size ``rotation_n`` (default: in_features),
    applied by the fast transform in float64 (R is never formed).

    ``layout``: ``LAYOUT_MATMUL_HADU`` (kron(H_K, H_{2^m})^T, Quark <= 0.10
    ``matmul_hadU``), ``LAYOUT_MATMUL_HADU_T`` (Quark >= 0.11) or ``LAYOUT_KRON_POW2_K``
    (Quark <= 0.10 ``get_rotation_matrix``). ``signs``: ``None`` or ``rotation_n`` values
    of +1 / -1 (e.g. :func:`random_signs`). ``scale``: default ``1/sqrt(rotation_n)`` in
    float64; Quark's ``matmul_hadU`` / ``random_hadamard_matrix`` use
    :func:`quark_hadamard_scale`. ``flags``: ``FLAG_PARALLEL`` only. Returns ``weight``.
    ``quarot_rotate_in_channels_hadamard``.
    """
    flags = _arrays.flags_arg(flags)
    w = _weight(weight, dtype, copy)
    rn = w.n if rotation_n is None else _arrays.size_arg(rotation_n, "rotation_n")
    s = _signs(signs, rn)
    check(
        LIB.quarot_rotate_in_channels_hadamard(
            w.ptr,
            w.code,
            w.rows,
            w.n,
            w.stride,
            rn,
            int(layout),
            None if s is None else s.ctypes.data,
            _scale_or_default(scale, rn),
            flags,
        )
    )
    w.write_back()
    return weight


def rotate_out_channels_hadamard(
    weight,
    rotation_n: int | None = None,
    bias=None,
    *,
    layout: int = LAYOUT_MATMUL_HADU,
    signs=None,
    scale: float | None = None,
    flags: int = 0,
    dtype=None,
    copy: bool = False,
):
    """:func:`rotate_out_channels` with a Hadamard rotation of size ``rotation_n``
    (default: out_features); the arguments are those of
    :func:`rotate_in_channels_hadamard` plus ``bias``. Returns ``weight``.
    ``quarot_rotate_out_channels_hadamard``.
    """
    flags = _arrays.flags_arg(flags)
    w = _weight(weight, dtype, copy)
    rn = w.rows if rotation_n is None else _arrays.size_arg(rotation_n, "rotation_n")
    s = _signs(signs, rn)
    b = _bias(bias, w, copy)
    check(
        LIB.quarot_rotate_out_channels_hadamard(
            w.ptr,
            w.code,
            w.rows,
            w.n,
            w.stride,
            None if b is None else b.ptr,
            rn,
            int(layout),
            None if s is None else s.ctypes.data,
            _scale_or_default(scale, rn),
            flags,
        )
    )
    w.write_back()
    if b is not None:
        b.write_back()
    return weight


def hadamard_matrix(n: int, layout: int = LAYOUT_MATMUL_HADU, signs=None, scale: float | None = None) -> np.ndarray:
    """The Hadamard rotation ``R = diag(signs) @ M_layout * scale`` as a new ``n x n``
    float64 array. ``scale`` defaults to ``1/sqrt(n)`` (float64). Examples: Quark 0.9
    ``random_hadamard_matrix(n)`` after ``torch.manual_seed(s)`` is
    ``hadamard_matrix(n, LAYOUT_MATMUL_HADU, random_signs(n, s), quark_hadamard_scale(n))``;
    Quark 0.9 ``get_rotation_matrix(n, random=False)`` is
    ``hadamard_matrix(n, LAYOUT_KRON_POW2_K)``. ``quarot_hadamard_matrix``."""
    n = _arrays.size_arg(n, "n")
    s = _signs(signs, n)
    out = np.empty((n, n), dtype=np.float64)
    check(
        LIB.quarot_hadamard_matrix(
            out.ctypes.data,
            out.size,
            n,
            int(layout),
            None if s is None else s.ctypes.data,
            _scale_or_default(scale, n),
        )
    )
    return out


def quark_hadamard_scale(n: int) -> float:
    """``1 / float64(float32(sqrt(n)))``: the normalization of Quark's ``matmul_hadU`` and
    ``random_hadamard_matrix``. 0.0 for n == 0. ``quarot_quark_hadamard_scale``."""
    return float(LIB.quarot_quark_hadamard_scale(_arrays.size_arg(n, "n")))


def random_signs(n: int, seed: int) -> np.ndarray:
    """``n`` random signs (int8 +1 / -1) from MT19937(seed): equal to
    ``torch.manual_seed(seed); torch.randint(0, 2, (n,)) * 2 - 1`` (only the low 32 bits of
    seed are used, as torch does). ``quarot_random_signs``."""
    n = _arrays.size_arg(n, "n")
    out = np.empty(n, dtype=np.int8)
    check(LIB.quarot_random_signs(out.ctypes.data if n else None, n, _arrays.size_arg(seed, "seed")))
    return out


def random_orthogonal(n: int, seed: int) -> np.ndarray:
    """A seeded Haar-random orthogonal ``n x n`` float64 matrix (Householder QR of a
    Gaussian matrix), deterministic for a seed; O(n^3). ``quarot_random_orthogonal``."""
    n = _arrays.size_arg(n, "n")
    out = np.empty((n, n), dtype=np.float64)
    check(LIB.quarot_random_orthogonal(out.ctypes.data, out.size, n, _arrays.size_arg(seed, "seed")))
    return out
