"""The bindings against the REAL AMD Quark outputs in the reference directory
(``$QUAROT_REFERENCE_DIR`` or ``<repo>/../shared/reference``; see its README.md).

Mapping (as tests/quark_reference.rs of the Rust crate):
- 0.9 ``matmul_hadU(x)``: flags 0; 0.13: FLAG_TRANSPOSE_K (``inverse=True``: flags 0);
  scale: the normalized default.
- 0.9 ``hadamard_transform``: FLAG_PAD_TRUNCATE, scale 1; ``hadamard_multiply``:
  FLAG_PAD_TRUNCATE, default scale.
- ``rotate_in_channels2`` / ``rotate_out_channels2``: dense R from the f64 files; the
  ``had`` ones also as a Hadamard rotation (LAYOUT_KRON_POW2_K, scale 1/sqrt(r)).
- ``QKRotation``: QKRotation(FLAG_PAD_TRUNCATE) with a Python RoPE callback that applies the
  stored cos / sin (HF ``apply_rotary_pos_emb``) to the caller's q / k in place.
- ``R4Wrapper``: the op copies the activations out and computes the Linear with the
  weight rotated by rotate_in_channels_hadamard.
"""

import math

import numpy as np
import pytest

import quarot
from refutil import (
    U18,
    U24,
    as_f64,
    assert_f32_close,
    cases,
    load_errors,
    ml_dtypes,
    read_array,
    ref_hadamard,
    ref_pad_truncate,
    round16,
    bits16,
    ulp16,
    ulp32,
    widen16,
)


def case_ids(cs):
    return [c["id"] for c in cs]


def matmul_flags(c):
    if c["quark_version"] == "0.9" or c["params"].get("inverse"):
        return 0
    return quarot.FLAG_TRANSPOSE_K


def _matmul(dtype):
    return lambda: cases("matmul_hadU", lambda c: c["params"]["dtype"] == dtype)


def _lazy(fn):
    """Cases for parametrize; none (an empty, skipped parametrization) without the
    reference directory."""
    try:
        return fn()
    except pytest.skip.Exception:
        return []


MATMUL_F32 = _lazy(_matmul("f32"))
MATMUL_F64 = _lazy(_matmul("f64"))
MATMUL_BF16 = _lazy(_matmul("bf16"))


def test_reference_inventory():
    assert len(cases("matmul_hadU")) == 78
    assert len(MATMUL_F32) == 36 and len(MATMUL_F64) == 32 and len(MATMUL_BF16) == 10
    assert len(cases("QKRotation")) == 4 and len(cases("R4Wrapper")) == 4


@pytest.mark.parametrize("c", MATMUL_F32, ids=case_ids(MATMUL_F32))
def test_matmul_hadu_f32(c):
    x, y = read_array(c, "x"), read_array(c, "y")
    n = c["params"]["n"]
    assert quarot.size_supported(n) == c["params"]["K"]
    got = x.copy()  # 2-D, or [2, 2, 48]: the leading axes are rows
    quarot.hadamard(got, flags=matmul_flags(c))
    assert_f32_close(got, y.astype(np.float64), 4 * U24, c["id"])


@pytest.mark.parametrize("c", MATMUL_F64, ids=case_ids(MATMUL_F64))
def test_matmul_hadu_f64_within_f32_accuracy(c):
    x, y = read_array(c, "x"), read_array(c, "y")
    got = x.astype(np.float32)
    quarot.hadamard(got, flags=matmul_flags(c))
    assert_f32_close(got, y, U18, c["id"])


@pytest.mark.parametrize("form", ["uint16", "ml_dtypes"])
@pytest.mark.parametrize("c", MATMUL_BF16, ids=case_ids(MATMUL_BF16))
def test_matmul_hadu_bf16(c, form):
    if form == "ml_dtypes" and ml_dtypes is None:
        pytest.skip("ml_dtypes not installed")
    xb, yb = read_array(c, "x"), read_array(c, "y")
    n = c["params"]["n"]
    flags = matmul_flags(c)
    got = xb.copy() if form == "uint16" else xb.view(ml_dtypes.bfloat16).copy()
    quarot.hadamard(got, flags=flags, dtype="bf16" if form == "uint16" else None)
    g = got.view(np.uint16)
    # exact bar: within 1 ulp of the f64 definition rounded once
    ref = ref_hadamard(widen16(xb, "bf16"), quarot.hadamard_scale(n), flags & quarot.FLAG_TRANSPOSE_K != 0)
    u = ulp16(g, bits16(round16(ref, "bf16"), "bf16"))
    assert u.max() <= 1, f"{c['id']}: {u.max()} ulp from the f64 definition"
    # Quark computes in bf16 arithmetic: README tolerance 1e-2 * max|y| (whole case)
    yq = widen16(yb, "bf16")
    assert np.abs(widen16(g, "bf16") - yq).max() <= 1e-2 * np.abs(yq).max()


