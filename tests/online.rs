//! The online handles (R4Wrapper, QkRotation) through the Rust core: what the op and the
//! RoPE callback see, bit for bit against the transform and the quantizer applied by hand;
//! in-place and copy modes; block form; callback errors; bad input leaving data untouched;
//! concurrent use of one handle.

use half::{bf16, f16};
use quarot::hadamard::{hadamard_rows_into, normalized_scale, FLAG_PARALLEL, FLAG_TRANSPOSE_K};
use quarot::online::{
    last_callback_code, ActView, QkRotation, QkShape, Quant, QuantConfig, R4Wrapper,
    FORWARD_IN_PLACE,
};
use quarot::{DType, Element, Status};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            if i % 37 == 3 {
                v * 30.0 // outlier channels
            } else {
                v
            }
        })
        .collect()
}

fn to<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}

fn bits<T: Element>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// What the op saw: the rows (as f32) and, with real quantization, codes/scales/zeros.
#[derive(Default)]
struct Seen {
    rows: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
    calls: usize,
}

fn capture<T: Element>(seen: &mut Seen) -> impl FnMut(&ActView) -> i32 + '_ {
    move |v: &ActView| {
        seen.calls += 1;
        seen.rows.clear();
        for i in 0..v.rows {
            // SAFETY: the handle's contract: rows x n elements of T at row_stride.
            let row = unsafe {
                std::slice::from_raw_parts(v.data.cast::<T>().add(i * v.row_stride), v.n)
            };
            seen.rows.extend(row.iter().map(|x| x.to_f32()));
        }
        if !v.codes.is_null() {
            // SAFETY: as documented for real quantization.
            unsafe {
                seen.codes = std::slice::from_raw_parts(v.codes, v.rows * v.n).to_vec();
                seen.scales = std::slice::from_raw_parts(v.scales, v.rows * v.groups).to_vec();
                seen.zeros = std::slice::from_raw_parts(v.zeros, v.rows * v.groups).to_vec();
            }
        }
        0
    }
}

/// The rotated rows by hand: the transform on each block of each row.
fn rotate_by_hand<T: Element>(
    x: &[T],
    rows: usize,
    n: usize,
    stride: usize,
    block: usize,
    flags: u32,
) -> Vec<T> {
    let mut out = vec![T::from_f32(0.0); rows * n];
    for i in 0..rows {
        hadamard_rows_into(
            &x[i * stride..i * stride + n],
            block,
            &mut out[i * n..(i + 1) * n],
            block,
            n / block,
            block,
            normalized_scale(block),
            flags,
        )
        .unwrap();
    }
    out
}

