//! Weight rotation throughput, in one run, side by side:
//!
//! 1. the dense path (`rotate_in_channels` with `Rotation::Dense`, f32 weights, R 4096 x 4096)
//!    in f64 mode (flags 0) and f32-accumulate mode (`ROTATE_FLAG_F32_ACCUMULATE`), on 1
//!    thread (no pool) and 2 threads (`FLAG_PARALLEL`, `set_num_threads(2)`), next to numpy /
//!    OpenBLAS `W @ R` of the same shape: sgemm (float32) beside the f32 mode, dgemm
//!    (float64) beside the f64 mode, with OPENBLAS_NUM_THREADS = 1 and 2;
//! 2. the Hadamard path (`Rotation::Hadamard`, layout MatmulHadU, scale 1/64, random signs)
//!    against the dense f64 path with the same matrix formed (`matrices::hadamard_matrix`);
//! 3. `rotate_out_channels` (dense, f64 mode, 1 thread) against `rotate_in_channels` on
//!    the same 4096 x 4096 weight.
//!
//!     cargo bench --bench rotate [-- --quick] [--no-numpy] [--runs N] [--sections 1,2,3] [--rows M,M]
//!
//! Method. GFLOP/s counts 2 * M * K * N flops (M = out_features, K = N = 4096). Ours is
//! timed around the whole call: checking and packing R, widening and rounding the weight,
//! the product. numpy
//! runs in one persistent `python3 -c` child per thread count (OPENBLAS_NUM_THREADS and
//! OMP_NUM_THREADS set, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its environment
//! only); it times `np.matmul(W, R, out=C)` alone with `time.perf_counter` after an untimed
//! warm-up product, and prints the seconds for this bench to parse. Ours and numpy alternate
//! run by run (ours 1 thread, numpy 1 thread, ours 2 threads, numpy 2 threads); each case
//! has one untimed warm-up round first. Figures are the median (and best) of the runs.
//! After each 2-thread numpy product the bench sleeps 0.25 s (untimed): OpenBLAS's idle
//! workers spin for about 0.12 s after a call and would otherwise take a core from ours.
//! Each case also reports the CPU time other processes used meanwhile (/proc/stat less this
//! process and its numpy children), as a share of the machine: the 2-thread rows are only
//! meaningful when it is near 0.
//!
//! R in section 1 is NOT orthogonal: uniform random entries scaled by sqrt(3 / n), so each
//! column has unit expected norm (E |x R|^2 = |x|^2) and the weight, rotated in place again
//! and again, stays O(1) (checked after the timed runs). `random_orthogonal` is O(n^3) and
//! takes about a minute at 4096; the dense product's speed does not depend on the values.
//!
//! Checks (untimed): the dense path (f64 mode, formed Hadamard matrix) and the Hadamard path
//! must give >= 99.9 % bit-identical elements on one 4096 x 4096 weight, or the bench stops;
//! the first product of every dense case and of the out path is spot-checked at 16 entries
//! against an f64 evaluation.

use quarot::rotate::matrices::{hadamard_matrix, random_signs};
use quarot::rotate::{
    rotate_in_channels, rotate_out_channels, HadamardLayout, HadamardRotation, Rotation,
    ROTATE_FLAG_F32_ACCUMULATE,
};
use quarot::{set_num_threads, FLAG_PARALLEL};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

/// Bench time above which the 11008-row f64 dense cases get 3 runs instead of 5.
const TIME_BUDGET_S: f64 = 300.0;

// ---------------------------------------------------------------- numpy

const NUMPY_SERVER: &str = r#"
import os, sys, time
try:
    import numpy as np
except ImportError:
    print("numpy: not installed", flush=True)
    sys.exit(0)
info = []
try:
    from threadpoolctl import threadpool_info
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    info += ["%s %s (%s), kernel %s, %s threads" % (p.get("internal_api"), p.get("version"),
             os.path.basename(p.get("filepath", "?")), p.get("architecture"),
             p.get("num_threads")) for p in blas] or ["threadpoolctl: no BLAS found"]
except Exception as e:
    info.append("threadpoolctl not available (%s)" % type(e).__name__)
try:
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info.append("build: %s %s [%s]" % (cfg.get("name"), cfg.get("version"),
                " ".join(str(cfg.get("openblas configuration", "")).split())))
