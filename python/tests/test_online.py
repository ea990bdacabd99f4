"""R4Wrapper and QKRotation: callbacks, views, quantization, exceptions, lifetime."""

import gc
import threading
import weakref

import numpy as np
import pytest

import quarot
from refutil import ml_dtypes


def rows(r, n, seed=0):
    return np.random.default_rng(seed).standard_normal((r, n)).astype(np.float32)


def rotated(x, flags=0):
    y = np.array(x, copy=True)
    return quarot.hadamard(y, flags=flags)


# ---------------------------------------------------------------------------------------
# R4Wrapper
# ---------------------------------------------------------------------------------------


def test_r4_op_sees_rotated_rows_without_quant():
    n = 11008
    x = rows(3, n)
    x0 = x.copy()
    seen = {}

    def op(a):
        assert isinstance(a, quarot.Activations)
        assert a.rows == 3 and a.n == n and a.dtype == quarot.DTYPE_F32
        assert a.codes is None and a.scales is None and a.zeros is None and a.groups == 0
        assert not a.data.flags.writeable
        seen["data"] = a.data.copy()
        a.out[...] = a.data @ np.ones((n, 2), np.float32)

    out = np.zeros((3, 2), np.float32)
    with quarot.R4Wrapper(n, op) as w:
        assert w.forward(x, out) is out
    assert np.array_equal(x, x0), "x must only be read"
    assert np.array_equal(seen["data"], rotated(x0))
    np.testing.assert_allclose(out, seen["data"].sum(axis=1, keepdims=True).repeat(2, 1), rtol=1e-4)


def test_r4_flags_block_size_in_place_and_strides():
    n = 256
    x = rows(4, n, 1)
    got = []
    w = quarot.R4Wrapper(n, lambda a: got.append(a.data.copy()), flags=quarot.FLAG_TRANSPOSE_K)
    w(x)
    assert np.array_equal(got[-1], rotated(x, quarot.FLAG_TRANSPOSE_K))
    # block_size: each block of 64 rotated separately
    wb = quarot.R4Wrapper(n, lambda a: got.append(a.data.copy()), block_size=64)
    wb.forward(x)
    assert np.array_equal(got[-1], rotated(x.reshape(-1, 64)).reshape(4, n))
    # strided rows, in place
    big = np.full((4, 300), 9.0, np.float32)
    big[:, :n] = x
    w.forward(big[:, :n], in_place=True)
    assert np.array_equal(big[:, :n], rotated(x, quarot.FLAG_TRANSPOSE_K))
    assert np.all(big[:, n:] == 9.0)
    assert np.array_equal(got[-1], big[:, :n])
    # non-contiguous last axis
    with pytest.raises(ValueError, match="copy=True"):
        w.forward(np.zeros((2, 2 * n), np.float32)[:, ::2])
    w.forward(np.ones((2, 2 * n), np.float32)[:, ::2], copy=True)
    with pytest.raises(ValueError, match="width"):
        w.forward(np.zeros((2, 128), np.float32))
    with pytest.raises(TypeError):
        w.forward(np.zeros((2, n), np.float16))
    ro = np.zeros((1, n), np.float32)
    ro.flags.writeable = False
    w.forward(ro)  # read-only input is fine without in_place
    with pytest.raises(ValueError, match="read-only"):
        w.forward(ro, in_place=True)


@pytest.mark.parametrize("bf16_form", ["uint16", "ml_dtypes"])
def test_r4_bf16(bf16_form):
    if bf16_form == "ml_dtypes" and ml_dtypes is None:
        pytest.skip("ml_dtypes not installed")
    n = 128
    bits = quarot.float32_to_bf16_bits(rows(2, n, 3))
    x = bits if bf16_form == "uint16" else bits.view(ml_dtypes.bfloat16)
    seen = []
    w = quarot.R4Wrapper(n, lambda a: seen.append(a.data.copy()), dtype="bf16")
    w.forward(x)
    assert seen[0].dtype == x.dtype
    want = bits.copy()
    quarot.hadamard(want, dtype="bf16")
    assert np.array_equal(seen[0].view(np.uint16), want)


