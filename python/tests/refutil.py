"""Test helpers: float64 reference of the transform, 16-bit rounding and ulp distances,
and access to the Quark reference vectors."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest

import quarot

try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None

U24 = 2.0**-24
U18 = 2.0**-18

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------------------------------
# float64 reference of y = scale * kron(H_K, H_m) x
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def sylvester(m: int) -> np.ndarray:
    """Sylvester H_m (m a power of two) as float64 (natural order, symmetric)."""
    assert m >= 1 and m & (m - 1) == 0
    h = np.ones((1, 1), dtype=np.float64)
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    h.setflags(write=False)
    return h


@functools.lru_cache(maxsize=None)
def h_k(k: int) -> np.ndarray:
    """H_K from the library (int8 -> float64); [[1]] for K = 1 (powers of two)."""
    h = np.ones((1, 1)) if k == 1 else quarot.k_matrix(k).astype(np.float64)
    h.setflags(write=False)
    return h


def kron_matrix(n: int, transpose_k: bool = False) -> np.ndarray:
    """The explicit n x n matrix kron(H_K, H_m) (small n only)."""
    k = quarot.size_supported(n)
    hk = h_k(k).T if transpose_k else h_k(k)
    return np.kron(hk, sylvester(n // k))


def ref_hadamard(x, scale: float, transpose_k: bool = False) -> np.ndarray:
    """``scale * kron(H_K, H_m) @ row`` for every row of ``x`` (float64).

    Evaluated as ``H_K @ X @ H_m`` with X the row viewed as K x m (row index k*m + j),
    which is kron(H_K, H_m) applied to the row without forming the n x n matrix
    (test_transform checks the two agree)."""
    x = np.asarray(x, dtype=np.float64)
    rows, n = x.reshape(-1, x.shape[-1]).shape
    k = quarot.size_supported(n)
    assert k, n
    m = n // k
    hk = h_k(k).T if transpose_k else h_k(k)
    xm = x.reshape(rows, k, m)
    y = np.matmul(np.matmul(hk, xm), sylvester(m))
    return (scale * y).reshape(rows, n)


def ref_pad_truncate(x, scale: float) -> np.ndarray:
    """``scale * H_P[:n, :n] @ row`` (Quark <= 0.10 hadamard_transform / multiply)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    p = 1
    while p < n:
        p *= 2
    h = sylvester(p)[:n, :n]
    return scale * (x.reshape(-1, n) @ h.T)


# ---------------------------------------------------------------------------------------
# 16-bit formats
# ---------------------------------------------------------------------------------------

_FMT = {  # significand bits (with the implicit one), min normal exponent, max finite
    "f16": (11, -14, 65504.0),
    "bf16": (8, -126, float((2 - 2.0**-7) * 2.0**127)),
}


def round16(v, kind: str) -> np.ndarray:
    """float64 values rounded ONCE (nearest even) to f16 / bf16, as float64."""
    p, emin, vmax = _FMT[kind]
    v = np.asarray(v, dtype=np.float64)
    _, e = np.frexp(v)
    q = np.maximum(e - 1, emin) - (p - 1)
    r = np.ldexp(np.rint(np.ldexp(v, -q)), q)
    return np.where(np.abs(r) > vmax, np.copysign(np.inf, v), r)


def bits16(v, kind: str) -> np.ndarray:
    """Bit patterns (uint16) of float64 values exactly representable in ``kind``."""
    v = np.asarray(v, dtype=np.float64)
    if kind == "f16":
        return v.astype(np.float16).view(np.uint16)
    return (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def widen16(bits, kind: str) -> np.ndarray:
    """16-bit patterns -> float64 (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    if kind == "f16":
        return bits.view(np.float16).astype(np.float64)
    return quarot.bf16_bits_to_float32(bits).astype(np.float64)


def ulp16(a_bits, b_bits) -> np.ndarray:
    """Distance in ulps between 16-bit float patterns (sign-magnitude ordered)."""

    def ordered(b):
        b = np.asarray(b, dtype=np.uint16).astype(np.int32)
        mag = b & 0x7FFF
        return np.where(b & 0x8000, -mag, mag)

    return np.abs(ordered(a_bits) - ordered(b_bits))


def ulp32(a, b) -> np.ndarray:
    """Distance in ulps between float32 arrays."""

    def ordered(x):
        i = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(a) - ordered(b))


def assert_16bit_close(got_bits, ref64, kind: str, what: str = "") -> None:
    """Every output within 1 ulp of the float64 reference rounded once, or (heavy
    cancellation) within 16 * 2^-24 * max|row| (the f32 arithmetic's own error)."""
    ref64 = np.asarray(ref64, dtype=np.float64).reshape(np.shape(got_bits))
    want = bits16(round16(ref64, kind), kind)
    u = ulp16(got_bits, want)
    rows = ref64.reshape(-1, ref64.shape[-1])
    m = np.abs(rows).max(axis=1, keepdims=True).reshape(rows.shape[0], 1)
    d = np.abs(widen16(got_bits, kind).reshape(rows.shape) - rows)
    ok = (u.reshape(rows.shape) <= 1) | (d <= 16 * U24 * m)
    assert ok.all(), f"{what}: {np.count_nonzero(~ok)} outputs off (max {u.max()} ulp)"


def assert_f32_close(got, ref64, bar: float = U18, what: str = "") -> None:
    """|got - ref| <= bar * max|ref row| for every row."""
    ref64 = np.asarray(ref64, dtype=np.float64)
    rows = ref64.reshape(-1, ref64.shape[-1])
    g = np.asarray(got, dtype=np.float64).reshape(rows.shape)
    m = np.abs(rows).max(axis=1, keepdims=True)
    d = np.abs(g - rows)
    worst = float((d / np.where(m > 0, m, 1)).max()) if d.size else 0.0
    assert (d <= bar * m).all(), f"{what}: worst |diff| / max|row| = {worst:.3e} > {bar:.3e}"


# ---------------------------------------------------------------------------------------
# The Quark reference vectors
# ---------------------------------------------------------------------------------------


def reference_dir() -> str:
    return os.environ.get("QUAROT_REFERENCE_DIR") or os.path.join(REPO, "..", "shared", "reference")


@functools.lru_cache(maxsize=1)
def _manifest():
    path = os.path.join(reference_dir(), "manifest.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def manifest():
    m = _manifest()
    if m is None:
        pytest.skip(f"no Quark reference vectors at {reference_dir()} (set QUAROT_REFERENCE_DIR)")
    return m


def cases(func: str, pred=lambda c: True):
    return [c for c in manifest() if c["func"] == func and pred(c)]


def load_errors():
    path = os.path.join(reference_dir(), "errors.json")
    if not os.path.isfile(path):
        pytest.skip(f"no {path}")
    with open(path) as f:
        return json.load(f)


_NP = {"f32": "<f4", "f64": "<f8", "f16": "<f2", "bf16": "<u2", "i8": "i1"}


def read_array(case, name: str) -> np.ndarray:
    """A stored array as numpy (bf16 as uint16 bit patterns), in its shape."""
    a = case["arrays"][name]
    data = np.fromfile(os.path.join(reference_dir(), a["file"]), dtype=_NP[a["dtype"]])
    return data.reshape(a["shape"]).astype(_NP[a["dtype"]][1:] if a["dtype"] != "i8" else "i1")


def as_f64(case, name: str) -> np.ndarray:
    a = read_array(case, name)
    if case["arrays"][name]["dtype"] == "bf16":
        return widen16(a, "bf16")
    return a.astype(np.float64)