except Exception as e:
    info.append("show_config: %s" % type(e).__name__)
info.append("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s OPENBLAS_NUM_THREADS=%s" % (
    os.environ.get("OPENBLAS_CORETYPE", "<unset>"), os.environ.get("OPENBLAS_L2_SIZE", "<unset>"),
    os.environ.get("OPENBLAS_NUM_THREADS", "<unset>")))
print("ready numpy %s: %s" % (np.__version__, "; ".join(info)), flush=True)
cache = {}
for line in sys.stdin:
    dt, m, k, n = line.split()
    key = ({"f32": "float32", "f64": "float64"}[dt], int(m), int(k), int(n))
    if key not in cache:
        cache.clear()
        rng = np.random.default_rng(1)
        w = rng.standard_normal((key[1], key[2])).astype(key[0])
        r = (rng.standard_normal((key[2], key[3])) / np.sqrt(key[2])).astype(key[0])
        c = np.empty((key[1], key[3]), key[0])
        np.matmul(w, r, out=c)  # warm-up: faults C in, starts the threads
        cache[key] = (w, r, c)
    w, r, c = cache[key]
    t = time.perf_counter()
    np.matmul(w, r, out=c)
    t = time.perf_counter() - t
    print(repr(t), flush=True)
"#;

struct Numpy {
    threads: usize,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Numpy {
    /// A numpy server on `threads` OpenBLAS threads and its configuration, or why not.
    fn start(threads: usize) -> Result<(Numpy, String), String> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(NUMPY_SERVER)
            .env_remove("OPENBLAS_CORETYPE")
            .env_remove("OPENBLAS_L2_SIZE")
            .env("OPENBLAS_NUM_THREADS", threads.to_string())
            .env("OMP_NUM_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("numpy: python3 not runnable ({e})"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim().to_string();
        match line.strip_prefix("ready ") {
            Some(info) => Ok((
                Numpy {
                    threads,
                    child,
                    stdin,
                    stdout,
                },
                info.to_string(),
            )),
            None => {
                let _ = child.wait();
                Err(if line.is_empty() {
                    "numpy: python3 failed".into()
                } else {
                    line
                })
            }
        }
    }

    /// Seconds of one `np.matmul` (m x k times k x n) in `dtype` ("f32" / "f64").
    ///
    /// After a multi-threaded product OpenBLAS's idle workers busy-wait for 2^28 TSC
    /// ticks (OPENBLAS_THREAD_TIMEOUT's default; about 0.12 s of CPU here) before they
    /// sleep, which would steal a core from whatever we time next: wait that out, untimed.
    fn time(&mut self, dtype: &str, m: usize, k: usize, n: usize) -> f64 {
        let t = self.time_once(dtype, m, k, n);
        if self.threads > 1 {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        t
    }

    fn time_once(&mut self, dtype: &str, m: usize, k: usize, n: usize) -> f64 {
        writeln!(self.stdin, "{dtype} {m} {k} {n}").expect("numpy server alive");
        self.stdin.flush().expect("numpy server alive");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("numpy server alive");
        line.trim().parse().expect("numpy server answered seconds")
    }
}

impl Drop for Numpy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- data and statistics

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn weight(m: usize, k: usize, seed: u64) -> Vec<f32> {
    values(m * k, seed).into_iter().map(|v| v as f32).collect()
}

/// Uniform entries scaled by sqrt(3 / n): every column has unit expected norm.
fn random_r(n: usize, seed: u64) -> Vec<f64> {
    let s = (3.0 / n as f64).sqrt();
    values(n * n, seed).into_iter().map(|v| v * s).collect()
}

#[derive(Clone, Copy, Default)]
struct Stats {
    med: f64,
    min: f64,
    n: usize,
}

fn stats(v: &[f64]) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let h = v.len() / 2;
    Stats {
        med: if v.len() % 2 == 1 {
            v[h]
        } else {
            (v[h - 1] + v[h]) / 2.0
        },
        min: v[0],
        n: v.len(),
    }
}

/// (non-finite count, rms) of a weight.
fn scan(w: &[f32]) -> (usize, f64) {
    let (mut bad, mut ss) = (0usize, 0f64);
    for &v in w {
        if v.is_finite() {
            ss += f64::from(v) * f64::from(v);
        } else {
            bad += 1;
        }
    }
    (bad, (ss / w.len().max(1) as f64).sqrt())
}

// ---------------------------------------------------------------- our calls

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    F64,
    F32Acc,
}