def test_r4_fake_and_real_quant_agree():
    n = 128
    x = rows(3, n, 4) * 3
    x[:, 5] = 40
    fake, real = [], []
    for sym, gs in ((True, 0), (False, 0), (True, 32), (False, 64)):
        wf = quarot.R4Wrapper(n, lambda a: fake.append(a.data.copy()), quant=quarot.QuantConfig.fake(4, symmetric=sym, group_size=gs, clip_ratio=0.9))
        wr = quarot.R4Wrapper(n, lambda a: real.append((a.data.copy(), a.codes.copy(), a.scales.copy(), a.zeros.copy(), a.group_size, a.groups, a.dequantize())), quant=quarot.QuantConfig("real", 4, sym, gs, 0.9))
        wf.forward(x)
        wr.forward(x)
        data, codes, scales, zeros, group_size, groups, deq = real[-1]
        assert group_size == (gs or n) and groups == n // (gs or n)
        assert codes.dtype == np.int8 and codes.shape == (3, n)
        assert scales.shape == zeros.shape == (3, groups)
        assert codes.min() >= -8 and codes.max() <= 7
        assert np.array_equal(data, rotated(x)), "REAL passes the rotated rows in data"
        np.testing.assert_allclose(deq, fake[-1], rtol=1e-6, atol=1e-6)
        if sym:
            assert np.all(zeros == 0)


def test_r4_custom_quantizer():
    n = 64
    x = rows(2, n, 5)
    seen = []

    def quantizer(v):
        assert v.flags.writeable and v.shape == (2, n)
        v[...] = np.round(v * 2) / 2

    w = quarot.R4Wrapper(n, lambda a: seen.append(a.data.copy()), quant=quarot.QuantConfig.custom(quantizer))
    w2 = quarot.R4Wrapper(n, lambda a: seen.append(a.data.copy()), quantizer=quantizer)
    del quantizer
    gc.collect()
    w.forward(x)
    w2.forward(x)
    assert np.array_equal(seen[0], np.round(rotated(x) * 2) / 2)
    assert np.array_equal(seen[1], seen[0])
    with pytest.raises(ValueError):
        quarot.R4Wrapper(n, print, quant=quarot.QuantConfig.fake(4), quantizer=print)


def test_quant_config_struct_and_validation():
    s = quarot.QuantConfig.real(8, symmetric=False, group_size=16, clip_ratio=0.5).to_struct()
    assert (s.kind, s.bits, s.symmetric, s.group_size) == (quarot.QUANT_REAL, 8, 0, 16)
    assert abs(s.clip_ratio - 0.5) < 1e-7
    assert quarot.QuantConfig.none().kind == quarot.QUANT_NONE
    c = quarot.QuantConfig.custom(lambda v: None).to_struct()
    assert c.kind == quarot.QUANT_CUSTOM and c.custom
    with pytest.raises(ValueError):
        quarot.QuantConfig("custom")
    with pytest.raises(ValueError):
        quarot.QuantConfig("bogus")
    for bad in (quarot.QuantConfig.fake(9), quarot.QuantConfig.fake(4, clip_ratio=0), quarot.QuantConfig.real(4, group_size=48)):
        with pytest.raises(quarot.QuarotError) as e:
            quarot.R4Wrapper(128, lambda a: None, quant=bad)
        assert e.value.status == quarot.ERR_INVALID_ARGUMENT


def test_r4_creation_errors():
    with pytest.raises(quarot.QuarotError) as e:
        quarot.R4Wrapper(11000, lambda a: None)
    assert e.value.status == quarot.ERR_UNSUPPORTED_SIZE and "11008" in e.value.message
    with pytest.raises(quarot.QuarotError) as e:
        quarot.R4Wrapper(128, lambda a: None, flags=quarot.FLAG_PARALLEL)
    assert e.value.status == quarot.ERR_INVALID_FLAGS
    with pytest.raises(TypeError):
        quarot.R4Wrapper(128, None)


