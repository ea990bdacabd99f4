//! An R4-style graph, as QuaRot rotates down_proj: offline, W's input channels are rotated
//! by libquarot (quarot_rotate_in_channels_hadamard, QUAROT_LAYOUT_MATMUL_HADU, scale
//! quarot_hadamard_scale(n)); online, an R4 op (quarot_r4_wrapper_forward on each ggml
//! worker's rows) rotates the activations, and ggml's own mul_mat does the rest:
//! y = mul_mat(W_rot, R4(x)) must equal the unrotated y = mul_mat(W, x).
//!
//! Tolerance, per output y[r][o], in units of u * ||w_o|| * ||x_r|| (u = 2^-24; |y| itself
//! is ~||w|| ||x|| / sqrt(n) for these random rows): rotating changes only rounding. Rounding
//! W_rot once from its f64 product alone may cost up to u/2 (Cauchy-Schwarz); the online
//! transform is within ~10 u of max|x'| per element (had_k_vs_f64); ggml's f32 dot products
//! round as for the unrotated graph, which is printed for comparison (~0.1-0.2 here).
//! TOL_F32 = 2 leaves ~8x margin over what is seen; a wrong rotation (H_K the other way
//! round in the weight) is ~10^6 off. With f16 activations the R4 op's output is rounded to
//! f16 (relative 2^-11 per element), which bounds the error by 2^-11 ||w|| ||x|| = 8192 u.
mod common;

use common::*;
use quarot_ggml::{sys, Context, DType, Op, Runner};

const TOL_F32: f64 = 2.0;

/// W (out x n) rotated in place by libquarot's offline path.
fn rotate_weight(w: &mut [f32], out: usize, n: usize, layout: i32) {
    // SAFETY: w holds out rows of n f32, row_stride n; no signs (NULL).
    let status = unsafe {
        sys::quarot_rotate_in_channels_hadamard(
            w.as_mut_ptr().cast(),
            DType::F32 as i32,
            out,
            n,
            n,
            n,
            layout,
            std::ptr::null(),
            sys::quarot_hadamard_scale(n) as f64,
            0,
        )
    };
    assert_eq!(status, 0, "{}", quarot_ggml::quarot_error(status));
}

struct Outcome {
    /// max over outputs of |y - y_f64| / (u ||w_o|| ||x_r||): the rotated graph.
    rotated: f64,
    /// the same for the unrotated ggml graph.
    plain: f64,
}

fn r4_graph(n: usize, out: usize, rows: usize, act: DType, layout: i32) -> Outcome {
    let mut rng = Rng::new(n as u64 * 3 + act as u64);
    let w: Vec<f32> = (0..out * n).map(|_| rng.uniform()).collect();
    let x = rng.activations(rows, n);
    let (stored, exact_x) = store(&x, act);
    let mut w_rot = w.clone();
    rotate_weight(&mut w_rot, out, n, layout);

    let op = Op::r4(n, 0, act, 0, None).unwrap();
    let ctx = Context::new((2 * out + 4 * rows) * n * 4 + (8 << 20));
    let wt = ctx.tensor_2d(DType::F32, n, out);
    wt.write(DType::F32, &w);
    let wrt = ctx.tensor_2d(DType::F32, n, out);
    wrt.write(DType::F32, &w_rot);
    let xt = ctx.tensor_2d(act, n, rows);
    write_stored(&xt, act, &stored);
    // ggml's f32 mul_mat takes f32 activations: for f16 rows the R4 op writes f32 rows,
    // and there is no unrotated ggml result to compare with (only the f64 one).
    let xr = ctx.r4(xt, DType::F32, &op).unwrap();
    let y_rot = ctx.mul_mat(wrt, xr);
    let y_plain = if act == DType::F32 {
        Some(ctx.mul_mat(wt, xt))
    } else {
        None
    };
    let mut outs = vec![y_rot];
    outs.extend(y_plain);
    Runner::new(2).compute(&ctx.graph(&outs)).unwrap();
    op.status().unwrap();
    let stats = op.stats();
    assert_eq!(stats.ith_mask, 0b11, "both ggml workers ran the R4 op");

    let err = |y: &[f32]| {
        let mut worst: f64 = 0.0;
        for r in 0..rows {
            let xr = &exact_x[r * n..(r + 1) * n];
            let xn = xr.iter().map(|v| v * v).sum::<f64>().sqrt();
            for o in 0..out {
                let wo = &w[o * n..(o + 1) * n];
                let want: f64 = wo.iter().zip(xr).map(|(a, b)| *a as f64 * b).sum();
                let wn = wo.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                worst = worst.max((y[r * out + o] as f64 - want).abs() / (U * wn * xn));
            }
        }
        worst
    };
    Outcome {
        rotated: err(&y_rot.read_f32()),
        plain: y_plain.map_or(f64::NAN, |y| err(&y.read_f32())),
    }
}

#[test]
fn rotated_down_proj_equals_unrotated() {
    for n in [1536usize, 11008] {
        let o = r4_graph(n, 48, 5, DType::F32, sys::QUAROT_LAYOUT_MATMUL_HADU);
        eprintln!(
            "n = {n} (K = {}) f32: |mul_mat(W_rot, R4(x)) - W x| = {:.3} u||w||||x||, unrotated ggml mul_mat {:.3} (tolerance {TOL_F32})",
            quarot::hadamard::hadamard_k(n).unwrap(),
            o.rotated,
            o.plain
        );
        assert!(o.rotated <= TOL_F32 && o.plain <= TOL_F32);
    }
}

#[test]
fn f16_activations() {
    let tol = (1u64 << 13) as f64 + TOL_F32; // 2^-11 / 2^-24
    for n in [1536usize, 11008] {
        let o = r4_graph(n, 16, 3, DType::F16, sys::QUAROT_LAYOUT_MATMUL_HADU);
        eprintln!(
            "n = {n} f16 activations: {:.1} u||w||||x|| (tolerance {tol})",
            o.rotated
        );
        assert!(o.rotated <= tol);
    }
}

/// The tolerance separates right from wrong: H_K transposed in the weight (K = 12 and 172
/// are not symmetric) breaks the identity by far more than it allows.
#[test]
fn wrong_weight_rotation_is_caught() {
    for n in [1536usize, 11008] {
        let o = r4_graph(n, 8, 2, DType::F32, sys::QUAROT_LAYOUT_MATMUL_HADU_T);
        eprintln!(
            "n = {n}, weight rotated with the transposed layout: {:.3e} u||w||||x||",
            o.rotated
        );
        assert!(o.rotated > 1000.0 * TOL_F32);
    }
}