impl Mode {
    fn flag(self) -> u32 {
        match self {
            Mode::F64 => 0,
            Mode::F32Acc => ROTATE_FLAG_F32_ACCUMULATE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::F64 => "f64",
            Mode::F32Acc => "f32-acc",
        }
    }
    fn blas(self) -> &'static str {
        match self {
            Mode::F64 => "dgemm",
            Mode::F32Acc => "sgemm",
        }
    }
    fn numpy_dtype(self) -> &'static str {
        match self {
            Mode::F64 => "f64",
            Mode::F32Acc => "f32",
        }
    }
}

fn thread_flag(threads: usize) -> u32 {
    if threads > 1 {
        FLAG_PARALLEL
    } else {
        0
    }
}

/// Seconds of one in-place `rotate_in_channels` of the m x k weight.
fn time_in(w: &mut [f32], m: usize, k: usize, rot: &Rotation<'_>, flags: u32) -> f64 {
    let t = Instant::now();
    rotate_in_channels(black_box(w), m, k, k, rot, flags).expect("rotate_in_channels");
    t.elapsed().as_secs_f64()
}

/// Seconds of one in-place `rotate_out_channels` of the m x k weight (no bias).
fn time_out(w: &mut [f32], m: usize, k: usize, rot: &Rotation<'_>, flags: u32) -> f64 {
    let t = Instant::now();
    rotate_out_channels(black_box(w), m, k, k, None, rot, flags).expect("rotate_out_channels");
    t.elapsed().as_secs_f64()
}

/// Spot-check 16 entries of `got` = `w0` * R (in-channels, one block) or R^T * `w0`
/// (out-channels) against an f64 evaluation; R rounded to f32 first when `f32_r`.
/// Returns the worst |error| / (k * eps_acc * sum |terms| + half an f32 ulp), which must be <= 1.
#[allow(clippy::too_many_arguments)]
fn spot_check(
    what: &str,
    out_channels: bool,
    m: usize,
    k: usize,
    w0: &[f32],
    r: &[f64],
    got: &[f32],
    f32_acc: bool,
) -> f64 {
    let eps_acc = if f32_acc {
        2f64.powi(-24)
    } else {
        2f64.powi(-53)
    };
    let rv = |x: f64| if f32_acc { f64::from(x as f32) } else { x };
    let mut worst = 0f64;
    for t in 0..16usize {
        let (i, j) = ((t * 7919 + 3) % m, (t * 104_729 + 5) % k);
        let (mut want, mut mag) = (0f64, 0f64);
        for p in 0..k {
            let x = if out_channels {
                // out[i][j] = sum_p R[p][i] * w0[p][j] (m == k == r here).
                rv(r[p * k + i]) * f64::from(w0[p * k + j])
            } else {
                f64::from(w0[i * k + p]) * rv(r[p * k + j])
            };
            want += x;
            mag += x.abs();
        }
        let g = f64::from(got[i * k + j]);
        let half_ulp = f64::from((want as f32).abs()) * 2f64.powi(-24);
        let tol = 2.0 * k as f64 * eps_acc * mag + half_ulp * (1.0 + 1e-9) + 1e-300;
        let ratio = (g - want).abs() / tol;
        if ratio > 1.0 {
            eprintln!("FAILED spot check {what}: [{i}][{j}] = {g}, want {want} (tol {tol:.3e})");
            std::process::exit(1);
        }
        worst = worst.max(ratio);
    }
    worst
}

// ---------------------------------------------------------------- section 1

struct DenseCase {
    m: usize,
    mode: Mode,
    runs: usize,
    /// [ours 1T, numpy 1T, ours 2T, numpy 2T], seconds.
    t: [Vec<f64>; 4],
    check: f64,
    /// The warm-up calls, 1 and 2 threads, each right after `quarot_release_scratch`:
    /// what a first call costs (fresh scratch memory), seconds.
    cold: [f64; 2],
    rms: (f64, f64),
    bad: usize,
    wall: f64,
    others: f64,
}