class Boom(Exception):
    pass


def test_r4_op_exception_propagates_and_handle_stays_usable():
    n = 64
    calls = []

    def op(a):
        calls.append(a.rows)
        if a.out == "fail":
            raise Boom("from op")

    w = quarot.R4Wrapper(n, op)
    x = rows(2, n)
    with pytest.raises(Boom, match="from op") as e:
        w.forward(x, "fail")
    assert any("op" == f.name for f in e.traceback), "traceback reaches into the callback"
    assert quarot.last_callback_code() == quarot.CALLBACK_EXCEPTION_CODE
    w.forward(x, "ok")  # still usable
    assert calls == [2, 2]
    # in place: the rows are rotated even though the op failed
    xi = x.copy()
    with pytest.raises(Boom):
        w.forward(xi, "fail", in_place=True)
    assert np.array_equal(xi, rotated(x))


def test_r4_quantizer_exception_and_codes():
    def quantizer(v):
        raise KeyError("quantizer broke")

    op_calls = []
    w = quarot.R4Wrapper(64, op_calls.append, quant=quarot.QuantConfig.custom(quantizer))
    with pytest.raises(KeyError, match="quantizer broke"):
        w.forward(rows(1, 64))
    assert op_calls == [], "the op must not run after the quantizer failed"
    w2 = quarot.R4Wrapper(64, lambda a: 42)
    with pytest.raises(quarot.QuarotError) as e:
        w2.forward(rows(1, 64))
    assert e.value.status == quarot.ERR_CALLBACK and e.value.callback_code == 42
    assert quarot.last_callback_code() == 42
    w3 = quarot.R4Wrapper(64, lambda a: "not a code")
    with pytest.raises(TypeError, match="None or an int"):
        w3.forward(rows(1, 64))


def test_r4_callbacks_kept_alive_and_released():
    def make():
        box = []

        def op(a):
            box.append(float(a.data[0, 0]))

        return quarot.R4Wrapper(64, op), box, weakref.ref(op)

    w, box, ref = make()
    gc.collect()
    assert ref() is not None, "the handle keeps the op alive"
    x = rows(1, 64)
    w.forward(x)
    assert box == [float(rotated(x)[0, 0])]
    w.close()
    assert w.closed
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.forward(x)
    del w
    gc.collect()
    assert ref() is None, "no reference cycle keeps the op alive after the handle is gone"
    # __del__ without close()
    w, box, ref = make()
    del w
    gc.collect()
    assert ref() is None


def test_r4_threads_route_exceptions_to_their_caller():
    n = 128

    def op(a):
        if a.out % 2:
            raise Boom(a.out)
        a_sum = float(a.data.sum())
        results[a.out] = a_sum

    results = {}
    w = quarot.R4Wrapper(n, op)
    errors = {}
    x = rows(8, n)

    def worker(i):
        for _ in range(20):
            try:
                w.forward(x, i)
            except Boom as e:
                errors[i] = e.args[0]

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == {1: 1, 3: 3}
    assert set(results) == {0, 2}


def test_r4_reentrant_forward_from_op():
    inner_seen = []
    inner = quarot.R4Wrapper(64, lambda a: inner_seen.append(a.data.copy()))

    def outer_op(a):
        inner.forward(np.ascontiguousarray(a.data))

    outer = quarot.R4Wrapper(64, outer_op)
    x = rows(2, 64)
    outer.forward(x)
    assert np.array_equal(inner_seen[0], rotated(rotated(x)))


# ---------------------------------------------------------------------------------------
# QKRotation
# ---------------------------------------------------------------------------------------


def qk(tokens=5, nh=4, nkv=2, d=128, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((tokens, nh, d)).astype(np.float32), rng.standard_normal((tokens, nkv, d)).astype(np.float32))


