"""Weight rotation (dense and Hadamard) and the matrix generators vs numpy float64."""

import math

import numpy as np
import pytest

import quarot
from refutil import kron_matrix, ml_dtypes, round16, sylvester, ulp16, bits16, widen16, ulp32


def weights(out_f, in_f, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (out_f, in_f))
    w[:, rng.choice(in_f, 2, replace=False)] *= 30
    return w.astype(dtype)


def blockdiag(r, times):
    return np.kron(np.eye(times), r)


def assert_rounded_once_f32(got, exact64, what=""):
    """got == exact rounded to float32 (within 1 ulp)."""
    u = ulp32(got, exact64.astype(np.float32))
    assert u.max() <= 1, f"{what}: {u.max()} ulp"


@pytest.mark.parametrize("r", [64, 16])
def test_rotate_in_channels_dense_f32(r):
    w = weights(24, 64)
    R = quarot.random_orthogonal(r, seed=3)
    want = w.astype(np.float64) @ blockdiag(R, 64 // r)
    assert quarot.rotate_in_channels(w, R) is w
    assert_rounded_once_f32(w, want, f"in r={r}")


@pytest.mark.parametrize("r", [64, 16])
def test_rotate_out_channels_dense_f32_with_bias(r):
    w = weights(64, 24, seed=1)
    b = np.random.default_rng(2).normal(size=64).astype(np.float32)
    R = quarot.random_orthogonal(r, seed=4)
    bd = blockdiag(R, 64 // r)
    want_w = bd.T @ w.astype(np.float64)
    want_b = bd.T @ b.astype(np.float64)
    quarot.rotate_out_channels(w, R, bias=b)
    assert_rounded_once_f32(w, want_w, "out weight")
    assert_rounded_once_f32(b, want_b, "out bias")
    w2 = weights(64, 24, seed=1)
    quarot.rotate_out_channels(w2, R)  # no bias
    assert np.array_equal(w2, w)


@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_dense_16bit(kind):
    w64 = weights(16, 64, seed=5).astype(np.float64)
    bits = bits16(round16(w64, kind), kind)
    R = quarot.random_orthogonal(64, seed=6)
    want = widen16(bits, kind) @ R
    got = bits.copy()
    quarot.rotate_in_channels(got, R, dtype=kind)
    assert ulp16(got, bits16(round16(want, kind), kind)).max() <= 1
    if kind == "bf16" and ml_dtypes is not None:
        g2 = bits.view(ml_dtypes.bfloat16).copy()
        quarot.rotate_in_channels(g2, R)
        assert np.array_equal(g2.view(np.uint16), got)
    if kind == "f16":
        g3 = bits.view(np.float16).copy()
        quarot.rotate_in_channels(g3, R)
        assert np.array_equal(g3.view(np.uint16), got)


def test_dense_flags_parallel_and_f32_accumulate():
    w = weights(256, 128, seed=7)
    R = quarot.random_orthogonal(128, seed=8)
    a, b, c = w.copy(), w.copy(), w.copy()
    quarot.rotate_in_channels(a, R)
    quarot.rotate_in_channels(b, R, flags=quarot.FLAG_PARALLEL)
    assert np.array_equal(a, b)
    quarot.rotate_in_channels(c, R, flags=quarot.FLAG_F32_ACCUMULATE)
    np.testing.assert_allclose(c, a, rtol=0, atol=1e-5 * np.abs(a).max())


def test_strided_weight_rows():
    w = weights(8, 64, seed=9)
    big = np.full((8, 80), 5.5, np.float32)
    big[:, :64] = w
    R = quarot.random_orthogonal(64, seed=1)
    quarot.rotate_in_channels(big[:, :64], R)
    assert np.all(big[:, 64:] == 5.5)
    assert_rounded_once_f32(big[:, :64], w.astype(np.float64) @ R)
    # a transposed weight needs copy=True
    wt = weights(64, 8, seed=9).T
    with pytest.raises(ValueError, match="copy=True"):
        quarot.rotate_in_channels(wt, R)
    want = wt.astype(np.float64) @ R
    quarot.rotate_in_channels(wt, R, copy=True)
    assert_rounded_once_f32(wt, want)


def test_hadamard_rotation_in_out_matches_dense_matrix():
    n = 80  # K = 40
    for layout in (quarot.LAYOUT_MATMUL_HADU, quarot.LAYOUT_MATMUL_HADU_T, quarot.LAYOUT_KRON_POW2_K):
        signs = quarot.random_signs(n, seed=11)
        scale = quarot.quark_hadamard_scale(n)
        R = quarot.hadamard_matrix(n, layout, signs, scale)
        w = weights(12, n, seed=12)
        want = w.astype(np.float64) @ R
        quarot.rotate_in_channels_hadamard(w, layout=layout, signs=signs, scale=scale)
        assert_rounded_once_f32(w, want, f"in layout {layout}")
        w = weights(n, 12, seed=13)
        b = np.linspace(-1, 1, n).astype(np.float32)
        want_w, want_b = R.T @ w.astype(np.float64), R.T @ b.astype(np.float64)
        quarot.rotate_out_channels_hadamard(w, bias=b, layout=layout, signs=signs, scale=scale)
        assert_rounded_once_f32(w, want_w, f"out layout {layout}")
        assert_rounded_once_f32(b, want_b, f"bias layout {layout}")


def test_hadamard_rotation_blocks_default_scale():
    w = weights(4, 64, seed=14)
    R = quarot.hadamard_matrix(16, quarot.LAYOUT_KRON_POW2_K)  # default scale 1/sqrt(16)
    np.testing.assert_allclose(R, sylvester(16) / 4, rtol=0, atol=0)
    want = w.astype(np.float64) @ blockdiag(R, 4)
    quarot.rotate_in_channels_hadamard(w, 16, layout=quarot.LAYOUT_KRON_POW2_K)
    assert_rounded_once_f32(w, want)


def test_hadamard_matrix_layouts():
    n = 48
    s = 1 / math.sqrt(n)
    m0 = quarot.hadamard_matrix(n, quarot.LAYOUT_MATMUL_HADU)
    np.testing.assert_allclose(m0, kron_matrix(n).T * s, atol=1e-15)
    m1 = quarot.hadamard_matrix(n, quarot.LAYOUT_MATMUL_HADU_T)
    np.testing.assert_allclose(m1, kron_matrix(n) * s, atol=1e-15)
    hk = quarot.k_matrix(12).astype(np.float64)
    m2 = quarot.hadamard_matrix(n, quarot.LAYOUT_KRON_POW2_K)
    np.testing.assert_allclose(m2, np.kron(sylvester(4), hk) * s, atol=1e-15)
    np.testing.assert_allclose(m2 @ m2.T, np.eye(n), atol=1e-13)
    signs = quarot.random_signs(n, 0)
    ms = quarot.hadamard_matrix(n, quarot.LAYOUT_MATMUL_HADU, signs, 0.25)
    np.testing.assert_allclose(ms, np.diag(signs.astype(float)) @ kron_matrix(n).T * 0.25, atol=1e-15)
    assert quarot.quark_hadamard_scale(48) == 1 / float(np.sqrt(np.float32(48)))
    assert quarot.quark_hadamard_scale(0) == 0.0


def test_random_generators():
    s = quarot.random_signs(1000, 42)
    assert s.dtype == np.int8 and set(np.unique(s)) == {-1, 1}
    assert np.array_equal(s, quarot.random_signs(1000, 42))
    assert not np.array_equal(s, quarot.random_signs(1000, 43))
    assert quarot.random_signs(0, 1).shape == (0,)
    q = quarot.random_orthogonal(50, 7)
    assert q.shape == (50, 50) and q.dtype == np.float64
    np.testing.assert_allclose(q @ q.T, np.eye(50), atol=1e-13)
    assert np.array_equal(q, quarot.random_orthogonal(50, 7))


def test_rotation_errors():
    w = weights(4, 60)
    before = w.copy()
    with pytest.raises(quarot.QuarotError) as e:
        quarot.rotate_in_channels(w, np.eye(16))  # 16 does not divide 60
    assert e.value.status == quarot.ERR_INVALID_ARGUMENT and e.value.message
    assert np.array_equal(w, before)
    with pytest.raises(ValueError, match="square"):
        quarot.rotate_in_channels(w, np.ones((60, 59)))
    with pytest.raises(ValueError, match="signs"):
        quarot.rotate_in_channels_hadamard(weights(4, 64), signs=np.ones(10, np.int8))
    with pytest.raises(ValueError, match=r"\+1 or -1"):
        quarot.hadamard_matrix(4, signs=[1, 0, 1, 1])
    with pytest.raises(quarot.QuarotError) as e:
        quarot.rotate_in_channels_hadamard(weights(4, 13696))
    assert e.value.status == quarot.ERR_UNSUPPORTED_SIZE
    with pytest.raises(quarot.QuarotError) as e:
        quarot.rotate_in_channels_hadamard(weights(4, 64), flags=quarot.FLAG_F32_ACCUMULATE)
    assert e.value.status == quarot.ERR_INVALID_FLAGS
    with pytest.raises(ValueError, match="shape"):
        quarot.rotate_out_channels(weights(8, 4), np.eye(8), bias=np.zeros(4, np.float32))
    with pytest.raises(TypeError):
        quarot.rotate_out_channels(weights(8, 4), np.eye(8), bias=np.zeros(8, np.float16))
    ro = weights(4, 16)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        quarot.rotate_in_channels(ro, np.eye(16))
    with pytest.raises(ValueError, match="2-D"):
        quarot.rotate_in_channels(np.zeros(16, np.float32), np.eye(16))


def test_scratch_helpers():
    w = weights(512, 1024, seed=1)
    quarot.rotate_in_channels(w, quarot.random_orthogonal(1024, 1))
    kept = quarot.scratch_retained()
    freed = quarot.release_scratch()
    assert freed == kept
    assert quarot.scratch_retained() == 0