fn dense_case(
    m: usize,
    n: usize,
    mode: Mode,
    runs: usize,
    r: &[f64],
    np: &mut [Option<Numpy>; 2],
) -> DenseCase {
    let t0 = Instant::now();
    let probe = Probe::now(np);
    eprintln!(
        "  dense {} {m} x {n}: warm-up + {runs} runs ...",
        mode.name()
    );
    let rot = Rotation::Dense { matrix: r, n };
    let mut w = weight(m, n, 7 + m as u64);
    let w0 = w.clone();
    let (_, rms0) = scan(&w);
    let flags = mode.flag();
    // Warm-up round (first product checked; each call on freshly released scratch, timed
    // as the first-call cost), then alternate.
    quarot::scratch::release();
    let cold1 = time_in(&mut w, m, n, &rot, flags);
    let check = spot_check("dense in", false, m, n, &w0, r, &w, mode == Mode::F32Acc);
    drop(w0);
    let dt = mode.numpy_dtype();
    if let Some(p) = np[0].as_mut() {
        p.time(dt, m, n, n);
    }
    quarot::scratch::release();
    let cold2 = time_in(&mut w, m, n, &rot, flags | FLAG_PARALLEL);
    if let Some(p) = np[1].as_mut() {
        p.time(dt, m, n, n);
    }
    let mut t: [Vec<f64>; 4] = Default::default();
    for _ in 0..runs {
        t[0].push(time_in(&mut w, m, n, &rot, flags));
        if let Some(p) = np[0].as_mut() {
            t[1].push(p.time(dt, m, n, n));
        }
        t[2].push(time_in(&mut w, m, n, &rot, flags | FLAG_PARALLEL));
        if let Some(p) = np[1].as_mut() {
            t[3].push(p.time(dt, m, n, n));
        }
    }
    let (bad, rms1) = scan(&w);
    DenseCase {
        m,
        mode,
        runs,
        t,
        check,
        cold: [cold1, cold2],
        rms: (rms0, rms1),
        bad,
        wall: t0.elapsed().as_secs_f64(),
        others: probe.others(np),
    }
}

// ---------------------------------------------------------------- section 2

struct HadCase {
    m: usize,
    threads: usize,
    had: Stats,
    dense: Stats,
    others: f64,
}

/// Hadamard path vs dense f64 with the formed matrix; per dense run, 3 Hadamard runs.
fn hadamard_case(
    m: usize,
    n: usize,
    runs: usize,
    had: &Rotation<'_>,
    formed: &Rotation<'_>,
) -> (Vec<HadCase>, (usize, f64, f64)) {
    eprintln!("  hadamard vs dense-formed {m} x {n}: warm-up + {runs} runs ...");
    let probe = Probe::now(&[]);
    let mut w = weight(m, n, 11 + m as u64);
    let (_, rms0) = scan(&w);
    let mut t: [Vec<f64>; 4] = Default::default(); // had 1T, dense 1T, had 2T, dense 2T
    for rep in 0..=runs {
        for (slot, threads) in [(0, 1), (2, 2)] {
            let flags = thread_flag(threads);
            let d = time_in(&mut w, m, n, formed, flags);
            let hs: Vec<f64> = (0..3).map(|_| time_in(&mut w, m, n, had, flags)).collect();
            if rep > 0 {
                t[slot + 1].push(d);
                t[slot].extend(hs);
            }
        }
    }
    let (bad, rms1) = scan(&w);
    let others = probe.others(&[]);
    (
        vec![
            HadCase {
                m,
                threads: 1,
                had: stats(&t[0]),
                dense: stats(&t[1]),
                others,
            },
            HadCase {
                m,
                threads: 2,
                had: stats(&t[2]),
                dense: stats(&t[3]),
                others,
            },
        ],
        (bad, rms0, rms1),
    )
}

