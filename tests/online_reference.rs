//! The online handles against the REAL AMD Quark 0.9 outputs in ../shared/reference:
//! - `QKRotation(apply_rotary_pos_emb)`: q, k of shape [1, heads, seq, head_dim] (a
//!   head-major layout for the handle), RoPE outputs stored as q_rope / k_rope; Quark 0.9
//!   then applies `hadamard_multiply` (zero-pad to a power of two, truncate: our
//!   QUAROT_FLAG_PAD_TRUNCATE with the normalized scale). The handle's RoPE callback writes
//!   Quark's RoPE outputs (the engine's RoPE is the engine's business); what is checked is
//!   the rotation the handle applies after it, against q_out / k_out.
//! - `R4Wrapper(Linear)`: the op must receive Quark's x_rot = matmul_hadU(x); with
//!   weight_rot rotated by libquarot from weight, op(x_rot) must give Quark's y.
//!
//! Tolerances are the transform's against the same Quark functions (tests/quark_reference.rs):
//! f32 within 16 * 2^-24 * max|row| (pad-truncate) and 4 * 2^-24 * max|row| (matmul_hadU);
//! bf16 within 1e-2 * max|row| (Quark computes bf16 in bf16 arithmetic; we round once).

mod common;

use common::{load_reference_manifest, read_reference_f32, read_reference_u16};
use half::bf16;
use quarot::hadamard::FLAG_PAD_TRUNCATE;
use quarot::online::{ActView, QkRotation, QkShape, Quant, R4Wrapper};
use quarot::rotate::{rotate_in_channels, HadamardLayout, HadamardRotation, Rotation};
use quarot::Element;
use serde_json::Value;

fn cases(func: &str) -> Vec<Value> {
    load_reference_manifest()
        .into_iter()
        .filter(|c| c["func"] == func)
        .collect()
}

fn file(c: &Value, array: &str) -> String {
    c["arrays"][array]["file"].as_str().unwrap().to_string()
}

fn usize_param(c: &Value, p: &str) -> usize {
    c["params"][p].as_u64().unwrap() as usize
}

/// An array as f32 values (bf16 widened exactly).
fn read(c: &Value, array: &str) -> Vec<f32> {
    match c["arrays"][array]["dtype"].as_str().unwrap() {
        "f32" => read_reference_f32(&file(c, array)),
        "bf16" => read_reference_u16(&file(c, array))
            .into_iter()
            .map(|b| bf16::from_bits(b).to_f32())
            .collect(),
        d => panic!("unexpected dtype {d}"),
    }
}

/// Largest |ours - quark| / max|row| over rows of width n.
fn worst_rel(ours: &[f32], quark: &[f32], n: usize) -> f64 {
    assert_eq!(ours.len(), quark.len());
    let mut worst = 0.0f64;
    for (a, b) in ours.chunks_exact(n).zip(quark.chunks_exact(n)) {
        let m = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
        let d = a.iter().zip(b).fold(0.0f64, |d, (x, y)| {
            d.max((f64::from(*x) - f64::from(*y)).abs())
        });
        if m > 0.0 {
            worst = worst.max(d / m);
        }
    }
    worst
}

fn qk_case<T: Element>(c: &Value, bar: f64) -> f64 {
    let id = c["id"].as_str().unwrap();
    let (d, nh, nkv, seq) = (
        usize_param(c, "head_dim"),
        usize_param(c, "num_heads"),
        usize_param(c, "num_kv_heads"),
        usize_param(c, "seq"),
    );
    let mut q: Vec<T> = read(c, "q").iter().map(|&v| T::from_f32(v)).collect();
    let mut k: Vec<T> = read(c, "k").iter().map(|&v| T::from_f32(v)).collect();
    let (q_rope, k_rope) = (read(c, "q_rope"), read(c, "k_rope"));
    let h = QkRotation::new(d, T::DTYPE, FLAG_PAD_TRUNCATE).unwrap();
    // [1, heads, seq, d]: token stride d, head stride seq * d.
    let shape = QkShape {
        tokens: seq,
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: d,
        q_token_stride: d,
        q_head_stride: seq * d,
        k_token_stride: d,
        k_head_stride: seq * d,
    };
    let (qp, kp) = (q.as_mut_ptr(), k.as_mut_ptr());
    let (ql, kl) = (q.len(), k.len());
    let mut rope = |_: &QkShape| {
        // SAFETY: the handle passes our q and k through.
        let (qs, ks) = unsafe {
            (
                std::slice::from_raw_parts_mut(qp, ql),
                std::slice::from_raw_parts_mut(kp, kl),
            )
        };
        for (o, &v) in qs.iter_mut().zip(&q_rope) {
            *o = T::from_f32(v);
        }
        for (o, &v) in ks.iter_mut().zip(&k_rope) {
            *o = T::from_f32(v);
        }
        0
    };
    // SAFETY: q and k hold the described heads.
    unsafe { h.forward(qp.cast(), kp.cast(), &shape, Some(&mut rope)) }.unwrap();
    let to32 = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    let wq = worst_rel(&to32(&q), &read(c, "q_out"), d);
    let wk = worst_rel(&to32(&k), &read(c, "k_out"), d);
    eprintln!("{id}: q {wq:.2e}, k {wk:.2e} of max|row| (bar {bar:.1e})");
    assert!(wq <= bar && wk <= bar, "{id}: q {wq:e}, k {wk:e} > {bar:e}");
    wq.max(wk)
}

