//! Power-of-two widths: libquarot's normalized transform, run as a ggml custom op on
//! ggml's thread pool (2 threads), against ggml's own FWHT (`mul_mat` + the hint
//! `GGML_HINT_SRC0_IS_HADAMARD`, as llama.cpp's `llama_mul_mat_hadamard`) on the same
//! tensors, and both against an f64 Walsh-Hadamard in natural (Sylvester) order.
//!
//! Tolerance: both compute in f32 with log2(n) butterfly stages of (a + b, a - b); ggml
//! multiplies the input by 1/sqrtf(n) first, libquarot the output by
//! quarot_hadamard_scale(n) last. When n is a power of 4 that scale is a power of two and
//! the results are bit-identical (seen: 0 difference at 64, 4096, 16384); otherwise they
//! differ by rounding only. Each stage rounds once, and the errors of an orthogonal
//! butterfly network add up like sqrt(log2 n) * u * rms(y) <= sqrt(log2 n) * u * max|y|.
//! Seen: at most ~4 u * max|y| between the two (n = 128) and ~3 u against f64. The check
//! allows TOL_ULPS = 16 units of u = 2^-24 times the row's max|y| (4x margin);
//! `tolerance_rejects_wrong_results` shows that a wrong order, a wrong scale or one element
//! 64 u off fail it.
mod common;

use common::*;
use quarot_ggml::{Context, DType, Op, Runner};

const THREADS: usize = 2;
/// Allowed |difference| in units of 2^-24 * max|y| of the row (see the module comment).
const TOL_ULPS: f64 = 16.0;

struct Errors {
    quarot_vs_ggml: f64,
    quarot_vs_f64: f64,
    ggml_vs_f64: f64,
}

fn ctx_bytes(rows: usize, n: usize) -> usize {
    rows * n * 16 + (8 << 20)
}

/// Run libquarot (f32 out) and ggml's FWHT on the same `rows` x `n` input of `dtype`.
fn compare(runner: &mut Runner, n: usize, rows: usize, dtype: DType) -> Errors {
    let mut rng = Rng::new(n as u64 * 1000 + dtype as u64);
    let x = rng.activations(rows, n);
    let (stored, exact) = store(&x, dtype);

    let op = Op::hadamard(0.0, 0).unwrap();
    let ctx = Context::new(ctx_bytes(rows, n));
    let xt = ctx.tensor_2d(dtype, n, rows);
    write_stored(&xt, dtype, &stored);
    let yq = ctx.hadamard(xt, DType::F32, &op).unwrap();
    let yg = ctx.fwht(xt, None).unwrap();
    runner.compute(&ctx.graph(&[yq, yg])).unwrap();
    op.status().unwrap();

    let (q, g) = (yq.read_f32(), yg.read_f32());
    let want = hadamard_ref(&exact, n, 1.0 / (n as f64).sqrt(), false);
    Errors {
        quarot_vs_ggml: err_row_ulps(&q, &to_f64(&g), n),
        quarot_vs_f64: err_row_ulps(&q, &want, n),
        ggml_vs_f64: err_row_ulps(&g, &want, n),
    }
}

#[test]
fn quarot_equals_ggml_fwht_on_power_of_two_widths() {
    let mut runner = Runner::new(THREADS);
    eprintln!("ggml {}", quarot_ggml::ggml_version());
    // Odd row counts, so that the two workers get different shares.
    for (n, rows) in [(64, 257), (128, 129), (4096, 17), (16384, 9)] {
        for dtype in [DType::F32, DType::F16] {
            let e = compare(&mut runner, n, rows, dtype);
            eprintln!(
                "n = {n:5} {dtype:?} in, f32 out: max |quarot - ggml| = {:.2} u, |quarot - f64| = {:.2} u, |ggml - f64| = {:.2} u (u = 2^-24 * max|y| of the row; tolerance {TOL_ULPS})",
                e.quarot_vs_ggml, e.quarot_vs_f64, e.ggml_vs_f64
            );
            assert!(
                e.quarot_vs_ggml <= TOL_ULPS,
                "n = {n} {dtype:?}: quarot vs ggml"
            );
            assert!(
                e.quarot_vs_f64 <= TOL_ULPS,
                "n = {n} {dtype:?}: quarot vs f64"
            );
            assert!(e.ggml_vs_f64 <= TOL_ULPS, "n = {n} {dtype:?}: ggml vs f64");
        }
    }
}

/// The orthonormal Sylvester matrix, as llama.cpp's ggml_gen_hadamard builds it.
fn sylvester(n: usize) -> Vec<f32> {
    let s = 1.0 / (n as f32).sqrt();
    (0..n * n)
        .map(|t| {
            let (i, j) = (t / n, t % n);
            if (i & j).count_ones() % 2 == 0 {
                s
            } else {
                -s
            }
        })
        .collect()
}

