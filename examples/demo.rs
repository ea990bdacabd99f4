//! A tour of the Rust API on built-in data: `cargo run --release --example demo`.

use half::bf16;
use quarot::{hadamard_k, hadamard_rows, normalized_scale, HadamardPlan, FLAG_TRANSPOSE_K};

/// (max|x|, rms) of a row.
fn peak_rms(x: &[f32]) -> (f32, f32) {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let rms = (x.iter().map(|v| (v * v) as f64).sum::<f64>() / x.len() as f64).sqrt();
    (max, rms as f32)
}

fn main() -> Result<(), quarot::Error> {
    let isa = quarot::dispatch::active_isa()?;
    println!("libquarot {}, active ISA: {}", quarot::VERSION, isa.name());

    // Hidden / MLP widths of Llama-2-7B, Llama-3-8B, Llama-2-13B, then head_dims.
    println!("\nwidth n -> K (n = K * 2^m):");
    for n in [4096, 11008, 14336, 5120, 13824, 64, 80, 96, 128] {
        let k = hadamard_k(n).expect("supported");
        println!("  n = {n:>5}: K = {k:>3}, 2^m = {}", n / k);
    }

    // A Llama-2-7B MLP activation row (n = 11008, K = 172) with two massive outliers.
    let n = 11008;
    let mut x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
        .collect();
    (x[1415], x[7301]) = (950.0, -480.0);
    let orig = x.clone();
    let s = normalized_scale(n);
    let (m0, r0) = peak_rms(&x);
    hadamard_rows(&mut x, 1, n, n, s, 0)?;
    let (m1, r1) = peak_rms(&x);
    println!("\nrotating one activation row, n = {n}:");
    println!(
        "  before: max|x| = {m0:8.3}, rms = {r0:.3}, max/rms = {:5.1}",
        m0 / r0
    );
    println!(
        "  after:  max|x| = {m1:8.3}, rms = {r1:.3}, max/rms = {:5.1}",
        m1 / r1
    );

    // The normalized transform is orthogonal: H_K^T (FLAG_TRANSPOSE_K) undoes it.
    let err = |y: &[f32]| {
        y.iter()
            .zip(&orig)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
    };
    let mut back = x.clone();
    hadamard_rows(&mut back, 1, n, n, s, FLAG_TRANSPOSE_K)?;
    let e = err(&back);
    println!(
        "  undo with FLAG_TRANSPOSE_K: max error {e:.2e} ({:.1e} of max|x|)",
        e / m0
    );
    hadamard_rows(&mut x, 1, n, n, s, 0)?;
    println!("  (H applied twice instead: max error {:.2e})", err(&x));

    // A bf16 batch: 4 rows of head_dim 128 in one call; row norms are preserved.
    let hd = 128;
    let mut q: Vec<bf16> = (0..4 * hd)
        .map(|i| bf16::from_f32((i % 7) as f32 * 0.25 - 0.75 + (i % hd == 5) as u8 as f32 * 8.0))
        .collect();
    let norms = |q: &[bf16]| -> Vec<f32> {
        let sq = |r: &[bf16]| r.iter().map(|v| v.to_f32().powi(2)).sum::<f32>();
        q.chunks(hd).map(|r| sq(r).sqrt()).collect()
    };
    let before = norms(&q);
    hadamard_rows(&mut q, 4, hd, hd, normalized_scale(hd), 0)?;
    println!(
        "\nbf16 batch, 4 x {hd}: row norms {before:.3?} -> {:.3?}",
        norms(&q)
    );
    let head: Vec<f32> = q[..6].iter().map(|v| v.to_f32()).collect();
    println!("  row 0 starts {head:?}");

    // Unsupported widths are rejected with the nearest supported ones.
    match HadamardPlan::new(11000, 0) {
        Ok(_) => println!("\nn = 11000 unexpectedly accepted"),
        Err(e) => println!("\nn = 11000 -> {:?} ({}): {e}", e.status, e.status as i32),
    }
    Ok(())
}