def test_qk_rotation_without_rope():
    q, k = qk()
    q0, k0 = q.copy(), k.copy()
    with quarot.QKRotation(128) as h:
        assert h.forward(q, k) == (q, k)
    assert np.array_equal(q, rotated(q0.reshape(-1, 128)).reshape(q.shape))
    assert np.array_equal(k, rotated(k0.reshape(-1, 128)).reshape(k.shape))


def test_qk_rope_gets_views_of_caller_buffers():
    q, k = qk(d=80)
    q0, k0 = q.copy(), k.copy()
    seen = {}

    def rope(qv, kv, shape, arg):
        seen["shares"] = np.shares_memory(qv, q) and np.shares_memory(kv, k)
        seen["shape"], seen["arg"] = shape, arg
        assert qv.shape == q.shape and kv.shape == k.shape
        qv *= 2
        kv += 1

    h = quarot.QKRotation(80, rope, flags=quarot.FLAG_TRANSPOSE_K)
    del rope
    gc.collect()
    token = object()
    h.forward(q, k, token)
    assert seen["shares"] and seen["arg"] is token
    assert seen["shape"] == quarot.QKShape(5, 4, 2, 80, 320, 80, 160, 80)
    want_q = rotated((q0 * 2).reshape(-1, 80), quarot.FLAG_TRANSPOSE_K).reshape(q.shape)
    want_k = rotated((k0 + 1).reshape(-1, 80), quarot.FLAG_TRANSPOSE_K).reshape(k.shape)
    assert np.array_equal(q, want_q) and np.array_equal(k, want_k)


def test_qk_layouts():
    d = 64
    tq, tk = qk(d=d, seed=3)
    want_q = rotated(tq.reshape(-1, d)).reshape(tq.shape)
    want_k = rotated(tk.reshape(-1, d)).reshape(tk.shape)
    h = quarot.QKRotation(d)
    # head-major [heads, tokens, d] and Quark's [1, heads, seq, d]
    hq, hk = np.ascontiguousarray(tq.transpose(1, 0, 2)), np.ascontiguousarray(tk.transpose(1, 0, 2))
    h.forward(hq, hk, layout="htd")
    assert np.array_equal(hq.transpose(1, 0, 2), want_q) and np.array_equal(hk.transpose(1, 0, 2), want_k)
    hq4, hk4 = np.ascontiguousarray(tq.transpose(1, 0, 2))[None], np.ascontiguousarray(tk.transpose(1, 0, 2))[None]
    h.forward(hq4, hk4, layout="htd")
    assert np.array_equal(hq4[0].transpose(1, 0, 2), want_q)
    # 2-D [tokens, heads * d] inside wider rows (strided)
    bq = np.full((5, 4 * d + 7), 3.0, np.float32)
    bq[:, : 4 * d] = tq.reshape(5, -1)
    fk = tk.reshape(5, -1).copy()
    h.forward(bq[:, : 4 * d], fk)
    assert np.array_equal(bq[:, : 4 * d].reshape(tq.shape), want_q) and np.all(bq[:, 4 * d :] == 3.0)
    assert np.array_equal(fk.reshape(tk.shape), want_k)
    # explicit shape over flat buffers
    fq, fk = tq.transpose(1, 0, 2).ravel().copy(), tk.transpose(1, 0, 2).ravel().copy()
    h.forward(fq, fk, shape=quarot.QKShape.head_major(5, 4, 2, d))
    assert np.array_equal(fq.reshape(4, 5, d).transpose(1, 0, 2), want_q)
    with pytest.raises(ValueError, match="needs"):
        h.forward(fq[:-1], fk, shape=quarot.QKShape.head_major(5, 4, 2, d))
    # a view that needs a copy
    nq = np.zeros((5, 4, 2 * d), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="copy=True"):
        h.forward(nq, tk.copy())
    nq[...] = tq
    h.forward(nq, tk.copy(), copy=True)
    assert np.array_equal(nq, want_q)
    with pytest.raises(ValueError, match="head_dim"):
        h.forward(np.zeros((5, 4, 32), np.float32), np.zeros((5, 2, 32), np.float32))
    with pytest.raises(ValueError, match="tokens"):
        h.forward(np.zeros((5, 4, d), np.float32), np.zeros((4, 2, d), np.float32))