fn r4_case<T: Element>(n: usize, block: usize, flags: u32) {
    let (rows, stride) = (5, n + 3);
    let x0: Vec<T> = to(&values(rows * stride, n as u64));
    let want = rotate_by_hand(
        &x0,
        rows,
        n,
        stride,
        if block == 0 { n } else { block },
        flags,
    );
    let cfg = QuantConfig {
        bits: 4,
        symmetric: true,
        group_size: 0,
        clip_ratio: 0.9,
    };
    for quant in [Quant::None, Quant::Fake(cfg), Quant::Real(cfg)] {
        let w = R4Wrapper::new(n, block, T::DTYPE, flags, quant).unwrap();
        // Copy mode: x untouched, the op sees the rotated (quantized) rows.
        let mut x = x0.clone();
        let mut seen = Seen::default();
        // SAFETY: x holds rows rows of stride elements.
        unsafe {
            w.forward(
                x.as_mut_ptr().cast(),
                rows,
                stride,
                0,
                None,
                &mut capture::<T>(&mut seen),
            )
        }
        .unwrap();
        assert_eq!(seen.calls, 1);
        assert_eq!(bits(&x), bits(&x0), "copy mode wrote x");
        let mut expect = bits(&want);
        if let Quant::Fake(c) | Quant::Real(c) = quant {
            for row in expect.chunks_exact_mut(n) {
                c.fake_quantize(row);
            }
        }
        match quant {
            Quant::Fake(_) => {
                let e: Vec<f32> = expect.iter().map(|&v| T::from_f32(v).to_f32()).collect();
                assert_eq!(seen.rows, e, "{:?} n {n} block {block}: fake", T::DTYPE);
            }
            Quant::Real(c) => {
                // data is the rotated rows; codes dequantize to the fake values.
                assert_eq!(seen.rows, bits(&want));
                let g = c.group(n);
                for (j, &code) in seen.codes.iter().enumerate() {
                    let (i, gi) = (j / n, (j % n) / g);
                    let s = seen.scales[i * (n / g) + gi];
                    let z = seen.zeros[i * (n / g) + gi];
                    assert_eq!(s * (f32::from(code) - z), expect[j], "real code {j}");
                }
            }
            _ => assert_eq!(seen.rows, bits(&want), "{:?} n {n} block {block}", T::DTYPE),
        }
        // In place: x becomes what the op saw.
        let mut seen2 = Seen::default();
        // SAFETY: as above.
        unsafe {
            w.forward(
                x.as_mut_ptr().cast(),
                rows,
                stride,
                FORWARD_IN_PLACE,
                None,
                &mut capture::<T>(&mut seen2),
            )
        }
        .unwrap();
        let mut rows_of_x = Vec::new();
        for i in 0..rows {
            rows_of_x.extend(bits(&x[i * stride..i * stride + n]));
            // the gaps between rows are untouched
            assert_eq!(
                bits(&x[i * stride + n..(i + 1) * stride]),
                bits(&x0[i * stride + n..(i + 1) * stride])
            );
        }
        assert_eq!(rows_of_x, seen2.rows, "in place: x holds what the op saw");
        if quant != Quant::Real(cfg) {
            assert_eq!(seen2.rows, seen.rows, "in place == copy");
        }
    }
}

#[test]
fn r4_op_sees_the_rotated_rows() {
    for &(n, block) in &[
        (64, 0),
        (192, 0),
        (11008, 0),
        (1536, 128),
        (160, 80),
        (4096, 4096),
    ] {
        r4_case::<f32>(n, block, 0);
        r4_case::<f16>(n, block, 0);
        r4_case::<bf16>(n, block, 0);
    }
    r4_case::<f32>(11008, 0, FLAG_TRANSPOSE_K);
}

#[test]
fn r4_custom_quantizer_and_callback_errors() {
    let n = 128;
    let w = R4Wrapper::new(n, 0, DType::F32, 0, Quant::Custom).unwrap();
    let x0 = values(2 * n, 9);
    let mut x = x0.clone();
    let op_calls = std::cell::Cell::new(0);
    let mut op = |_: &ActView| {
        op_calls.set(op_calls.get() + 1);
        0
    };
    // A custom-quant handle without a quantizer: an error, nothing called.
    // SAFETY: x holds 2 rows of n.
    let e = unsafe { w.forward(x.as_mut_ptr().cast(), 2, n, 0, None, &mut op) }.unwrap_err();
    assert_eq!(e.status, Status::NullPointer);
    // The quantizer rewrites the rows; the op sees that.
    let mut q = |p: *mut u8, rows: usize, n: usize, stride: usize| {
        for i in 0..rows {
            // SAFETY: the handle's contract.
            let row = unsafe { std::slice::from_raw_parts_mut(p.cast::<f32>().add(i * stride), n) };
            row.fill(7.0);
        }
        0
    };
    let mut seen = Seen::default();
    // SAFETY: as above.
    unsafe {
        w.forward(
            x.as_mut_ptr().cast(),
            2,
            n,
            0,
            Some(&mut q),
            &mut capture::<f32>(&mut seen),
        )
    }
    .unwrap();
    assert!(seen.rows.iter().all(|&v| v == 7.0));
    assert_eq!(x, x0);
    // A failing quantizer: Callback status, its code kept, the op not called.
    let mut bad = |_: *mut u8, _: usize, _: usize, _: usize| 42;
    // SAFETY: as above.
    let e =
        unsafe { w.forward(x.as_mut_ptr().cast(), 2, n, 0, Some(&mut bad), &mut op) }.unwrap_err();
    assert_eq!((e.status, last_callback_code()), (Status::Callback, 42));
    assert_eq!(op_calls.get(), 0);
    // A failing op.
    let plain = R4Wrapper::new(n, 0, DType::F32, 0, Quant::None).unwrap();
    let mut fail = |_: &ActView| -3;
    // SAFETY: as above.
    let e = unsafe { plain.forward(x.as_mut_ptr().cast(), 2, n, 0, None, &mut fail) }.unwrap_err();
    assert_eq!((e.status, last_callback_code()), (Status::Callback, -3));
    assert_eq!(x, x0, "x untouched without in-place");
    // Still usable.
    // SAFETY: as above.
    unsafe { plain.forward(x.as_mut_ptr().cast(), 2, n, 0, None, &mut op) }.unwrap();
    assert_eq!(op_calls.get(), 1);
}