PAD = _lazy(lambda: cases("hadamard_transform") + cases("hadamard_multiply"))


@pytest.mark.parametrize("c", PAD, ids=case_ids(PAD))
def test_pad_truncate_transform_and_multiply(c):
    x, y = read_array(c, "x"), read_array(c, "y")
    n = c["params"]["n"]
    scale = 1.0 if c["func"] == "hadamard_transform" else None
    if c["params"]["dtype"] == "f32":
        got = x.copy()
        quarot.hadamard(got, scale=scale, flags=quarot.FLAG_PAD_TRUNCATE)
        assert_f32_close(got, y.astype(np.float64), 16 * U24, c["id"])
        assert_f32_close(got, ref_pad_truncate(x.reshape(-1, n), 1.0 if scale else quarot.hadamard_scale(n)), 16 * U24)
    else:
        got = x.copy()
        quarot.hadamard(got, scale=scale, flags=quarot.FLAG_PAD_TRUNCATE, dtype="bf16")
        assert ulp16(got, y).max() <= 1, c["id"]


def test_errors_json_widths():
    checked = 0
    for e in load_errors():
        if e["func"] != "matmul_hadU" or "dtype" in e["params"]:
            continue
        n = e["params"]["n"]
        if quarot.size_supported(n):  # 360: a Paley width libquarot can rotate, Quark cannot
            continue
        x = np.ones((1, n), np.float32)
        with pytest.raises(quarot.QuarotError) as err:
            quarot.hadamard(x, flags=quarot.FLAG_TRANSPOSE_K if e["quark_version"] == "0.13" else 0)
        assert err.value.status == quarot.ERR_UNSUPPORTED_SIZE
        assert "nearest supported" in err.value.message
        assert np.all(x == 1)
        checked += 1
    assert checked == 2  # n = 3 for 0.9 and 0.13


# ---------------------------------------------------------------------------------------
# rotate_in_channels2 / rotate_out_channels2
# ---------------------------------------------------------------------------------------

ROT = _lazy(
    lambda: [
        c
        for c in cases("rotate_in_channels2") + cases("rotate_out_channels2")
        if c["params"]["weight_dtype"] in ("f32", "f16", "bf16")
    ]
)


