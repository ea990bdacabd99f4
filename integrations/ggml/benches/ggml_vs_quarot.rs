//! libquarot inside ggml against ggml's own FWHT, side by side: the same input tensor, the
//! same persistent ggml thread pool, one node per graph. ggml: `mul_mat(rot, x)` with
//! GGML_HINT_SRC0_IS_HADAMARD (f32/f16 in, f32 out, 1/sqrtf(n)); libquarot: the normalized
//! transform as a custom op, f32/f16 in, f32 out. Each timing is one ggml_graph_compute
//! (plan included, as an engine runs it), after warm-up; runs of the two alternate.
//! Prints median and min ns per element and median(quarot) / median(ggml); asserts nothing.
//!
//! `cargo bench -p quarot-ggml` (QUAROT_GGML_BENCH_RUNS=<n> for more runs than 11).

use quarot_ggml::{Context, DType, Graph, Op, Runner};
use std::time::Instant;

const WARMUP: usize = 3;

fn runs() -> usize {
    std::env::var("QUAROT_GGML_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11)
        .max(9)
}

fn time_ns(runner: &mut Runner, graph: &Graph<'_>) -> f64 {
    let t = Instant::now();
    runner.compute(graph).expect("ggml_graph_compute");
    t.elapsed().as_nanos() as f64
}

struct Stat {
    median: f64,
    min: f64,
}

fn stat(mut v: Vec<f64>, elements: f64) -> Stat {
    v.sort_by(f64::total_cmp);
    Stat {
        median: v[v.len() / 2] / elements,
        min: v[0] / elements,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let runs = runs();
    let isa = quarot::dispatch::active_isa().map_or("?", |i| i.name());
    println!(
        "ggml {} (built with the flags of build.rs), libquarot {} ({isa}); {runs} runs after {WARMUP} warm-up; load average {}",
        quarot_ggml::ggml_version(),
        quarot::VERSION,
        load_average()
    );
    println!("ns/element = wall time of one graph compute / (rows * n); ratio = median quarot / median ggml (< 1: libquarot faster)");
    println!(
        "{:>7} {:>6} {:>5} {:>9} {:>3} | {:>14} {:>14} | {:>14} {:>14} | {:>6}",
        "n",
        "rows",
        "in",
        "in MiB",
        "thr",
        "ggml median",
        "ggml min",
        "quarot median",
        "quarot min",
        "ratio"
    );
    let op = Op::hadamard(0.0, 0).expect("op");
    // Four ~4 MiB cases (f32 input) and one of 64 MiB.
    let cases = [
        (128usize, 8192usize),
        (4096, 256),
        (16384, 64),
        (4096, 4096),
    ];
    for threads in [1usize, 2] {
        let mut runner = Runner::new(threads);
        for &(n, rows) in &cases {
            for dtype in [DType::F32, DType::F16] {
                let ctx = Context::new(rows * n * (dtype.size() + 8) + (8 << 20));
                let x = ctx.tensor_2d(dtype, n, rows);
                let mut seed = 0x1234_5678_u64;
                let values: Vec<f32> = (0..rows * n)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect();
                match dtype {
                    DType::F32 => x.write(dtype, &values),
                    _ => x.write(
                        dtype,
                        &values
                            .iter()
                            .map(|&v| half::f16::from_f32(v).to_bits())
                            .collect::<Vec<u16>>(),
                    ),
                }
                let yq = ctx.hadamard(x, DType::F32, &op).expect("quarot node");
                let yg = ctx.fwht(x, None).expect("ggml node");
                let (gq, gg) = (ctx.graph(&[yq]), ctx.graph(&[yg]));
                for _ in 0..WARMUP {
                    time_ns(&mut runner, &gg);
                    time_ns(&mut runner, &gq);
                }
                let (mut tq, mut tg) = (Vec::new(), Vec::new());
                for _ in 0..runs {
                    tg.push(time_ns(&mut runner, &gg));
                    tq.push(time_ns(&mut runner, &gq));
                }
                op.status().expect("no failure in the workers");
                let elements = (n * rows) as f64;
                let (g, q) = (stat(tg, elements), stat(tq, elements));
                println!(
                    "{:>7} {:>6} {:>5} {:>9.1} {:>3} | {:>14.3} {:>14.3} | {:>14.3} {:>14.3} | {:>6.2}",
                    n,
                    rows,
                    format!("{dtype:?}").to_lowercase(),
                    (n * rows * dtype.size()) as f64 / (1 << 20) as f64,
                    threads,
                    g.median,
                    g.min,
                    q.median,
                    q.min,
                    q.median / g.median
                );
            }
        }
    }
    println!("load average at the end: {}", load_average());
}