#[test]
fn r4_bad_input() {
    let cfg = |bits, gs, clip| QuantConfig {
        bits,
        symmetric: true,
        group_size: gs,
        clip_ratio: clip,
    };
    for (n, block, flags, quant, status) in [
        (0, 0, 0, Quant::None, Status::UnsupportedSize),
        (11000, 0, 0, Quant::None, Status::UnsupportedSize),
        (128, 48, 0, Quant::None, Status::InvalidArgument),
        (128, 256, 0, Quant::None, Status::InvalidArgument),
        (128, 0, FLAG_PARALLEL, Quant::None, Status::InvalidFlags),
        (128, 0, 64, Quant::None, Status::InvalidFlags),
        (
            128,
            0,
            0,
            Quant::Fake(cfg(1, 0, 1.0)),
            Status::InvalidArgument,
        ),
        (
            128,
            0,
            0,
            Quant::Real(cfg(4, 48, 1.0)),
            Status::InvalidArgument,
        ),
        (
            128,
            0,
            0,
            Quant::Fake(cfg(4, 0, 0.0)),
            Status::InvalidArgument,
        ),
    ] {
        let e = R4Wrapper::new(n, block, DType::F32, flags, quant).unwrap_err();
        assert_eq!(
            e.status, status,
            "n {n} block {block} flags {flags}: {}",
            e.message
        );
    }
    let w = R4Wrapper::new(64, 0, DType::F32, 0, Quant::None).unwrap();
    let x0 = values(128, 1);
    let mut x = x0.clone();
    let mut op = |_: &ActView| 0;
    for (ptr, rows, stride, flags, status) in [
        (x.as_mut_ptr(), 2, 63, 0, Status::InvalidStride),
        (x.as_mut_ptr(), 2, 64, 2, Status::InvalidFlags),
        (std::ptr::null_mut(), 2, 64, 0, Status::NullPointer),
        (x.as_mut_ptr(), usize::MAX / 2, 64, 0, Status::SizeOverflow),
    ] {
        // SAFETY: every case is rejected before x is touched.
        let e = unsafe { w.forward(ptr.cast(), rows, stride, flags, None, &mut op) }.unwrap_err();
        assert_eq!(e.status, status);
    }
    assert_eq!(x, x0);
    // rows = 0 with NULL: nothing to do, the op is not called.
    let mut called = false;
    let mut op2 = |_: &ActView| {
        called = true;
        0
    };
    // SAFETY: no rows.
    unsafe { w.forward(std::ptr::null_mut(), 0, 64, 0, None, &mut op2) }.unwrap();
    assert!(!called);
}