/// ggml's hint means "src0 is the Sylvester matrix": a plain dense ggml_mul_mat with that
/// matrix (no hint) gives the same rows as the FWHT and as libquarot. (H is symmetric, so
/// ggml's mul_mat orientation, y_r = H x_r, cannot hide a transposition.)
#[test]
fn ggml_fwht_is_the_sylvester_matrix() {
    let mut runner = Runner::new(THREADS);
    for n in [64usize, 128] {
        let rows = 31;
        let x = Rng::new(7 + n as u64).activations(rows, n);
        let op = Op::hadamard(0.0, 0).unwrap();
        let ctx = Context::new(ctx_bytes(rows, n) + n * n * 4);
        let h = ctx.tensor_2d(DType::F32, n, n);
        h.write(DType::F32, &sylvester(n));
        let xt = ctx.tensor_2d(DType::F32, n, rows);
        xt.write(DType::F32, &x);
        let dense = ctx.mul_mat(h, xt);
        let hinted = ctx.fwht(xt, Some(h)).unwrap();
        let placeholder = ctx.fwht(xt, None).unwrap();
        let q = ctx.hadamard(xt, DType::F32, &op).unwrap();
        runner
            .compute(&ctx.graph(&[dense, hinted, placeholder, q]))
            .unwrap();
        let dense = to_f64(&dense.read_f32());
        let hinted = hinted.read_f32();
        // A dense f32 dot product of n terms rounds more than the butterflies: allow n/4 u.
        let tol = TOL_ULPS.max(n as f64 / 4.0);
        let e_hint = err_row_ulps(&hinted, &dense, n);
        let e_q = err_row_ulps(&q.read_f32(), &dense, n);
        eprintln!("n = {n}: dense Sylvester mul_mat vs FWHT hint {e_hint:.2} u, vs libquarot {e_q:.2} u (tolerance {tol})");
        assert!(e_hint <= tol && e_q <= tol);
        // Without data the placeholder gives bit-identical results: src0 is never read.
        assert_eq!(placeholder.read_f32(), hinted);
    }
}

/// Rows that are a view with padding between them (nb[1] > ne[0] * element size), the
/// in-place op (ggml_map_custom1_inplace), and f16 in -> f16 out (ggml_map_custom1).
#[test]
fn strided_views_inplace_and_f16_output() {
    let mut runner = Runner::new(THREADS);
    let (n, rows, pad) = (4096usize, 13usize, 24usize);
    for dtype in [DType::F32, DType::F16] {
        let x = Rng::new(99).activations(rows, n);
        let (stored, _) = store(&x, dtype);
        let op = Op::hadamard(0.0, 0).unwrap();
        let ctx = Context::new(ctx_bytes(rows, n + pad) * 3);
        let es = dtype.size();
        let backing = ctx.tensor_2d(dtype, n + pad, rows);
        let view = ctx.view_2d(backing, n, rows, (n + pad) * es, pad / 2 * es);
        write_stored(&view, dtype, &stored);
        let copy = ctx.tensor_2d(dtype, n, rows);
        write_stored(&copy, dtype, &stored);

        let q = ctx.hadamard(view, DType::F32, &op).unwrap();
        let g = ctx.fwht(view, None).unwrap();
        let same_type = ctx.hadamard(view, dtype, &op).unwrap();
        let inplace = ctx.hadamard_inplace(copy, &op).unwrap();
        runner
            .compute(&ctx.graph(&[q, g, same_type, inplace]))
            .unwrap();
        op.status().unwrap();

        let g = g.read_f32();
        let e = err_row_ulps(&q.read_f32(), &to_f64(&g), n);
        eprintln!("{dtype:?} strided view: |quarot - ggml| = {e:.2} u");
        assert!(e <= TOL_ULPS);
        match dtype {
            DType::F32 => {
                let e = err_row_ulps(&inplace.read_f32(), &to_f64(&g), n);
                eprintln!("f32 in place: |quarot - ggml| = {e:.2} u");
                assert!(e <= TOL_ULPS);
                assert_eq!(same_type.read_f32(), q.read_f32());
            }
            _ => {
                // f16 out: one rounding of the f32 result, so within 1 f16 ulp of ggml's
                // f32 rows (0.5 for the rounding + the f32 difference, far below 0.5).
                for t in [same_type, inplace] {
                    let got: Vec<u16> = t.read(dtype);
                    for (b, want) in got.iter().zip(&g) {
                        let v = half::f16::from_bits(*b).to_f32();
                        let ulp = half::f16::from_f32(*want).to_f32().abs().max(6.1e-5) / 1024.0;
                        assert!((v - want).abs() <= ulp, "f16 output {v} vs {want}");
                    }
                }
            }
        }
    }
}

/// The check used above fails on wrong results: another row order of the Walsh matrix
/// (bit-reversed), the unnormalized transform, and a single element off by 4 * TOL.
#[test]
fn tolerance_rejects_wrong_results() {
    let mut runner = Runner::new(THREADS);
    let (n, rows) = (4096usize, 5usize);
    let x = Rng::new(5).activations(rows, n);
    let ok = Op::hadamard(0.0, 0).unwrap();
    let unnormalized = Op::hadamard(1.0, 0).unwrap();
    let ctx = Context::new(ctx_bytes(rows, n) * 2);
    let xt = ctx.tensor_2d(DType::F32, n, rows);
    xt.write(DType::F32, &x);
    let q = ctx.hadamard(xt, DType::F32, &ok).unwrap();
    let q1 = ctx.hadamard(xt, DType::F32, &unnormalized).unwrap();
    let g = ctx.fwht(xt, None).unwrap();
    runner.compute(&ctx.graph(&[q, q1, g])).unwrap();
    let (q, q1, g) = (q.read_f32(), q1.read_f32(), to_f64(&g.read_f32()));
    assert!(err_row_ulps(&q, &g, n) <= TOL_ULPS);

    let bits = n.trailing_zeros();
    let mut reversed = q.clone();
    for r in 0..rows {
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            reversed[r * n + j] = q[r * n + i];
        }
    }
    let mut one_off = q.clone();
    let row_max = q[..n].iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    one_off[17] += (4.0 * TOL_ULPS * U * row_max) as f32;
    for (what, wrong) in [
        ("bit-reversed order", &reversed),
        ("unnormalized", &q1),
        ("one element off", &one_off),
    ] {
        let e = err_row_ulps(wrong, &g, n);
        eprintln!("{what}: {e:.3e} u");
        assert!(e > TOL_ULPS, "{what} passed the check");
    }
}
