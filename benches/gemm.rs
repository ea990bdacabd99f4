//! Single-thread (and 2-thread) GFLOP/s of the rotation GEMM next to numpy / OpenBLAS.
//!
//!     cargo bench --bench gemm [-- --quick] [--isa avx512|avx2|scalar] [--runs N]
//!                              [--shapes MxKxN,MxKxN,...] [--types f32,f64] [--no-numpy]
//!
//! Cases (m x k x n): 4096 x 4096 x 4096 and the Llama-2-7B up/gate projection 11008 x 4096
//! x 4096 (W * R); `--quick` uses a 2048-row slice of the latter and 3 runs. For each case and
//! element type (f32, f64): ours on 1 thread, numpy on 1 thread, ours with the rows split over
//! 2 std::threads, numpy on 2 threads, alternating run by run; the median (and min) of the
//! runs is reported. Ours times `gemm` alone; packing B (done once per rotation matrix) is
//! timed separately. numpy runs in a persistent `python3` child per thread count, with
//! OPENBLAS_NUM_THREADS set and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (they force an
//! older, slower OpenBLAS kernel); the OpenBLAS kernel in use is printed (threadpoolctl, or
//! else asked of the loaded OpenBLAS library). If numpy is missing, only ours is timed.
//!
//! The gemm module is crate-private, so this bench compiles its source directly.

#![deny(unsafe_op_in_unsafe_fn)]

mod dispatch {
    pub use quarot::dispatch::*;
}
mod error {
    pub use quarot::error::*;
}
mod scratch {
    pub use quarot::scratch::*;
}
#[allow(dead_code)] // the bench uses only part of the module
#[path = "../src/gemm/mod.rs"]
mod gemm;

use dispatch::Isa;
use gemm::{gemm, PackedB, Real, Workspace};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

const NUMPY_SERVER: &str = r#"
import sys, time
try:
    import numpy as np
except ImportError:
    print("numpy not installed", flush=True)
    sys.exit(0)