/// q and k in a [tokens, heads, d] layout or a head-major one; RoPE is a callback that adds
/// a per-position offset (enough to see it ran before the rotation, on the right data).
fn qk_case<T: Element>(d: usize, head_major: bool) {
    let (tokens, nh, nkv) = (6, 4, 2);
    let h = QkRotation::new(d, T::DTYPE, 0).unwrap();
    let lay = |heads: usize| {
        if head_major {
            (d + 2, tokens * (d + 2) + 5) // token stride, head stride
        } else {
            (heads * (d + 1) + 3, d + 1)
        }
    };
    let (qts, qhs) = lay(nh);
    let (kts, khs) = lay(nkv);
    let shape = QkShape {
        tokens,
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: d,
        q_token_stride: qts,
        q_head_stride: qhs,
        k_token_stride: kts,
        k_head_stride: khs,
    };
    let qlen = (tokens - 1) * qts + (nh - 1) * qhs + d;
    let klen = (tokens - 1) * kts + (nkv - 1) * khs + d;
    let q0: Vec<T> = to(&values(qlen, 3));
    let k0: Vec<T> = to(&values(klen, 4));
    let (mut q, mut k) = (q0.clone(), k0.clone());
    // Expected: rope (add 1/8 * token to every value of each head), then the transform of
    // each head.
    let rope_on = |v: &mut [T], ts: usize, hs: usize, heads: usize| {
        for t in 0..tokens {
            for hh in 0..heads {
                for j in 0..d {
                    let e = &mut v[t * ts + hh * hs + j];
                    *e = T::from_f32(e.to_f32() + 0.125 * t as f32);
                }
            }
        }
    };
    let expect = |v0: &[T], ts: usize, hs: usize, heads: usize| {
        let mut v = v0.to_vec();
        rope_on(&mut v, ts, hs, heads);
        let mut out = v.clone();
        for t in 0..tokens {
            for hh in 0..heads {
                let o = t * ts + hh * hs;
                let mut y = vec![T::from_f32(0.0); d];
                hadamard_rows_into(&v[o..o + d], d, &mut y, d, 1, d, normalized_scale(d), 0)
                    .unwrap();
                out[o..o + d].copy_from_slice(&y);
            }
        }
        out
    };
    let (qe, ke) = (expect(&q0, qts, qhs, nh), expect(&k0, kts, khs, nkv));
    let (qp, kp) = (q.as_mut_ptr(), k.as_mut_ptr());
    let mut calls = 0;
    let mut rope = |s: &QkShape| {
        calls += 1;
        assert_eq!(*s, shape);
        // SAFETY: the handle passes the caller's q and k through; lengths as allocated.
        let (qv, kv) = unsafe {
            (
                std::slice::from_raw_parts_mut(qp, qlen),
                std::slice::from_raw_parts_mut(kp, klen),
            )
        };
        rope_on(qv, qts, qhs, nh);
        rope_on(kv, kts, khs, nkv);
        0
    };
    // SAFETY: q and k hold the described heads.
    unsafe { h.forward(qp.cast(), kp.cast(), &shape, Some(&mut rope)) }.unwrap();
    assert_eq!(calls, 1);
    assert_eq!(
        bits(&q),
        bits(&qe),
        "{:?} d {d} head_major {head_major}: q",
        T::DTYPE
    );
    assert_eq!(bits(&k), bits(&ke), "k");
}

#[test]
fn qk_rotates_every_head_after_rope() {
    for d in [64, 80, 96, 128, 160, 256] {
        for hm in [false, true] {
            qk_case::<f32>(d, hm);
            qk_case::<f16>(d, hm);
            qk_case::<bf16>(d, hm);
        }
    }
}