// ---------------------------------------------------------------- environment

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn caches() -> String {
    (0..5)
        .filter_map(|i| {
            let d = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let rd = |f: &str| {
                std::fs::read_to_string(format!("{d}/{f}"))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            Some(format!(
                "L{}{} {}",
                rd("level")?,
                if rd("type")? == "Instruction" {
                    "i"
                } else {
                    ""
                },
                rd("size")?
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Busy and steal clock ticks of the whole machine so far (/proc/stat).
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// utime + stime clock ticks of a process (all its threads), or 0 if it is gone.
fn process_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| {
        f.get(i - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    if f.len() < 13 {
        0
    } else {
        at(14) + at(15)
    }
}

/// CPU use of the machine and of this bench (its own threads and the numpy children).
struct Probe {
    t: Instant,
    machine: u64,
    mine: u64,
}

impl Probe {
    fn now(np: &[Option<Numpy>]) -> Probe {
        Probe {
            t: Instant::now(),
            machine: machine_ticks().0,
            mine: process_ticks("self")
                + np.iter()
                    .flatten()
                    .map(|p| process_ticks(&p.child.id().to_string()))
                    .sum::<u64>(),
        }
    }

    /// Percent of the 2-core capacity used by other processes since `self`.
    fn others(&self, np: &[Option<Numpy>]) -> f64 {
        let now = Probe::now(np);
        let hz = clk_tck();
        let other = (now.machine - self.machine) as f64 - (now.mine - self.mine) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        (100.0 * other / hz / (cores * now.t.duration_since(self.t).as_secs_f64())).max(0.0)
    }
}

fn clk_tck() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| sh("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0))
}

/// FNV-1a of the sources compiled into this bench's libquarot: which version of the code
/// under concurrent tuning these figures are of.
fn fingerprint() -> String {
    let srcs: [(&str, &str); 4] = [
        ("rotate/mod.rs", include_str!("../src/rotate/mod.rs")),
        ("gemm/mod.rs", include_str!("../src/gemm/mod.rs")),
        ("gemm/kernel.rs", include_str!("../src/gemm/kernel.rs")),
        ("gemm/simd.rs", include_str!("../src/gemm/simd.rs")),
    ];
    srcs.iter()
        .map(|(name, s)| {
            let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("{name} {:08x}", h >> 32)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let use_numpy = !args.iter().any(|a| a == "--no-numpy");
    let runs_arg: Option<usize> = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--runs N"));
    let sections: Vec<u32> = args
        .iter()
        .position(|a| a == "--sections")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![1, 2, 3], |v| {
            v.split(',')
                .map(|x| x.parse().expect("--sections 1,2,3"))
                .collect()
        });
    let want = |s: u32| sections.contains(&s);
    // K = N = n; the two out_features of the Llama-2-7B shapes (11008 scaled down in --quick).
    let n: usize = if quick { 1024 } else { 4096 };
    let shapes: Vec<usize> = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![n, n * 11008 / 4096], |v| {
            v.split(',')
                .map(|x| x.parse().expect("--rows M,M"))
                .collect()
        });
    let runs = runs_arg.unwrap_or(if quick { 3 } else { 5 });
    let total = Instant::now();
    let ticks0 = machine_ticks();

    println!(
        "# libquarot {} weight rotation benchmark (dense vs numpy/OpenBLAS, Hadamard vs dense, out vs in)",
        quarot::VERSION
    );
    println!();
    println!("- date: {}", sh("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]));
    println!(
        "- CPU: {} ({} logical CPUs; {})",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        caches()
    );
    println!(
        "- active ISA: {}",
        quarot::dispatch::active_isa().map_or_else(|e| e.to_string(), |i| i.name().to_string())
    );
    let dir = env!("CARGO_MANIFEST_DIR");
    println!(
        "- git HEAD {}; uncommitted changes in src/ at run time: {}",
        sh("git", &["-C", dir, "rev-parse", "--short", "HEAD"]),
        match sh("git", &["-C", dir, "status", "--short", "src"]) {
            s if s.is_empty() => "none".to_string(),
            s => s.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    );
    println!("- compiled-in sources (FNV-1a): {}", fingerprint());
    println!("- load average at start: {}", loadavg());
    let busy = sh("pgrep", &["-c", "rustc"]);
    println!(
        "- rustc processes at start: {}",
        if busy.is_empty() { "0" } else { &busy }
    );
    println!(
        "- mode: {}",
        if quick {
            "--quick (K = N = 1024, M = 1024 / 2752)"
        } else {
            "full (K = N = 4096, M = 4096 / 11008)"
        }
    );

    println!("- sections: {sections:?}");
    let mut np: [Option<Numpy>; 2] = [None, None];
    if use_numpy && want(1) {
        for (slot, threads) in [(0, 1), (1, 2)] {
            match Numpy::start(threads) {
                Ok((p, info)) => {
                    println!("- numpy, OPENBLAS_NUM_THREADS={threads}: {info}");
                    np[slot] = Some(p);
                }
                Err(e) => {
                    println!("- {e}");
                    break;
                }
            }
        }
    } else {
        println!("- numpy: skipped (--no-numpy)");
    }
    println!();
    set_num_threads(2).expect("set_num_threads(2)");

    // ------------------------------------------------------------ correctness (untimed)
    eprintln!("  check: dense f64 (formed Hadamard) vs Hadamard path on {n} x {n} ...");
    let mut signs = vec![0i8; n];
    random_signs(&mut signs, 0);
    let hrot = HadamardRotation {
        n,
        layout: HadamardLayout::MatmulHadU,
        signs: Some(&signs),
        scale: 1.0 / (n as f64).sqrt(),
    };
    let mut hmat = vec![0f64; n * n];
    hadamard_matrix(&mut hmat, &hrot).expect("hadamard_matrix");
    let had = Rotation::Hadamard(hrot);
    let formed = Rotation::Dense { matrix: &hmat, n };
    let agree = {
        let w0 = weight(n, n, 5);
        let mut a = w0.clone();
        rotate_in_channels(&mut a, n, n, n, &had, FLAG_PARALLEL).expect("hadamard path");
        let cmp = |mode: Mode| {
            let mut b = w0.clone();
            rotate_in_channels(&mut b, n, n, n, &formed, mode.flag() | FLAG_PARALLEL)
                .expect("dense path");
            let same = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x.to_bits() == y.to_bits())
                .count();
            let amax = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let dmax = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            (100.0 * same as f64 / a.len() as f64, dmax / amax)
        };
        let f64_mode = cmp(Mode::F64);
        let f32_mode = cmp(Mode::F32Acc);
        if f64_mode.0 < 99.9 {
            println!(
                "FAILED: dense f64 and Hadamard paths agree on only {:.3} % of the elements",
                f64_mode.0
            );
            std::process::exit(1);
        }
        (f64_mode, f32_mode)
    };

    // ------------------------------------------------------------ section 1
    let r = random_r(n, 3);
    let mut dense = Vec::new();
    for (i, &m) in shapes.iter().enumerate().filter(|_| want(1)) {
        for mode in [Mode::F32Acc, Mode::F64] {
            let mut case_runs = runs;
            if i == 1 && mode == Mode::F64 && runs_arg.is_none() && !quick {
                // Project the rest of the bench from the small f64 case (ours + numpy, 1 and
                // 2 threads per round); the 11008-row cases cost 11008 / 4096 times as much.
                let small: &DenseCase = dense
                    .iter()
                    .find(|c: &&DenseCase| c.m == shapes[0] && c.mode == Mode::F64)
                    .expect("small f64 case ran");
                let scale = m as f64 / shapes[0] as f64;
                let round: f64 = small.t.iter().map(|v| stats(v).med).sum();
                let ours: f64 = stats(&small.t[0]).med + stats(&small.t[2]).med;
                let rest = |rr: usize| {
                    total.elapsed().as_secs_f64()
                        + scale * round * (rr + 1) as f64 // this case
                        + ours * (runs + 1) as f64 // section 2, small (dense side)
                        + scale * ours * (rr + 1) as f64 // section 2, large (dense side)
                        + 2.0 * stats(&small.t[0]).med * (runs + 1) as f64 // section 3
                };
                let projected = rest(runs);
                if projected > TIME_BUDGET_S {
                    case_runs = 3;
                    println!(
                        "- bench time projected at {projected:.0} s with {runs} runs of the {m} x {n} f64 cases (> {TIME_BUDGET_S:.0} s): using 3 runs there ({:.0} s projected)",
                        rest(3)
                    );
                } else {
                    println!(
                        "- bench time projected at {projected:.0} s with {runs} runs everywhere"
                    );
                }
            }
            dense.push(dense_case(m, n, mode, case_runs, &r, &mut np));
        }
    }
    let numpy_ticks: u64 = np
        .iter()
        .flatten()
        .map(|p| process_ticks(&p.child.id().to_string()))
        .sum();
    drop(np);

    // ------------------------------------------------------------ section 2
    let mut hads = Vec::new();
    let mut had_notes = Vec::new();
    for &m in shapes.iter().filter(|_| want(2)) {
        let f64_runs = dense
            .iter()
            .find(|c| c.m == m && c.mode == Mode::F64)
            .map_or(runs, |c| c.runs);
        let (lines, note) = hadamard_case(m, n, f64_runs, &had, &formed);
        hads.extend(lines);
        had_notes.push((m, f64_runs, note));
    }

    // ------------------------------------------------------------ section 3
    let probe3 = Probe::now(&[]);
    let (out_t, in_t, out_check, out_scan) = if !want(3) {
        let none = stats(&[]);
        (none, none, 0.0, (0, 0.0))
    } else {
        eprintln!("  out vs in, dense f64, {n} x {n}, 1 thread ...");
        let rot = Rotation::Dense { matrix: &r, n };
        let mut w = weight(n, n, 13);
        let w0 = w.clone();
        time_out(&mut w, n, n, &rot, 0);
        let check = spot_check("dense out", true, n, n, &w0, &r, &w, false);
        time_in(&mut w, n, n, &rot, 0);
        let (mut to, mut ti) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ti.push(time_in(&mut w, n, n, &rot, 0));
            to.push(time_out(&mut w, n, n, &rot, 0));
        }
        (stats(&to), stats(&ti), check, scan(&w))
    };
    let others3 = probe3.others(&[]);

    // ------------------------------------------------------------ report
    let gflops = |m: usize, s: f64| 2.0 * (m * n * n) as f64 / s / 1e9;
    if want(1) {
        println!();
        println!("## 1. Dense weight rotation vs numpy / OpenBLAS (W M x {n} f32, R {n} x {n})");
        println!();
        println!("GFLOP/s = 2 M K N / time: median (best); ms = median. Ours: `rotate_in_channels` in place on f32 weights (packing R, widening, rounding included); numpy: `np.matmul(W, R, out=C)` in float32 (sgemm) beside f32-acc, float64 (dgemm) beside f64. ratio = ours / OpenBLAS GFLOP/s (medians). others' CPU % = CPU time of other processes during the case, in % of the whole machine (anything above a few % disturbs the 2-thread rows).");
        println!();
        println!("| W (M x K) | ours mode | vs | threads | runs | ours GFLOP/s | ours ms | OpenBLAS GFLOP/s | OpenBLAS ms | ours / OpenBLAS | others' CPU % |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for c in &dense {
            for (threads, (o, b)) in [(1, (0, 1)), (2, (2, 3))] {
                let (so, sb) = (stats(&c.t[o]), stats(&c.t[b]));
                let (blas, ratio) = if sb.n > 0 {
                    (
                        format!(
                            "{:.1} ({:.1}) | {:.0}",
                            gflops(c.m, sb.med),
                            gflops(c.m, sb.min),
                            sb.med * 1e3
                        ),
                        // ours / OpenBLAS in GFLOP/s = OpenBLAS time / our time
                        format!("{:.2}", sb.med / so.med),
                    )
                } else {
                    ("- | -".to_string(), "-".to_string())
                };
                println!(
                "| {} x {n} | {} | {} | {threads} | {} | {:.1} ({:.1}) | {:.0} | {blas} | {ratio} | {:.1} |",
                c.m,
                c.mode.name(),
                c.mode.blas(),
                c.runs,
                gflops(c.m, so.med),
                gflops(c.m, so.min),
                so.med * 1e3,
                c.others,
            );
            }
        }
        println!();
        for c in &dense {
            println!(
            "- {} x {n} {}: {} runs (wall {:.0} s); first call on released scratch (quarot_release_scratch before it: fresh memory for packed R and panels): {:.0} ms on 1 thread, {:.0} ms on 2 ({:.1} / {:.1} GFLOP/s; the table's runs reuse the kept scratch); first product spot-checked vs f64 at 16 entries (worst error {:.2} of tolerance); rms {:.3} -> {:.3} after all runs{}",
            c.m,
            c.mode.name(),
            c.runs,
            c.wall,
            c.cold[0] * 1e3,
            c.cold[1] * 1e3,
            gflops(c.m, c.cold[0]),
            gflops(c.m, c.cold[1]),
            c.check,
            c.rms.0,
            c.rms.1,
            if c.bad > 0 {
                format!(", {} NON-FINITE", c.bad)
            } else {
                String::new()
            }
        );
        }
        if dense.iter().any(|c| c.runs < runs) {
            println!("- the 11008-row f64 cases ran 3 times (not {runs}): one f64 round there takes tens of seconds and the bench would pass the {TIME_BUDGET_S:.0} s budget");
        }
    }
    if want(2) {
        println!();
        println!(
            "## 2. Hadamard path vs dense f64 path with the formed matrix (in_features = {n})"
        );
        println!();
        println!("`Rotation::Hadamard` (MatmulHadU, scale 1/{}, random signs) vs `Rotation::Dense` of `hadamard_matrix` of the same rotation, f64 mode; alternating, 3 Hadamard runs per dense run. ms: median (best).", (n as f64).sqrt());
        println!();
        println!("| W (M x K) | threads | Hadamard ms | dense f64 ms | speedup (medians) | speedup (best) | >= 50x | others' CPU % |");
        println!("|---|---|---|---|---|---|---|---|");
        for h in &hads {
            let sp = h.dense.med / h.had.med;
            println!(
                "| {} x {n} | {} | {:.2} ({:.2}) | {:.0} ({:.0}) | {:.0}x | {:.0}x | {} | {:.1} |",
                h.m,
                h.threads,
                h.had.med * 1e3,
                h.had.min * 1e3,
                h.dense.med * 1e3,
                h.dense.min * 1e3,
                sp,
                h.dense.min / h.had.min,
                if sp >= 50.0 { "yes" } else { "NO" },
                h.others
            );
        }
        println!();
        println!(
        "- agreement (untimed, {n} x {n} weight, 2 threads): dense f64 vs Hadamard path {:.3} % bit-identical (max |diff| / max|y| {:.1e}; required >= 99.9 %); dense f32-acc vs Hadamard {:.3} % (max |diff| / max|y| {:.1e}, informative)",
        agree.0 .0, agree.0 .1, agree.1 .0, agree.1 .1
    );
        for (m, rr, (bad, r0, r1)) in &had_notes {
            println!(
            "- {m} x {n}: {rr} dense + {} Hadamard runs per thread count; rms {r0:.3} -> {r1:.3}{}",
            3 * rr,
            if *bad > 0 {
                format!(", {bad} NON-FINITE")
            } else {
                String::new()
            }
        );
        }
    }
    if want(3) {
        println!();
        println!("## 3. Out-channels vs in-channels, dense f64, W {n} x {n}, 1 thread");
        println!();
        println!("| path | runs | ms median (best) | GFLOP/s median | vs in |");
        println!("|---|---|---|---|---|");
        for (name, s) in [("rotate_in_channels", in_t), ("rotate_out_channels", out_t)] {
            println!(
                "| {name} | {} | {:.0} ({:.0}) | {:.1} | {:.3} |",
                s.n,
                s.med * 1e3,
                s.min * 1e3,
                gflops(n, s.med),
                s.med / in_t.med
            );
        }
        println!();
        println!("- others' CPU during this section: {others3:.1} % of the machine");
        println!(
        "- out path spot-checked vs f64 at 16 entries (worst error {out_check:.2} of tolerance); rms after all runs {:.3}{}",
        out_scan.1,
        if out_scan.0 > 0 {
            format!(", {} NON-FINITE", out_scan.0)
        } else {
            String::new()
        }
    );
    }
    println!();
    println!("- load average at end: {}", loadavg());
    let ticks1 = machine_ticks();
    let hz = clk_tck();
    let wall = total.elapsed().as_secs_f64();
    let ours = process_ticks("self") as f64 / hz;
    let others = (ticks1.0 - ticks0.0) as f64 / hz - ours - numpy_ticks as f64 / hz;
    println!(
        "- CPU time during the bench: this process {ours:.0} s, numpy {:.0} s, everything else {:.1} s ({:.1} % of the 2-core capacity), steal {:.1} s",
        numpy_ticks as f64 / hz,
        others.max(0.0),
        100.0 * others.max(0.0) / (2.0 * wall),
        (ticks1.1 - ticks0.1) as f64 / hz
    );
    println!("- total bench time: {:.0} s", total.elapsed().as_secs_f64());
}