#[test]
fn qk_rotation_matches_quark() {
    let all = cases("QKRotation");
    assert_eq!(all.len(), 4, "the reference has 4 QKRotation cases");
    for c in &all {
        match c["params"]["dtype"].as_str().unwrap() {
            "f32" => qk_case::<f32>(c, 16.0 * 2f64.powi(-24)),
            "bf16" => qk_case::<bf16>(c, 1e-2),
            d => panic!("unexpected dtype {d}"),
        };
    }
}

/// `bar_w`: weight_rot (Quark: matmul_hadU of each weight row in the weight's dtype; ours:
/// the exact f64 product rounded once, so the difference is Quark's own rounding, which
/// grows with K: 7.6 * 2^-24 * max|row| seen at K = 172); `bar_rot`: x_rot (the same
/// transform on both sides); `bar_y`: y.
fn r4_case<T: Element>(c: &Value, bar_w: f64, bar_rot: f64, bar_y: f64) {
    let id = c["id"].as_str().unwrap();
    let (n, m, rows) = (
        usize_param(c, "in_features"),
        usize_param(c, "out_features"),
        usize_param(c, "rows"),
    );
    let x: Vec<T> = read(c, "x").iter().map(|&v| T::from_f32(v)).collect();
    // weight_rot by libquarot: W * R, R the matmul_hadU matrix with Quark's scale.
    let mut w: Vec<T> = read(c, "weight").iter().map(|&v| T::from_f32(v)).collect();
    let rot = Rotation::Hadamard(HadamardRotation {
        n,
        layout: HadamardLayout::MatmulHadU,
        signs: None,
        scale: quarot::rotate::quark_hadamard_scale(n),
    });
    rotate_in_channels(&mut w, m, n, n, &rot, 0).unwrap();
    let w32: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
    let ww = worst_rel(&w32, &read(c, "weight_rot"), n);
    let bias = c["params"]["bias"]
        .as_bool()
        .unwrap()
        .then(|| read(c, "bias"));
    let handle = R4Wrapper::new(n, 0, T::DTYPE, 0, Quant::None).unwrap();
    let mut seen = Vec::new();
    let mut y = vec![0f64; rows * m];
    let mut op = |v: &ActView| {
        assert_eq!(v.dtype, T::DTYPE);
        for i in 0..v.rows {
            // SAFETY: the handle's contract.
            let row =
                unsafe { std::slice::from_raw_parts(v.data.cast::<T>().add(i * v.row_stride), n) };
            seen.extend(row.iter().map(|x| x.to_f32()));
            for o in 0..m {
                let mut s: f64 = (0..n)
                    .map(|j| f64::from(row[j].to_f32()) * f64::from(w32[o * n + j]))
                    .sum();
                if let Some(b) = &bias {
                    s += f64::from(b[o]);
                }
                y[i * m + o] = s;
            }
        }
        0
    };
    let mut xs = x.clone();
    // SAFETY: xs holds rows rows of n.
    unsafe { handle.forward(xs.as_mut_ptr().cast(), rows, n, 0, None, &mut op) }.unwrap();
    let wx = worst_rel(&seen, &read(c, "x_rot"), n);
    let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let wy = worst_rel(&y32, &read(c, "y"), m);
    eprintln!(
        "{id}: weight_rot {ww:.2e} (bar {bar_w:.1e}), x_rot {wx:.2e} (bar {bar_rot:.1e}); y {wy:.2e} (bar {bar_y:.1e}) of max|row|"
    );
    assert!(ww <= bar_w, "{id}: weight_rot off");
    assert!(wx <= bar_rot, "{id}: x_rot off");
    assert!(wy <= bar_y, "{id}: y off");
}

#[test]
fn r4_wrapper_matches_quark() {
    let all = cases("R4Wrapper");
    assert_eq!(all.len(), 4, "the reference has 4 R4Wrapper cases");
    for c in &all {
        match c["params"]["dtype"].as_str().unwrap() {
            // y: Quark sums in f32 (F.linear), we in f64 from the same rotated values.
            "f32" => r4_case::<f32>(c, 16.0 * 2f64.powi(-24), 4.0 * 2f64.powi(-24), 1e-5),
            "bf16" => r4_case::<bf16>(c, 1e-2, 1e-2, 3e-2),
            d => panic!("unexpected dtype {d}"),
        }
    }
}
