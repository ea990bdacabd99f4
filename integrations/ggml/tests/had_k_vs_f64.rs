//! Widths K * 2^m that ggml's FWHT cannot do (it needs a power of two): libquarot inside
//! ggml's thread pool against the f64 definition y = scale * (H_K ⊗ H_{2^m}) x, built in
//! the test from libquarot's H_K tables (`quarot::hadamard::k_matrix`) and a plain
//! Walsh-Hadamard (tests/common).
//!
//! Tolerance: libquarot computes in f32: log2(2^m) butterfly stages, then for each output a
//! sequential sum of K terms, then the scale; the sum's rounding errors grow like
//! sqrt(K) * u * (size of the partial sums). Seen: at most 10.3 u * max|y| for K = 172 (the
//! largest K QuaRot uses, f32 in) and 5.0 u for K = 28. The check allows TOL_ULPS = 32 units
//! of u = 2^-24 times the row's max|y| (3x margin); H_K the other way round is ~3 * 10^7
//! units off (checked below).
mod common;

use common::*;
use quarot_ggml::{sys, Context, DType, Op, Runner};

const TOL_ULPS: f64 = 32.0;

fn run(n: usize, rows: usize, dtype: DType, flags: u32) -> (Vec<f32>, Vec<f64>) {
    let x = Rng::new(n as u64 + dtype as u64).activations(rows, n);
    let (stored, exact) = store(&x, dtype);
    let op = Op::hadamard(0.0, flags).unwrap();
    let ctx = Context::new(rows * n * 8 + (8 << 20));
    let xt = ctx.tensor_2d(dtype, n, rows);
    write_stored(&xt, dtype, &stored);
    let y = ctx.hadamard(xt, DType::F32, &op).unwrap();
    Runner::new(2).compute(&ctx.graph(&[y])).unwrap();
    op.status().unwrap();
    (y.read_f32(), exact)
}

#[test]
fn had_k_widths_match_the_f64_definition() {
    for (n, k) in [(11008usize, 172usize), (14336, 28), (4864, 76)] {
        assert_eq!(quarot::hadamard::hadamard_k(n), Some(k));
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for flags in [0, sys::QUAROT_FLAG_TRANSPOSE_K] {
                let rows = 7;
                let (y, exact) = run(n, rows, dtype, flags);
                let scale = 1.0 / (n as f64).sqrt();
                let transpose = flags != 0;
                let want = hadamard_ref(&exact, n, scale, transpose);
                let e = err_row_ulps(&y, &want, n);
                eprintln!(
                    "n = {n} (K = {k}) {dtype:?} in, f32 out, flags {flags}: max |quarot - f64| = {e:.2} u (tolerance {TOL_ULPS})"
                );
                assert!(e <= TOL_ULPS, "n = {n} {dtype:?} flags {flags}");
                if k == 172 && dtype == DType::F32 {
                    // H_172 is not symmetric: the other orientation must fail the check.
                    let other = hadamard_ref(&exact, n, scale, !transpose);
                    let wrong = err_row_ulps(&y, &other, n);
                    eprintln!("  against H_K the other way round: {wrong:.3e} u");
                    assert!(wrong > 1000.0 * TOL_ULPS);
                }
            }
        }
    }
}

/// Builders refuse what cannot work, with libquarot's message.
#[test]
fn unsupported_widths_are_refused_when_building() {
    let ctx = Context::new(16 << 20);
    let op = Op::hadamard(0.0, 0).unwrap();
    let x = ctx.tensor_2d(DType::F32, 11000, 2);
    let err = ctx
        .hadamard(x, DType::F32, &op)
        .err()
        .expect("11000 is unsupported");
    eprintln!("{err}");
    assert!(
        err.contains("nearest supported widths: 10944, 11008"),
        "{err}"
    );
    let had_k = ctx.tensor_2d(DType::F32, 11008, 2);
    let err = ctx
        .fwht(had_k, None)
        .err()
        .expect("ggml's FWHT needs a power of two");
    eprintln!("{err}");
    let r4 = Op::r4(1536, 0, DType::F32, 0, None).unwrap();
    let err = ctx
        .r4(had_k, DType::F32, &r4)
        .err()
        .expect("width mismatch");
    eprintln!("{err}");
    assert!(
        Op::hadamard(0.0, 4).is_err(),
        "QUAROT_FLAG_PARALLEL is refused"
    );
}