#[test]
fn qk_bad_input_and_callback_error() {
    let d = 64;
    let h = QkRotation::new(d, DType::F32, 0).unwrap();
    assert_eq!(
        QkRotation::new(65, DType::F32, 0).unwrap_err().status,
        Status::UnsupportedSize
    );
    assert_eq!(
        QkRotation::new(64, DType::F32, FLAG_PARALLEL)
            .unwrap_err()
            .status,
        Status::InvalidFlags
    );
    let good = QkShape {
        tokens: 3,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: d,
        q_token_stride: 2 * d,
        q_head_stride: d,
        k_token_stride: d,
        k_head_stride: d,
    };
    let q0 = values(6 * d, 1);
    let k0 = values(3 * d, 2);
    let mut buf = values(9 * d, 3); // q and k inside one buffer, for the overlap cases
    let (mut q, mut k) = (q0.clone(), k0.clone());
    let mut never = |_: &QkShape| -> i32 { panic!("the callback must not run on bad input") };
    let cases: Vec<(QkShape, *mut f32, *mut f32, Status)> = vec![
        (
            QkShape {
                head_dim: 128,
                ..good
            },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::InvalidArgument,
        ),
        (
            QkShape { n_heads: 0, ..good },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::InvalidArgument,
        ),
        (
            QkShape {
                n_kv_heads: 0,
                ..good
            },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::InvalidArgument,
        ),
        (
            QkShape {
                q_head_stride: d - 1,
                ..good
            },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::InvalidStride,
        ),
        (
            QkShape {
                q_token_stride: d,
                ..good
            },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::InvalidStride,
        ),
        (
            QkShape {
                k_token_stride: usize::MAX / 4,
                ..good
            },
            q.as_mut_ptr(),
            k.as_mut_ptr(),
            Status::SizeOverflow,
        ),
        (
            good,
            std::ptr::null_mut(),
            k.as_mut_ptr(),
            Status::NullPointer,
        ),
        (
            good,
            q.as_mut_ptr(),
            std::ptr::null_mut(),
            Status::NullPointer,
        ),
        (
            good,
            buf.as_mut_ptr(),
            buf.as_mut_ptr().wrapping_add(5 * d),
            Status::Overlap,
        ),
    ];
    for (s, qp, kp, status) in cases {
        // SAFETY: every case is rejected before any access.
        let e = unsafe { h.forward(qp.cast(), kp.cast(), &s, Some(&mut never)) }.unwrap_err();
        assert_eq!(e.status, status, "{s:?}: {}", e.message);
    }
    assert_eq!((q.clone(), k.clone()), (q0.clone(), k0.clone()));
    // Disjoint parts of one buffer are fine.
    let (qp, kp) = (buf.as_mut_ptr(), buf.as_mut_ptr().wrapping_add(6 * d));
    // SAFETY: 6d + 3d = 9d values.
    unsafe { h.forward(qp.cast(), kp.cast(), &good, None) }.unwrap();
    // A failing RoPE: Callback, code kept, nothing rotated.
    let mut fail = |_: &QkShape| 17;
    // SAFETY: q, k hold the heads.
    let e = unsafe {
        h.forward(
            q.as_mut_ptr().cast(),
            k.as_mut_ptr().cast(),
            &good,
            Some(&mut fail),
        )
    }
    .unwrap_err();
    assert_eq!((e.status, last_callback_code()), (Status::Callback, 17));
    assert_eq!((q.clone(), k.clone()), (q0.clone(), k0.clone()));
    // Without a callback it only rotates.
    // SAFETY: as above.
    unsafe { h.forward(q.as_mut_ptr().cast(), k.as_mut_ptr().cast(), &good, None) }.unwrap();
    assert_ne!(q, q0);
}

/// One handle used by 8 threads at once, each with its own shapes: every result equals the
/// single-thread one.
#[test]
fn one_handle_many_threads() {
    let n = 1536;
    let cfg = QuantConfig {
        bits: 4,
        symmetric: false,
        group_size: 128,
        clip_ratio: 1.0,
    };
    let w = R4Wrapper::new(n, 0, DType::F16, 0, Quant::Fake(cfg)).unwrap();
    let run = |rows: usize, seed: u64| {
        let mut x: Vec<f16> = to(&values(rows * n, seed));
        let mut seen = Seen::default();
        for _ in 0..3 {
            // SAFETY: x holds rows rows of n.
            unsafe {
                w.forward(
                    x.as_mut_ptr().cast(),
                    rows,
                    n,
                    0,
                    None,
                    &mut capture::<f16>(&mut seen),
                )
            }
            .unwrap();
        }
        seen.rows
    };
    let want: Vec<Vec<f32>> = (0..8).map(|t| run(1 + t * 3, t as u64)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| s.spawn(move || run(1 + t * 3, t as u64)))
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), want[t], "thread {t}");
        }
    });
}