def corename():
    # Without threadpoolctl: ask the OpenBLAS that numpy loaded for its kernel directly.
    import ctypes
    paths = sorted({l.split()[-1] for l in open("/proc/self/maps")
                    if "openblas" in l.lower() and ".so" in l})
    for path in paths:
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                    "openblas_get_corename64_", "openblas_get_corename"):
            f = getattr(lib, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return "OpenBLAS kernel %s (%s)" % (f().decode(), path.split("/")[-1])
    return "kernel unknown (no OpenBLAS loaded; numpy.show_config() tells the BLAS)"
try:
    from threadpoolctl import threadpool_info
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    info = "; ".join("%s %s, kernel %s, %s threads" % (p.get("internal_api"), p.get("version"),
                     p.get("architecture"), p.get("num_threads")) for p in blas) or corename()
except ImportError:
    info = corename()
except Exception as e:
    info = "kernel unknown (%s)" % e
print("ready numpy %s: %s" % (np.__version__, info), flush=True)
cache = {}
for line in sys.stdin:
    dt, m, k, n = line.split()
    dt = {"f32": "float32", "f64": "float64"}[dt]
    key = (dt, int(m), int(k), int(n))
    if key not in cache:
        cache.clear()
        rng = np.random.default_rng(1)
        a = rng.standard_normal((key[1], key[2])).astype(dt)
        b = rng.standard_normal((key[2], key[3])).astype(dt)
        c = np.empty((key[1], key[3]), dt)
        np.matmul(a, b, out=c)
        cache[key] = (a, b, c)
    a, b, c = cache[key]
    t = time.perf_counter()
    np.matmul(a, b, out=c)
    t = time.perf_counter() - t
    print(t, flush=True)
"#;

struct Numpy {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Numpy {
    /// A numpy server on `threads` OpenBLAS threads, or the reason there is none.
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
            .map_err(|e| format!("python3 not runnable: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim().to_string();
        match line.strip_prefix("ready ") {
            Some(info) => Ok((
                Numpy {
                    child,
                    stdin,
                    stdout,
                },
                info.to_string(),
            )),
            None => {
                let _ = child.wait();
                Err(if line.is_empty() {
                    "python3 failed".into()
                } else {
                    line
                })
            }
        }
    }

    /// Seconds of one `np.matmul` of this shape.
    fn time(&mut self, dtype: &str, m: usize, k: usize, n: usize) -> f64 {
        writeln!(self.stdin, "{dtype} {m} {k} {n}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().parse().expect("numpy server answered")
    }
}

impl Drop for Numpy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Our product of the m x k A with the packed B, rows split over `threads` threads.
fn ours<F: Real>(
    isa: Isa,
    threads: usize,
    m: usize,
    a: &[F],
    b: &PackedB<F>,
    c: &mut [F],
    ws: &mut [Workspace<F>],
) -> f64 {
    let (k, n) = (b.k(), b.n());
    let t = Instant::now();
    if threads == 1 {
        gemm(isa, m, a, k, b, c, n, &mut ws[0]).unwrap();
    } else {
        let rows = m.div_ceil(threads);
        std::thread::scope(|s| {
            for ((a, c), ws) in a
                .chunks(rows * k)
                .zip(c.chunks_mut(rows * n))
                .zip(ws.iter_mut())
            {
                s.spawn(move || gemm(isa, a.len() / k, a, k, b, c, n, ws).unwrap());
            }
        });
    }
    t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let h = v.len() / 2;
    if v.len() % 2 == 1 {
        v[h]
    } else {
        (v[h - 1] + v[h]) / 2.0
    }
}

/// Spot-check C against an f64 evaluation at a few entries.
fn spot_check<F: Real>(m: usize, k: usize, n: usize, a: &[F], b: &[f64], c: &[F]) {
    let eps = if std::mem::size_of::<F>() == 4 {
        6e-8
    } else {
        1.2e-16
    };
    for t in 0..16 {
        let (i, j) = ((t * 7919) % m, (t * 104_729) % n);
        let (mut want, mut mag) = (0.0, 0.0);
        for p in 0..k {
            let x = a[i * k + p].to_f64() * F::from_f64(b[p * n + j]).to_f64();
            want += x;
            mag += x.abs();
        }
        let got = c[i * n + j].to_f64();
        assert!(
            (got - want).abs() <= 2.0 * k as f64 * eps * mag,
            "C[{i}][{j}] = {got}, want {want}"
        );
    }
}

struct Opts {
    isa: Isa,
    runs: usize,
    shapes: Vec<(usize, usize, usize)>,
    numpy: bool,
}

#[allow(clippy::too_many_arguments)]
fn case<F: Real>(opts: &Opts, dtype: &str, m: usize, k: usize, n: usize, np: &mut [Option<Numpy>]) {
    let isa = opts.isa;
    let a: Vec<F> = values(m * k, 1).into_iter().map(F::from_f64).collect();
    let bsrc = values(k * n, 2);
    let t = Instant::now();
    let b = PackedB::<F>::new(isa, k, n, &bsrc, n, 1).unwrap();
    let pack_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut c = vec![F::ZERO; m * n];
    let mut ws: Vec<Workspace<F>> = (0..2).map(|_| Workspace::new()).collect();
    // Warm-up (grows the workspaces, faults the pages in), then check.
    ours(isa, 2, m, &a, &b, &mut c, &mut ws);
    ours(isa, 1, m, &a, &b, &mut c, &mut ws);
    spot_check(m, k, n, &a, &bsrc, &c);
    for p in np.iter_mut().flatten() {
        p.time(dtype, m, k, n);
    }
    let mut t: [Vec<f64>; 4] = Default::default();
    for _ in 0..opts.runs {
        t[0].push(ours(isa, 1, m, &a, &b, &mut c, &mut ws));
        if let Some(p) = np[0].as_mut() {
            t[1].push(p.time(dtype, m, k, n));
        }
        t[2].push(ours(isa, 2, m, &a, &b, &mut c, &mut ws));
        if let Some(p) = np[1].as_mut() {
            t[3].push(p.time(dtype, m, k, n));
        }
    }
    let flop = 2.0 * (m * k * n) as f64;
    let row = |who: &str, threads: usize, v: &mut Vec<f64>| {
        if v.is_empty() {
            return 0.0;
        }
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let med = median(v);
        println!(
            "{dtype}  {m:>5}x{k}x{n}  {who:<6} {threads}  {:>7.1}  {:>7.1}  {:>8.1}",
            flop / med / 1e9,
            flop / min / 1e9,
            med * 1e3
        );
        flop / med / 1e9
    };
    let o1 = row("ours", 1, &mut t[0]);
    let n1 = row("numpy", 1, &mut t[1]);
    let o2 = row("ours", 2, &mut t[2]);
    let n2 = row("numpy", 2, &mut t[3]);
    if n1 > 0.0 {
        println!(
            "{dtype}  {m:>5}x{k}x{n}  ours/numpy: {:.3} (1 thread), {:.3} (2 threads); B packing {:.0} ms",
            o1 / n1,
            o2 / n2,
            pack_ms
        );
    } else {
        println!("{dtype}  {m:>5}x{k}x{n}  B packing {pack_ms:.0} ms");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let isa = match arg("--isa") {
        Some(name) => *Isa::ALL
            .iter()
            .find(|i| i.name() == name)
            .expect("--isa avx512|avx2|scalar"),
        None => Isa::best(),
    };
    assert!(
        isa.is_available(),
        "{} is not available on this CPU",
        isa.name()
    );
    let shapes = match arg("--shapes") {
        Some(s) => s
            .split(',')
            .map(|t| {
                let v: Vec<usize> = t.split('x').map(|x| x.parse().expect("MxKxN")).collect();
                (v[0], v[1], v[2])
            })
            .collect(),
        None if quick => vec![(4096, 4096, 4096), (2048, 4096, 4096)],
        None => vec![(4096, 4096, 4096), (11008, 4096, 4096)],
    };
    let opts = Opts {
        isa,
        runs: arg("--runs").map_or(if quick { 3 } else { 5 }, |r| r.parse().expect("--runs N")),
        shapes,
        numpy: !args.iter().any(|a| a == "--no-numpy"),
    };
    let types: Vec<String> = arg("--types").map_or(vec!["f32".into(), "f64".into()], |t| {
        t.split(',').map(String::from).collect()
    });
    println!(
        "gemm bench: isa {}, {} runs per case (median, min)",
        isa.name(),
        opts.runs
    );
    let mut np: Vec<Option<Numpy>> = Vec::new();
    if opts.numpy {
        for threads in [1, 2] {
            match Numpy::start(threads) {
                Ok((p, info)) => {
                    println!("numpy ({threads} thread(s)): {info}");
                    np.push(Some(p));
                }
                Err(e) => {
                    println!("{e}");
                    np.push(None);
                }
            }
        }
    } else {
        np = vec![None, None];
    }
    println!("type  m x k x n            who   thr  GFLOP/s  (best)   ms (median)");
    for &(m, k, n) in &opts.shapes {
        for dtype in &types {
            match dtype.as_str() {
                "f32" => case::<f32>(&opts, "f32", m, k, n, &mut np),
                "f64" => case::<f64>(&opts, "f64", m, k, n, &mut np),
                other => panic!("unknown type {other}"),
            }
        }
    }
}