def test_qk_bf16_views_keep_caller_dtype():
    if ml_dtypes is None:
        pytest.skip("ml_dtypes not installed")
    q, k = qk(d=128, seed=9)
    qb = quarot.float32_to_bf16_bits(q)
    kb = quarot.float32_to_bf16_bits(k)
    dts = []
    h = quarot.QKRotation(128, lambda qv, kv, s, a: dts.append((qv.dtype, kv.dtype)), dtype="bf16")
    q1, k1 = qb.copy(), kb.copy()
    h.forward(q1, k1)
    q2, k2 = qb.view(ml_dtypes.bfloat16).copy(), kb.view(ml_dtypes.bfloat16).copy()
    h.forward(q2, k2)
    assert dts == [(np.uint16, np.uint16), (ml_dtypes.bfloat16, ml_dtypes.bfloat16)]
    assert np.array_equal(q1, q2.view(np.uint16)) and np.array_equal(k1, k2.view(np.uint16))


def test_qk_rope_exception_and_codes():
    q, k = qk(d=64, seed=4)

    def rope(qv, kv, shape, arg):
        qv[...] = 1.0
        if arg == "fail":
            raise Boom("rope")

    h = quarot.QKRotation(64, rope)
    q1, k1 = q.copy(), k.copy()
    with pytest.raises(Boom, match="rope"):
        h.forward(q1, k1, "fail")
    assert np.all(q1 == 1.0) and np.array_equal(k1, k), "q, k hold what the callback left, unrotated"
    h.forward(q1, k1, "ok")  # usable afterwards
    assert np.array_equal(q1, rotated(np.ones((20, 64), np.float32)).reshape(q1.shape))
    h2 = quarot.QKRotation(64, lambda *a: -7)
    with pytest.raises(quarot.QuarotError) as e:
        h2.forward(q.copy(), k.copy())
    assert e.value.status == quarot.ERR_CALLBACK and e.value.callback_code == -7


def test_qk_errors_and_lifetime():
    with pytest.raises(quarot.QuarotError) as e:
        quarot.QKRotation(6)
    assert e.value.status == quarot.ERR_UNSUPPORTED_SIZE
    with pytest.raises(quarot.QuarotError) as e:
        quarot.QKRotation(128, flags=quarot.FLAG_PARALLEL)
    assert e.value.status == quarot.ERR_INVALID_FLAGS
    q, k = qk()
    h = quarot.QKRotation(128)
    with pytest.raises(quarot.QuarotError) as e:  # q and k overlap
        buf = np.zeros((5, 6, 128), np.float32)
        h.forward(buf[:, :4], buf[:, 3:5])
    assert e.value.status == quarot.ERR_OVERLAP
    ro = q.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        h.forward(ro, k)
    h.close()
    with pytest.raises(ValueError, match="closed"):
        h.forward(q, k)
    assert "closed" in repr(h)


# ---------------------------------------------------------------------------------------
# quarot.quantize (the quantizer on its own)
# ---------------------------------------------------------------------------------------