/// q and k as views of one fused QKV tensor [tokens, (nh + 2 * nkv) * d] (vLLM's qkv_proj
/// output, llama.cpp's views of a fused wqkv): q at column 0, k at column nh * d, the same
/// token stride. Their address ranges interleave but no element is shared: accepted, and
/// the result equals the one on separate buffers, v untouched. k starting inside q's
/// per-token range, or running into the next token's q, is still refused.
#[test]
fn qk_fused_qkv_views() {
    let (d, tokens, nh, nkv) = (64, 5, 4, 2);
    let ts = (nh + 2 * nkv) * d;
    let h = QkRotation::new(d, DType::F32, 0).unwrap();
    let fused0 = values(tokens * ts, 9);
    let shape = QkShape {
        tokens,
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: d,
        q_token_stride: ts,
        q_head_stride: d,
        k_token_stride: ts,
        k_head_stride: d,
    };
    let mut fused = fused0.clone();
    let base = fused.as_mut_ptr();
    // SAFETY: q and k are disjoint views of `fused` as described by the shape.
    unsafe { h.forward(base.cast(), base.add(nh * d).cast(), &shape, None) }.unwrap();
    // The same heads copied to separate, contiguous buffers.
    let mut q: Vec<f32> = (0..tokens)
        .flat_map(|t| fused0[t * ts..t * ts + nh * d].to_vec())
        .collect();
    let mut k: Vec<f32> = (0..tokens)
        .flat_map(|t| fused0[t * ts + nh * d..t * ts + (nh + nkv) * d].to_vec())
        .collect();
    let sep = QkShape {
        q_token_stride: nh * d,
        k_token_stride: nkv * d,
        ..shape
    };
    // SAFETY: separate buffers of the described sizes.
    unsafe { h.forward(q.as_mut_ptr().cast(), k.as_mut_ptr().cast(), &sep, None) }.unwrap();
    for t in 0..tokens {
        let row = &fused[t * ts..(t + 1) * ts];
        assert_eq!(
            bits(&row[..nh * d]),
            bits(&q[t * nh * d..(t + 1) * nh * d]),
            "q {t}"
        );
        assert_eq!(
            bits(&row[nh * d..(nh + nkv) * d]),
            bits(&k[t * nkv * d..(t + 1) * nkv * d]),
            "k {t}"
        );
        assert_eq!(
            bits(&row[(nh + nkv) * d..]),
            bits(&fused0[t * ts + (nh + nkv) * d..(t + 1) * ts]),
            "v {t} must be untouched"
        );
    }
    // k inside q's heads of a token, and k whose heads run past the token's end (into the
    // next token's q): refused, nothing written.
    for (k_col, kts) in [((nh - 1) * d, ts), (ts - d, ts), (nh * d, ts + 1)] {
        let bad = QkShape {
            k_token_stride: kts,
            ..shape
        };
        // Room for k's last heads past the last row.
        let mut buf0 = fused0.clone();
        buf0.extend(values(2 * ts, 10));
        let mut buf = buf0.clone();
        let p = buf.as_mut_ptr();
        // SAFETY: every described head lies inside `buf`.
        let e = unsafe { h.forward(p.cast(), p.add(k_col).cast(), &bad, None) }.unwrap_err();
        assert_eq!(
            e.status,
            Status::Overlap,
            "k at column {k_col}, stride {kts}: {e}"
        );
        assert_eq!(bits(&buf), bits(&buf0));
    }
}