def _ulp(got, want, dtype):
    if dtype == "f32":
        return ulp32(got, want)
    return ulp16(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("c", ROT, ids=case_ids(ROT))
def test_weight_rotation_cases(c):
    p = c["params"]
    dtype = p["weight_dtype"]
    spec = None if dtype == "f32" else dtype
    R = read_array(c, "rotation")
    r = R.shape[0]
    out_ch = c["func"] == "rotate_out_channels2"
    paths = ["dense"] + (["hadamard"] if p["rotation"] == "had" else [])
    if p["rotation"] == "had":  # Quark's get_rotation_matrix(r, random=False)
        np.testing.assert_allclose(quarot.hadamard_matrix(r, quarot.LAYOUT_KRON_POW2_K), R, rtol=0, atol=1e-15)
    for path in paths:
        w = read_array(c, "weight").copy()
        b = read_array(c, "bias").copy() if p["bias"] else None
        if path == "dense":
            if out_ch:
                quarot.rotate_out_channels(w, R, bias=b, dtype=spec)
            else:
                quarot.rotate_in_channels(w, R, dtype=spec)
        else:
            kw = dict(layout=quarot.LAYOUT_KRON_POW2_K, scale=1 / math.sqrt(r), dtype=spec)
            if out_ch:
                quarot.rotate_out_channels_hadamard(w, r, bias=b, **kw)
            else:
                quarot.rotate_in_channels_hadamard(w, r, **kw)
        want = read_array(c, "weight_out")
        u = _ulp(w, want, dtype)
        assert u.max() <= 1, f"{c['id']} ({path}): {u.max()} ulp"
        assert np.count_nonzero(u) <= 0.001 * u.size, f"{c['id']} ({path}): {np.count_nonzero(u)} differ"
        if b is not None:
            assert _ulp(b, read_array(c, "bias_out"), dtype).max() <= 1


# ---------------------------------------------------------------------------------------
# QKRotation and R4Wrapper
# ---------------------------------------------------------------------------------------

QK = _lazy(lambda: cases("QKRotation"))


def worst_rel(ours, quark, width):
    """max over rows of max|ours - quark| / max|quark row|."""
    o = np.asarray(ours, np.float64).reshape(-1, width)
    q = np.asarray(quark, np.float64).reshape(-1, width)
    m = np.abs(q).max(axis=1)
    d = np.abs(o - q).max(axis=1)
    return float((d[m > 0] / m[m > 0]).max())


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


@pytest.mark.parametrize("c", QK, ids=case_ids(QK))
def test_qk_rotation_case(c):
    p = c["params"]
    d, dtype = p["head_dim"], p["dtype"]
    bf16 = dtype == "bf16"
    q, k = read_array(c, "q").copy(), read_array(c, "k").copy()  # [1, heads, seq, d]
    cos, sin = as_f64(c, "cos").astype(np.float32), as_f64(c, "sin").astype(np.float32)  # [1, seq, d]
    calls, rope_out = [], []

    def to_f32(v):
        return quarot.bf16_bits_to_float32(v) if bf16 else v

    def from_f32(v):
        return quarot.float32_to_bf16_bits(v) if bf16 else v.astype(np.float32)

    def rope(qv, kv, shape, tables):
        # HF apply_rotary_pos_emb: x * cos + rotate_half(x) * sin (cos/sin unsqueezed at
        # dim 1), every op rounded to the tensor's dtype as torch does.
        c_, s_ = tables
        c_, s_ = c_[:, None], s_[:, None]
        calls.append(shape)
        for v in (qv, kv):
            x = to_f32(v)
            a = to_f32(from_f32(x * c_))
            b = to_f32(from_f32(rotate_half(x) * s_))
            v[...] = from_f32(a + b)
        rope_out.append((qv.copy(), kv.copy()))

    h = quarot.QKRotation(d, rope, dtype=dtype, flags=quarot.FLAG_PAD_TRUNCATE)
    if bf16:
        cos, sin = to_f32(from_f32(cos)), to_f32(from_f32(sin))  # cast to the q dtype
    h.forward(q, k, (cos, sin), layout="htd")
    assert len(calls) == 1 and calls[0].tokens == p["seq"] and calls[0].n_kv_heads == p["num_kv_heads"]
    # the callback worked on the caller's buffers, in their [1, heads, seq, d] layout, and
    # reproduced Quark's RoPE output bit for bit
    assert np.array_equal(rope_out[0][0], read_array(c, "q_rope"))
    assert np.array_equal(rope_out[0][1], read_array(c, "k_rope"))
    bar = 1e-2 if bf16 else 16 * U24
    qo, ko = as_f64(c, "q_out"), as_f64(c, "k_out")
    qg = widen16(q, "bf16") if bf16 else q
    kg = widen16(k, "bf16") if bf16 else k
    wq, wk = worst_rel(qg, qo, d), worst_rel(kg, ko, d)
    assert wq <= bar and wk <= bar, f"{c['id']}: q {wq:.2e}, k {wk:.2e} > {bar:.1e}"


R4 = _lazy(lambda: cases("R4Wrapper"))


@pytest.mark.parametrize("c", R4, ids=case_ids(R4))
def test_r4_wrapper_case(c):
    p = c["params"]
    n, m, rows, dtype = p["in_features"], p["out_features"], p["rows"], p["dtype"]
    bf16 = dtype == "bf16"
    bar_w, bar_rot, bar_y = (1e-2, 1e-2, 3e-2) if bf16 else (16 * U24, 4 * U24, 1e-5)
    # weight_rot by libquarot: W @ R, R the matmul_hadU matrix with Quark's scale
    w = read_array(c, "weight").copy()
    quarot.rotate_in_channels_hadamard(
        w, layout=quarot.LAYOUT_MATMUL_HADU, scale=quarot.quark_hadamard_scale(n), dtype=dtype
    )
    w64 = widen16(w, "bf16") if bf16 else w.astype(np.float64)
    assert worst_rel(w64, as_f64(c, "weight_rot"), n) <= bar_w
    bias = as_f64(c, "bias") if p["bias"] else np.zeros(m)
    seen = []

    def op(a):
        data = a.data.copy()  # the views are only valid during the call
        seen.append(data)
        x64 = widen16(data.view(np.uint16), "bf16") if bf16 else data.astype(np.float64)
        a.out[...] = x64 @ w64.T + bias

    x = read_array(c, "x")
    x_before = x.copy()
    y = np.zeros((rows, m))
    with quarot.R4Wrapper(n, op, dtype=dtype) as wrapper:
        assert wrapper.forward(x, y) is y
    assert np.array_equal(x, x_before)
    x_seen = widen16(seen[0], "bf16") if bf16 else seen[0]
    assert worst_rel(x_seen, as_f64(c, "x_rot"), n) <= bar_rot
    y32 = y.astype(np.float32).astype(np.float64)
    assert worst_rel(y32, as_f64(c, "y"), m) <= bar_y