def np_quantize(x, bits, symmetric, group_size, clip):
    """The header's formulas in float32 numpy: (q as the library reports it, scale, zero,
    fake values)."""
    rows, n = x.shape
    gs = group_size or n
    g = x.astype(np.float32).reshape(rows, n // gs, gs)
    clip = np.float32(clip)
    xmin = np.minimum(g.min(axis=2), 0) * clip
    xmax = np.maximum(g.max(axis=2), 0) * clip
    if symmetric:
        maxq = np.float32(2 ** (bits - 1) - 1)
        amax = np.maximum(-xmin, xmax)
        scale = np.where(amax == 0, np.float32(1), amax / maxq).astype(np.float32)
        zero = np.zeros_like(scale)
        q = np.clip(np.rint(g / scale[..., None]), -(maxq + 1), maxq)
        shift = 0
    else:
        maxq = np.float32(2**bits - 1)
        both0 = (xmin == 0) & (xmax == 0)
        xmin = np.where(both0, np.float32(-1), xmin)
        xmax = np.where(both0, np.float32(1), xmax)
        scale = ((xmax - xmin) / maxq).astype(np.float32)
        zero = np.rint(-xmin / scale).astype(np.float32)
        q = np.clip(np.rint(g / scale[..., None]) + zero[..., None], 0, maxq)
        shift = 2 ** (bits - 1)
    fake = (scale[..., None] * (q - zero[..., None])).astype(np.float32).reshape(rows, n)
    return (q - shift).reshape(rows, n), scale, zero - shift, fake


@pytest.mark.parametrize("bits,symmetric,group_size,clip", [(4, True, 0, 1.0), (4, False, 0, 0.9), (8, True, 32, 1.0), (3, False, 16, 0.95), (2, True, 64, 1.0)])
def test_quantize_matches_formulas(bits, symmetric, group_size, clip):
    x = rows(5, 128, 21) * 2
    x[:, 7] = 30
    x[4] = 0  # an all-zero row
    q, scale, zero, fake = np_quantize(x, bits, symmetric, group_size, clip)
    real = quarot.quantize(x, quarot.QuantConfig.real(bits, symmetric=symmetric, group_size=group_size, clip_ratio=clip))
    assert isinstance(real, quarot.QuantizedRows)
    assert real.group_size == (group_size or 128)
    np.testing.assert_array_equal(real.codes, q.astype(np.int8))
    np.testing.assert_array_equal(real.scales, scale)
    np.testing.assert_array_equal(real.zeros, zero)
    y = x.copy()
    assert quarot.quantize(y, quarot.QuantConfig.fake(bits, symmetric=symmetric, group_size=group_size, clip_ratio=clip)) is y
    np.testing.assert_array_equal(y, fake)
    np.testing.assert_array_equal(real.dequantize(), fake)


def test_quantize_layouts_dtypes_and_errors():
    x = rows(3, 64, 22)
    big = np.full((3, 100), 2.0, np.float32)
    big[:, :64] = x
    quarot.quantize(big[:, :64], quarot.QuantConfig.fake(4))
    assert np.all(big[:, 64:] == 2.0)
    y = x.copy()
    quarot.quantize(y, quarot.QuantConfig.fake(4))
    assert np.array_equal(big[:, :64], y)
    one = quarot.quantize(x[0], quarot.QuantConfig.real(4, group_size=16))
    assert one.codes.shape == (64,) and one.scales.shape == (4,)
    bits = quarot.float32_to_bf16_bits(x)
    qb = quarot.quantize(bits, quarot.QuantConfig.real(8), dtype="bf16")
    assert qb.codes.shape == (3, 64)
    ro = x.copy()
    ro.flags.writeable = False
    quarot.quantize(ro, quarot.QuantConfig.real(4))  # REAL only reads
    with pytest.raises(ValueError, match="read-only"):
        quarot.quantize(ro, quarot.QuantConfig.fake(4))
    before = x.copy()
    for bad in (quarot.QuantConfig.none(), quarot.QuantConfig.custom(lambda v: None), quarot.QuantConfig.fake(1), quarot.QuantConfig.fake(4, group_size=48)):
        with pytest.raises(quarot.QuarotError) as e:
            quarot.quantize(x, bad)
        assert e.value.status == quarot.ERR_INVALID_ARGUMENT
    with pytest.raises(quarot.QuarotError):
        quarot.quantize(x, quarot.QuantConfig.real(4, group_size=48))
    assert np.array_equal(x, before)
