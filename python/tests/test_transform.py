"""quarot.hadamard & co. against a plain numpy float64 reference
y = scale * kron(H_K, H_m) @ x, layouts, strides, dtypes and errors."""

import numpy as np
import pytest

import quarot
from refutil import (
    U18,
    assert_16bit_close,
    assert_f32_close,
    kron_matrix,
    ml_dtypes,
    ref_hadamard,
    ref_pad_truncate,
    widen16,
)

WIDTHS = [1, 2, 16, 48, 80, 96, 128, 160, 896, 4096, 4864, 11008]
needs_ml = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes not installed")


def rng_rows(rows, n, seed=0):
    rng = np.random.default_rng(seed + n)
    x = rng.standard_normal((rows, n))
    if n >= 16:  # a few outlier channels, as in activations
        x[:, rng.choice(n, size=max(1, n // 512), replace=False)] *= 50
    return x


def to16(x64, kind):
    """float64 -> (uint16 bits, exactly widened float64) for f16 / bf16 input rows."""
    if kind == "f16":
        bits = x64.astype(np.float16).view(np.uint16)
    else:
        bits = quarot.float32_to_bf16_bits(x64.astype(np.float32))
    return bits, widen16(bits, kind)


def test_factored_reference_equals_explicit_kron():
    for n in (12, 48, 80, 96, 160, 304):
        x = rng_rows(3, n)
        for t in (False, True):
            explicit = 0.5 * (kron_matrix(n, t) @ x.T).T
            np.testing.assert_allclose(ref_hadamard(x, 0.5, t), explicit, rtol=0, atol=1e-12)


def test_supported_k():
    assert quarot.size_supported(4096) == 1
    assert quarot.size_supported(11008) == 172
    assert quarot.size_supported(4864) == 76  # Paley
    assert quarot.size_supported(11000) == 0
    assert quarot.block_size(13696) == 128
    assert quarot.block_size(4096) == 4096
    assert quarot.nearest_sizes(11000) == (10944, 11008)
    assert quarot.hadamard_scale(4096) == np.float32(1 / 64)
    assert quarot.scale is quarot.hadamard_scale
    assert quarot.hadamard_scale(0) == 0.0
    h = quarot.k_matrix(172)
    assert h.shape == (172, 172) and h.dtype == np.int8
    assert np.array_equal(h.astype(np.int64) @ h.T.astype(np.int64), 172 * np.eye(172, dtype=np.int64))
    with pytest.raises(quarot.QuarotError) as e:
        quarot.k_matrix(13)
    assert e.value.status == quarot.ERR_INVALID_ARGUMENT


@pytest.mark.parametrize("n", WIDTHS)
@pytest.mark.parametrize("transpose", [False, True])
def test_f32_matches_f64_reference(n, transpose):
    x64 = rng_rows(3, n)
    x = x64.astype(np.float32)
    flags = quarot.FLAG_TRANSPOSE_K if transpose else 0
    ref = ref_hadamard(x.astype(np.float64), quarot.hadamard_scale(n), transpose)
    out = quarot.hadamard(x, flags=flags)
    assert out is x
    assert_f32_close(x, ref, U18, f"n={n}")


@pytest.mark.parametrize("n", [128, 4096, 4864, 11008])
@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_16bit_uint16_form(n, kind):
    bits, xw = to16(rng_rows(3, n) * 0.1, kind)
    y = bits.copy()
    assert quarot.hadamard(y, dtype=kind) is y
    assert_16bit_close(y, ref_hadamard(xw, quarot.hadamard_scale(n)), kind, f"{kind} n={n}")
    # the typed entry points give the same bits
    z = bits.copy()
    (quarot.hadamard_f16 if kind == "f16" else quarot.hadamard_bf16)(z)
    assert np.array_equal(z, y)


@pytest.mark.parametrize("n", [128, 4096, 11008])
def test_float16_array(n):
    bits, xw = to16(rng_rows(2, n) * 0.1, "f16")
    x = bits.view(np.float16).copy()
    quarot.hadamard(x)
    assert_16bit_close(x.view(np.uint16), ref_hadamard(xw, quarot.hadamard_scale(n)), "f16", f"n={n}")


@needs_ml
@pytest.mark.parametrize("n", [128, 4096, 4864, 11008])
def test_bf16_ml_dtypes_form(n):
    bits, xw = to16(rng_rows(3, n), "bf16")
    x = bits.view(ml_dtypes.bfloat16).copy()
    quarot.hadamard(x, flags=quarot.FLAG_TRANSPOSE_K)
    assert x.dtype == ml_dtypes.bfloat16
    y = bits.copy()
    quarot.hadamard(y, dtype="bf16", flags=quarot.FLAG_TRANSPOSE_K)
    assert np.array_equal(x.view(np.uint16), y)
    assert_16bit_close(y, ref_hadamard(xw, quarot.hadamard_scale(n), True), "bf16", f"n={n}")


def test_one_dimensional_is_one_row():
    x = rng_rows(1, 4096)[0].astype(np.float32)
    ref = ref_hadamard(x[None].astype(np.float64), quarot.hadamard_scale(4096))
    quarot.hadamard(x)
    assert x.shape == (4096,)
    assert_f32_close(x[None], ref)


def test_nd_rows():
    x = rng_rows(6, 48).astype(np.float32).reshape(2, 3, 48)
    ref = ref_hadamard(x.reshape(6, 48), quarot.hadamard_scale(48))
    quarot.hadamard(x)
    assert_f32_close(x.reshape(6, 48), ref)


def test_scale_and_inverse():
    n = 11008
    x = rng_rows(2, n).astype(np.float32)
    y = x.copy()
    quarot.hadamard(y, scale=1.0)
    assert_f32_close(y, ref_hadamard(x, 1.0), U18)
    z = x.copy()
    quarot.hadamard(z)
    quarot.hadamard(z, flags=quarot.FLAG_TRANSPOSE_K)  # the inverse with the normalized scale
    assert_f32_close(z, x.astype(np.float64), 8 * U18)


def test_strided_row_view_no_copy_gaps_untouched():
    n, rows, stride = 4864, 3, 5000
    big = np.full((rows, stride), 7.25, dtype=np.float32)
    x64 = rng_rows(rows, n)
    big[:, :n] = x64
    view = big[:, :n]
    assert not view.flags.c_contiguous
    r = quarot._arrays.as_rows(view, name="x", writable=True, copy=False)
    assert not r.copied and r.stride == stride and r.ptr == big.ctypes.data  # no copy
    out = quarot.hadamard(view)
    assert out is view
    assert np.all(big[:, n:] == 7.25), "elements between rows were written"
    assert_f32_close(big[:, :n], ref_hadamard(x64.astype(np.float32), quarot.hadamard_scale(n)))
    # every other row of a batch: row stride 2 * n
    b2 = rng_rows(4, 128).astype(np.float32)
    b2c = b2.copy()
    quarot.hadamard(b2[::2])
    assert np.array_equal(b2[1::2], b2c[1::2])
    assert_f32_close(b2[::2], ref_hadamard(b2c[::2], quarot.hadamard_scale(128)))


def test_strided_16bit_views():
    n = 128
    big = np.full((3, 200), 0x7E5A, dtype=np.uint16)
    bits, xw = to16(rng_rows(3, n), "bf16")
    big[:, :n] = bits
    quarot.hadamard(big[:, :n], dtype="bf16")
    assert np.all(big[:, n:] == 0x7E5A)
    assert_16bit_close(big[:, :n], ref_hadamard(xw, quarot.hadamard_scale(n)), "bf16")


def test_non_contiguous_last_axis_needs_copy():
    base = rng_rows(4, 256).astype(np.float32)
    x = base.copy()
    view = x[:, ::2]
    with pytest.raises(ValueError, match="copy=True"):
        quarot.hadamard(view)
    assert np.array_equal(x, base)
    quarot.hadamard(view, copy=True)
    ref = ref_hadamard(base[:, ::2], quarot.hadamard_scale(128))
    assert_f32_close(x[:, ::2], ref)
    assert np.array_equal(x[:, 1::2], base[:, 1::2]), "copy=True must only write the view"
    # a transposed array
    t = rng_rows(64, 8).astype(np.float32)  # (64, 8) -> .T is (8, 64) with column-major rows
    tt = t.T
    with pytest.raises(ValueError, match="not contiguous"):
        quarot.hadamard(tt)
    ref = ref_hadamard(t.T, quarot.hadamard_scale(64))
    quarot.hadamard(tt, copy=True)
    assert_f32_close(t.T, ref)


def test_negative_stride_and_misaligned_need_copy():
    x = rng_rows(4, 64).astype(np.float32)
    with pytest.raises(ValueError):
        quarot.hadamard(x[::-1])
    base = x.copy()
    quarot.hadamard(x[::-1], copy=True)
    assert_f32_close(x, ref_hadamard(base, quarot.hadamard_scale(64)))
    raw = np.zeros(64 * 4 + 1, dtype=np.uint8)
    mis = raw[1:].view(np.float32)
    assert not mis.flags.aligned
    with pytest.raises(ValueError, match="aligned"):
        quarot.hadamard(mis)


def test_readonly_rejected():
    x = np.ones((2, 64), np.float32)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        quarot.hadamard(x)
    with pytest.raises(ValueError, match="read-only"):
        quarot.hadamard(x, copy=True)
    # as a source it is fine
    y = np.empty((2, 64), np.float32)
    quarot.hadamard(x, out=y)
    assert_f32_close(y, ref_hadamard(np.ones((2, 64)), quarot.hadamard_scale(64)))


def test_dtype_errors():
    with pytest.raises(TypeError, match="dtype='bf16'"):
        quarot.hadamard(np.zeros((1, 64), np.uint16))
    with pytest.raises(TypeError, match="float64"):
        quarot.hadamard(np.zeros((1, 64)))
    with pytest.raises(TypeError):
        quarot.hadamard(np.zeros((1, 64), np.float32), dtype="bf16")
    with pytest.raises(ValueError, match="unknown element type"):
        quarot.hadamard(np.zeros((1, 64), np.uint16), dtype="int4")
    with pytest.raises(TypeError):
        quarot.hadamard([1.0, 2.0])
    with pytest.raises(TypeError):
        quarot.hadamard_f32(np.zeros(64, np.float16))


@pytest.mark.parametrize("src_kind", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("dst_kind", ["f32", "f16", "bf16"])
def test_out_converts_types(src_kind, dst_kind):
    n = 11008
    x64 = rng_rows(2, n) * 0.1
    if src_kind == "f32":
        src = x64.astype(np.float32)
        xw = src.astype(np.float64)
    else:
        src, xw = to16(x64, src_kind)
    src_before = src.copy()
    dst = np.empty((2, n), np.float32 if dst_kind == "f32" else np.uint16)
    r = quarot.hadamard(src, out=dst, dtype=None if src_kind == "f32" else src_kind, out_dtype=None if dst_kind == "f32" else dst_kind)
    assert r is dst
    assert np.array_equal(src, src_before), "the source must not change"
    ref = ref_hadamard(xw, quarot.hadamard_scale(n))
    if dst_kind == "f32":
        assert_f32_close(dst, ref)
    else:
        assert_16bit_close(dst, ref, dst_kind)


def test_out_strided_and_same_array():
    x = rng_rows(3, 128).astype(np.float32)
    big = np.full((3, 256), -1.0, np.float32)
    quarot.hadamard(x, out=big[:, 64:192])
    assert np.all(big[:, :64] == -1) and np.all(big[:, 192:] == -1)
    ref = ref_hadamard(x, quarot.hadamard_scale(128))
    assert_f32_close(big[:, 64:192], ref)
    quarot.hadamard(x, out=x)  # the very same rows: in place
    assert_f32_close(x, ref)
    with pytest.raises(ValueError, match="shape"):
        quarot.hadamard(x, out=np.empty((3, 64), np.float32))
    # overlapping but different rows: a library error, nothing written
    y = rng_rows(2, 128).astype(np.float32)
    buf = np.zeros(3 * 128, np.float32)
    buf[:256] = y.ravel()
    before = buf.copy()
    with pytest.raises(quarot.QuarotError) as e:
        quarot.hadamard(buf[:256].reshape(2, 128), out=buf[64:320].reshape(2, 128))
    assert e.value.status == quarot.ERR_OVERLAP
    assert np.array_equal(buf, before)


def test_unsupported_width_error_and_data_unchanged():
    for dt, kw in ((np.float32, {}), (np.float16, {}), (np.uint16, {"dtype": "bf16"})):
        x = np.ones((2, 11000), dt)
        before = x.copy()
        with pytest.raises(quarot.QuarotError) as e:
            quarot.hadamard(x, **kw)
        err = e.value
        assert isinstance(err, Exception)
        assert err.status == quarot.ERR_UNSUPPORTED_SIZE
        assert err.name == quarot.status_string(quarot.ERR_UNSUPPORTED_SIZE) == "unsupported transform width"
        assert err.code_name == "ERR_UNSUPPORTED_SIZE"
        assert "10944" in err.message and "11008" in err.message, err.message
        assert "10944" in str(err) and err.name in str(err)
        assert np.array_equal(x, before)
    assert quarot.last_error() == ""  or "11000" in quarot.last_error()


def test_other_library_errors():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(quarot.QuarotError) as e:
        quarot.hadamard(x, scale=float("nan"))
    assert e.value.status == quarot.ERR_INVALID_ARGUMENT
    with pytest.raises(quarot.QuarotError) as e:
        quarot.hadamard(x, flags=1 << 20)
    assert e.value.status == quarot.ERR_INVALID_FLAGS
    assert np.all(x == 1)
    with pytest.raises(ValueError):
        quarot.hadamard(x, flags=-1)


def test_block_diagonal_default_scale():
    n = 13696  # 107 blocks of 128
    x = rng_rows(2, n).astype(np.float32)
    with pytest.raises(quarot.QuarotError):
        quarot.hadamard(x.copy())
    y = x.copy()
    quarot.hadamard(y, flags=quarot.FLAG_BLOCK_DIAGONAL)
    b = quarot.block_size(n)
    ref = ref_hadamard(x.reshape(-1, b), quarot.hadamard_scale(b)).reshape(2, n)
    assert_f32_close(y.reshape(-1, b), ref.reshape(-1, b))


def test_pad_truncate():
    n = 80
    x = rng_rows(3, n).astype(np.float32)
    y = x.copy()
    quarot.hadamard(y, scale=1.0, flags=quarot.FLAG_PAD_TRUNCATE)
    assert_f32_close(y, ref_pad_truncate(x, 1.0), 16 * 2.0**-24)
    z = x.copy()
    quarot.hadamard(z, flags=quarot.FLAG_PAD_TRUNCATE)  # default: 1/sqrt(unpadded n)
    assert_f32_close(z, ref_pad_truncate(x, quarot.hadamard_scale(n)), 16 * 2.0**-24)


def test_parallel_flag_same_bits():
    x = rng_rows(64, 4096).astype(np.float32)
    a, b = x.copy(), x.copy()
    quarot.hadamard(a)
    quarot.hadamard(b, flags=quarot.FLAG_PARALLEL)
    assert np.array_equal(a, b)


def test_empty_batch():
    x = np.empty((0, 64), np.float32)
    assert quarot.hadamard(x) is x
    with pytest.raises(quarot.QuarotError):
        quarot.hadamard(np.empty((0, 11000), np.float32))
