//! The custom ops really run on ggml's threads: with a persistent ggml_threadpool of 2
//! workers, the callback is called with (ith, nth) = (0, 2) and (1, 2), worker 0 being the
//! thread that called ggml_graph_compute and worker 1 a pool thread that survives between
//! computes. A failure inside a worker is kept by the op and its rows become NaN.
mod common;

use common::*;
use quarot_ggml::{sys, Context, DType, Op, Runner};
use std::ffi::{c_int, c_void};

/// This thread's OS id (gettid), from /proc/thread-self -> "<pid>/task/<tid>".
fn os_thread_id() -> i64 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("tid")
}

#[test]
fn ops_run_on_ggml_workers() {
    let (n, rows) = (4096usize, 33usize);
    let x = Rng::new(1).activations(rows, n);
    let had = Op::hadamard(0.0, 0).unwrap();
    let r4 = Op::r4(n, 0, DType::F32, 0, None).unwrap();
    let ctx = Context::new(rows * n * 16 + (8 << 20));
    let xt = ctx.tensor_2d(DType::F32, n, rows);
    xt.write(DType::F32, &x);
    let a = ctx.hadamard(xt, DType::F32, &had).unwrap();
    let b = ctx.r4(xt, DType::F32, &r4).unwrap();
    let graph = ctx.graph(&[a, b]);

    let mut runner = Runner::new(2);
    let mut pool_thread = None;
    for round in 0..3 {
        had.reset();
        r4.reset();
        runner.compute(&graph).unwrap();
        for (name, op) in [("hadamard", &had), ("r4", &r4)] {
            let s = op.stats();
            let (t0, t1) = (op.thread_id(0), op.thread_id(1));
            eprintln!("round {round} {name}: {s:?}, ith 0 on thread {t0}, ith 1 on thread {t1}");
            assert_eq!(s.calls, 2, "one call per worker");
            assert_eq!(s.ith_mask, 0b11, "workers 0 and 1 both ran");
            assert_eq!((s.nth_min, s.nth_max), (2, 2), "nth = 2 in every call");
            assert_eq!(t0, os_thread_id(), "worker 0 is the computing thread");
            assert_ne!(t1, t0, "worker 1 is another thread");
            assert_eq!(*pool_thread.get_or_insert(t1), t1, "the pool is persistent");
            op.status().unwrap();
        }
    }
    // Both ops computed the same rows (the R4 wrapper without quantization is the transform).
    assert_eq!(a.read_f32(), b.read_f32());

    let mut single = Runner::new(1);
    had.reset();
    single.compute(&graph).unwrap();
    let s = had.stats();
    assert_eq!((s.calls, s.ith_mask, s.nth_min, s.nth_max), (1, 0b1, 1, 1));
}

/// A quantizer that always fails (QUAROT_QUANT_CUSTOM returning 7).
unsafe extern "C" fn failing_quantizer(
    _user: *mut c_void,
    _data: *mut c_void,
    _dtype: i32,
    _rows: usize,
    _n: usize,
    _stride: usize,
) -> c_int {
    7
}

#[test]
fn a_failure_in_a_worker_is_reported_and_poisons_its_rows() {
    let (n, rows) = (1536usize, 6usize);
    let quant = sys::quarot_quant_config {
        kind: sys::QUAROT_QUANT_CUSTOM,
        bits: 0,
        symmetric: 0,
        group_size: 0,
        clip_ratio: 1.0,
        custom: Some(failing_quantizer),
        custom_user_data: std::ptr::null_mut(),
    };
    let op = Op::r4(n, 0, DType::F32, 0, Some(&quant)).unwrap();
    let ctx = Context::new(rows * n * 8 + (4 << 20));
    let xt = ctx.tensor_2d(DType::F32, n, rows);
    xt.write(DType::F32, &Rng::new(3).activations(rows, n));
    let y = ctx.r4(xt, DType::F32, &op).unwrap();
    Runner::new(2).compute(&ctx.graph(&[y])).unwrap();
    let (status, message) = op.status().expect_err("the quantizer failed");
    eprintln!("op status {status}: {message}");
    assert_eq!(status, sys::QUAROT_ERR_CALLBACK);
    assert!(y.read_f32().iter().all(|v| v.is_nan()));
}

#[test]
fn real_quantization_is_refused() {
    let quant = sys::quarot_quant_config {
        kind: 2, // QUAROT_QUANT_REAL
        bits: 8,
        symmetric: 1,
        group_size: 0,
        clip_ratio: 1.0,
        custom: None,
        custom_user_data: std::ptr::null_mut(),
    };
    let err = Op::r4(128, 0, DType::F32, 0, Some(&quant))
        .err()
        .expect("refused");
    eprintln!("{err}");
    assert!(err.contains("QUAROT_QUANT_FAKE"));
}
