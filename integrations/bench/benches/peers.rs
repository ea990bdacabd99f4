//! libquarot's Hadamard transforms side by side with every CPU peer that can be had here,
//! all measured in the same run, next to the streaming bound of the same bytes.
//!
//!     cargo bench -p quarot-bench [-- OPTIONS]
//!
//! Prints a markdown report (ns per element: median (min); ratios ours / X of medians);
//! `--write` also writes it to BENCHMARKS.md at the repository root, with the plot
//! docs/bench.png. `--help` lists the options; the method is printed in the report.

use half::{bf16, f16};
use quarot::hadamard::{hadamard_rows, hadamard_rows_into};
use quarot::{hadamard_k, normalized_scale, rows_for_thread, DType, Element, FLAG_PARALLEL};
use quarot_bench::duo::Duo;
use quarot_bench::fht_cpu::FhtCpu;
use quarot_bench::reference::{check_row, reference, REL_TOL};
use quarot_bench::sysinfo::{self, Probe};
use quarot_bench::{as_f32, as_f32_mut, ffht, fill, row_f64, scan, stream, Arena, Buf, Stats};
use quarot_ggml::{Context, Graph, Runner, Tensor};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Elements of the ">= 256 MiB" batch ("big": 16384 x 4096 f32 = 256 MiB).
const BIG_ELEMENTS: usize = 1 << 26;
/// A sample is at least this many elements (back-to-back calls on the same rows).
const MIN_SAMPLE_ELEMENTS: usize = 1 << 17;
/// Longest untimed wait for spinning workers to go idle (sysinfo::quiesce).
const QUIESCE_MAX: Duration = Duration::from_secs(1);
/// Row padding of the strided layout, in elements (default; `--stride-pad`).
const STRIDE_PAD: usize = 64;
/// Rows of the width sweep (and of the plot); 2^20 is one vector.
const SWEEP_ROWS: usize = 64;

const POW2: [usize; 7] = [64, 128, 256, 4096, 8192, 16384, 1 << 20];
/// (K, 2^m) as the issue lists them; hadamard_k decides the K actually used.
const HADK: [(usize, usize); 14] = [
    (12, 256),
    (20, 512),
    (28, 512),
    (28, 1024),
    (108, 128),
    (172, 64),
    (156, 64),
    (140, 64),
    (60, 128),
    (52, 128),
    (36, 128),
    (40, 128),
    (44, 128),
    (20, 1),
];

// ------------------------------------------------------------------------------ cases

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Layout {
    Contig,
    Strided,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op {
    InPlace,
    Copy,
    ToF32,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Case {
    n: usize,
    rows: usize,
    dtype: DType,
    layout: Layout,
    op: Op,
    threads: usize,
}

fn tname(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::Bf16 => "bf16",
    }
}

impl Case {
    fn f32(n: usize, rows: usize) -> Case {
        Case {
            n,
            rows,
            dtype: DType::F32,
            layout: Layout::Contig,
            op: Op::InPlace,
            threads: 1,
        }
    }
    fn with(self, f: impl FnOnce(&mut Case)) -> Case {
        let mut c = self;
        f(&mut c);
        c
    }
    fn type_label(&self) -> String {
        match self.op {
            Op::ToF32 => format!("{}→f32", tname(self.dtype)),
            _ => tname(self.dtype).to_string(),
        }
    }
    fn op_label(&self) -> &'static str {
        match self.op {
            Op::InPlace => "in place",
            _ => "src→dst",
        }
    }
    fn layout_label(&self) -> &'static str {
        match self.layout {
            Layout::Contig => "contig",
            Layout::Strided => "strided",
        }
    }
    fn mib(&self) -> f64 {
        (self.rows * self.n * self.dtype.size()) as f64 / (1 << 20) as f64
    }
    fn short(&self) -> String {
        format!(
            "{} x {} {} {} {} {}T",
            self.rows,
            self.n,
            self.type_label(),
            self.layout_label(),
            self.op_label(),
            self.threads
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imp {
    Ours,
    Stream,
    Ffht,
    FhtCpu,
    Ggml,
    /// Rows split in two halves, each given to the serial transform, on the Duo.
    OursSplit,
}

const IMPS: [Imp; 6] = [
    Imp::Ours,
    Imp::Stream,
    Imp::Ffht,
    Imp::FhtCpu,
    Imp::Ggml,
    Imp::OursSplit,
];

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Ours => "ours",
            Imp::Stream => "stream",
            Imp::Ffht => "FFHT",
            Imp::FhtCpu => "fht-cpu",
            Imp::Ggml => "ggml",
            Imp::OursSplit => "ours split",
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
    /// Whether the implementation can compute this case at all.
    fn applies(self, c: &Case) -> bool {
        let pow2 = c.n.is_power_of_two();
        match self {
            Imp::Ours | Imp::Stream => true,
            Imp::OursSplit => c.threads == 2,
            // f32 only; in place (fht_float) or src -> dst (fht_float_oop); n >= 8.
            Imp::Ffht => pow2 && c.n >= 8 && c.dtype == DType::F32 && c.op != Op::ToF32,
            Imp::FhtCpu => pow2 && c.dtype == DType::F32 && c.op != Op::ToF32,
            // mul_mat with the Hadamard hint: f32 or f16 rows in, a new f32 tensor out.
            Imp::Ggml => {
                pow2 && match c.dtype {
                    DType::F32 => c.op == Op::Copy,
                    DType::F16 => c.op == Op::ToF32,
                    DType::Bf16 => false,
                }
            }
        }
    }
    /// Whether its in-place output is unnormalized (grows by sqrt(n) per call).
    fn unnormalized(self) -> bool {
        matches!(self, Imp::Ffht | Imp::FhtCpu)
    }
}

// ------------------------------------------------------------------------------ results

#[derive(Clone, Debug)]
enum Fig {
    /// The implementation cannot do this case.
    Na,
    /// Not installed.
    Missing,
    /// Disabled by --peers.
    Off,
    /// Setup or a run failed.
    Failed(String),
    Ok(Stats),
}

impl Fig {
    fn stats(&self) -> Option<Stats> {
        match self {
            Fig::Ok(s) => Some(*s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct CaseResult {
    figs: Vec<Fig>,
    checks: Vec<Option<Result<f64, String>>>,
    others: f64,
    notes: String,
    secs: f64,
}

// ------------------------------------------------------------------------------ env

struct Env {
    runs: usize,
    stride_pad: usize,
    duo: Duo,
    runners: Vec<Runner>,
    fhtcpu: Result<FhtCpu, String>,
    /// Peers enabled on the command line (ours and the stream are always on).
    enabled: [bool; 6],
}

impl Env {
    fn pids(&self) -> Vec<u32> {
        self.fhtcpu
            .as_ref()
            .map(|f| vec![f.pid()])
            .unwrap_or_default()
    }
    fn available(&self, imp: Imp) -> bool {
        self.enabled[imp.idx()]
            && match imp {
                Imp::Ffht => ffht::available(),
                Imp::FhtCpu => self.fhtcpu.is_ok(),
                _ => true,
            }
    }
}

/// Split rows into two balanced halves (quarot::rows_for_thread) and run `f` on each half,
/// the first on the calling thread, the second on the Duo helper: `f(part, rows_in_part)`,
/// rows `stride` apart in `part`. A single row runs on the calling thread alone (as
/// libquarot's FLAG_PARALLEL does).
fn split2<T: Send>(
    duo: &Duo,
    data: &mut [T],
    rows: usize,
    stride: usize,
    f: impl Fn(&mut [T], usize) + Sync,
) {
    if rows < 2 {
        return f(data, rows);
    }
    let (_, first) = rows_for_thread(rows, 0, 2).expect("2 parts");
    let cut = (first * stride).min(data.len());
    let (a, b) = data.split_at_mut(cut);
    let f = &f;
    duo.run(|| f(a, first), move || f(b, rows - first));
}

/// The same for a src -> dst pass.
fn split2_into<S: Sync, D: Send>(
    duo: &Duo,
    src: &[S],
    dst: &mut [D],
    rows: usize,
    stride: usize,
    f: impl Fn(&[S], &mut [D], usize) + Sync,
) {
    if rows < 2 {
        return f(src, dst, rows);
    }
    let (_, first) = rows_for_thread(rows, 0, 2).expect("2 parts");
    let (sa, sb) = src.split_at((first * stride).min(src.len()));
    let (da, db) = dst.split_at_mut((first * stride).min(dst.len()));
    let f = &f;
    duo.run(|| f(sa, da, first), move || f(sb, db, rows - first));
}

/// One pass of the streaming bound over the rows (whole buffer when contiguous).
fn stream_rows<S: Element, D: Element>(
    op: Op,
    src: &mut [S],
    dst: &mut [D],
    rows: usize,
    n: usize,
    stride: usize,
) {
    if rows == 0 {
        return;
    }
    let span = (rows - 1) * stride + n;
    if op == Op::InPlace {
        if stride == n {
            stream::inplace(&mut src[..span]);
        } else {
            for r in 0..rows {
                stream::inplace(&mut src[r * stride..][..n]);
            }
        }
    } else if stride == n {
        stream::into(&src[..span], &mut dst[..span]);
    } else {
        for r in 0..rows {
            stream::into(&src[r * stride..][..n], &mut dst[r * stride..][..n]);
        }
    }
}

fn stream_once<S: Element, D: Element>(
    c: &Case,
    duo: &Duo,
    src: &mut [S],
    dst: &mut [D],
    stride: usize,
) {
    let (op, n) = (c.op, c.n);
    if c.threads == 1 {
        stream_rows(op, src, dst, c.rows, n, stride);
    } else if op == Op::InPlace {
        split2(duo, src, c.rows, stride, |part, r| {
            stream_rows::<S, D>(op, part, &mut [], r, n, stride)
        });
    } else {
        // The src side is only read: split it as a shared slice.
        let src: &[S] = src;
        split2_into(duo, src, dst, c.rows, stride, |s, d, r| {
            if r > 0 {
                let span = (r - 1) * stride + n;
                if stride == n {
                    stream::into(&s[..span], &mut d[..span]);
                } else {
                    for i in 0..r {
                        stream::into(&s[i * stride..][..n], &mut d[i * stride..][..n]);
                    }
                }
            }
        });
    }
}

fn ours_once<S: Element, D: Element>(
    c: &Case,
    src: &mut [S],
    dst: &mut [D],
    stride: usize,
    scale: f32,
) -> Result<(), String> {
    let flags = if c.threads > 1 { FLAG_PARALLEL } else { 0 };
    if c.op == Op::InPlace {
        hadamard_rows(src, c.rows, c.n, stride, scale, flags)
    } else {
        hadamard_rows_into(src, stride, dst, stride, c.rows, c.n, scale, flags)
    }
    .map_err(|e| e.to_string())
}

fn ours_split_once<S: Element, D: Element>(
    c: &Case,
    duo: &Duo,
    src: &mut [S],
    dst: &mut [D],
    stride: usize,
    scale: f32,
) -> Result<(), String> {
    let n = c.n;
    let res = std::sync::Mutex::new(Ok(()));
    let keep = |r: Result<(), quarot::Error>| {
        if let Err(e) = r {
            *res.lock().unwrap() = Err(e.to_string());
        }
    };
    if c.op == Op::InPlace {
        split2(duo, src, c.rows, stride, |part, r| {
            keep(hadamard_rows(part, r, n, stride, scale, 0))
        });
    } else {
        let src: &[S] = src;
        split2_into(duo, src, dst, c.rows, stride, |s, d, r| {
            keep(hadamard_rows_into(s, stride, d, stride, r, n, scale, 0))
        });
    }
    res.into_inner().unwrap()
}

fn ffht_once<S: Element, D: Element>(
    c: &Case,
    duo: &Duo,
    src: &mut [S],
    dst: &mut [D],
    stride: usize,
) -> Result<(), String> {
    let n = c.n;
    if c.op == Op::InPlace {
        let x = as_f32_mut(src);
        if c.threads == 1 {
            return ffht::rows_inplace(x, c.rows, n, stride);
        }
        let res = std::sync::Mutex::new(Ok(()));
        split2(duo, x, c.rows, stride, |part, r| {
            if let Err(e) = ffht::rows_inplace(part, r, n, stride) {
                *res.lock().unwrap() = Err(e);
            }
        });
        res.into_inner().unwrap()
    } else {
        let (s, d) = (as_f32(src), as_f32_mut(dst));
        if c.threads == 1 {
            return ffht::rows_into(s, stride, d, stride, c.rows, n);
        }
        let res = std::sync::Mutex::new(Ok(()));
        split2_into(duo, s, d, c.rows, stride, |s, d, r| {
            if let Err(e) = ffht::rows_into(s, stride, d, stride, r, n) {
                *res.lock().unwrap() = Err(e);
            }
        });
        res.into_inner().unwrap()
    }
}

/// Multiply the rows by `s` (untimed renormalization of FFHT's in-place output).
fn scale_rows(x: &mut [f32], rows: usize, n: usize, stride: usize, s: f32) {
    for r in 0..rows {
        for v in &mut x[r * stride..][..n] {
            *v *= s;
        }
    }
}

/// Rows `idx` (as f64, multiplied by `factor`) against the reference of `inputs`.
fn compare(got: &[Vec<f64>], inputs: &[Vec<f64>], out: DType, factor: f64) -> Result<f64, String> {
    let mut worst = 0f64;
    for (i, (g, x)) in got.iter().zip(inputs).enumerate() {
        let g: Vec<f64> = g.iter().map(|v| v * factor).collect();
        let w = check_row(&g, &reference(x), out).map_err(|e| format!("check row #{i}: {e}"))?;
        worst = worst.max(w);
    }
    Ok(worst)
}

fn run_case<S: Element, D: Element>(
    c: &Case,
    env: &mut Env,
    arenas: &mut [Arena; 2],
) -> CaseResult {
    let t_case = Instant::now();
    let (n, rows) = (c.n, c.rows);
    let stride = match c.layout {
        Layout::Contig => n,
        Layout::Strided => n + env.stride_pad,
    };
    let inplace = c.op == Op::InPlace;
    let [a_src, a_dst] = arenas;
    let src: &mut [S] = a_src.slice(rows * stride);
    fill(src, rows, n, stride, (n as u64) * 1_000_003 + rows as u64);
    let dst: &mut [D] = a_dst.slice(if inplace { 0 } else { rows * stride });
    let check_idx = [0, rows / 2, rows - 1];
    let initial: Vec<Vec<f64>> = check_idx
        .iter()
        .map(|&r| row_f64(&*src, r, n, stride))
        .collect();
    let (_, sub0) = scan(&*src, rows, n, stride);

    let mut figs: Vec<Fig> = vec![Fig::Na; IMPS.len()];
    let mut checks: Vec<Option<Result<f64, String>>> = vec![None; IMPS.len()];
    let mut active: Vec<Imp> = Vec::new();
    for imp in IMPS {
        if !imp.applies(c) {
            continue;
        }
        if !env.enabled[imp.idx()] {
            figs[imp.idx()] = Fig::Off;
        } else if env.available(imp) {
            active.push(imp);
        } else {
            figs[imp.idx()] = Fig::Missing;
        }
    }
    let fail = |figs: &mut Vec<Fig>, active: &mut Vec<Imp>, imp: Imp, e: String| {
        eprintln!("    {} failed: {e}", imp.name());
        figs[imp.idx()] = Fig::Failed(e);
        active.retain(|&a| a != imp);
    };

    // ---------------------------------------------------------------- peers' own copies
    let values_f32 = |src: &[S]| -> Vec<f32> {
        (0..rows)
            .flat_map(|r| src[r * stride..][..n].iter().map(|v| v.to_f32()))
            .collect()
    };
    if active.contains(&Imp::FhtCpu) {
        let op = if inplace { "inplace" } else { "copy" };
        let vals = as_f32(&*src);
        let r = env
            .fhtcpu
            .as_mut()
            .map_err(|e| e.clone())
            .and_then(|f| f.setup(vals, stride, rows, n, stride, op, c.threads));
        if let Err(e) = r {
            fail(&mut figs, &mut active, Imp::FhtCpu, e);
        }
    }
    let gtype = match S::DTYPE {
        DType::F32 => quarot_ggml::DType::F32,
        DType::F16 => quarot_ggml::DType::F16,
        DType::Bf16 => quarot_ggml::DType::BF16,
    };
    let ctx = active
        .contains(&Imp::Ggml)
        .then(|| Context::new(rows * stride * S::DTYPE.size() + rows * n * 4 + (8 << 20)));
    let mut gg: Option<(Tensor<'_>, Graph<'_>)> = None;
    if let Some(ctx) = ctx.as_ref() {
        let base = ctx.tensor_2d(gtype, stride, rows);
        let x = if stride == n {
            base
        } else {
            ctx.view_2d(base, n, rows, stride * S::DTYPE.size(), 0)
        };
        match S::DTYPE {
            DType::F32 if stride == n => x.write(gtype, &as_f32(&*src)[..rows * n]),
            DType::F32 => x.write(gtype, &values_f32(&*src)),
            _ if stride == n => x.write(gtype, quarot_bench::as_bits(&src[..rows * n])),
            _ => {
                let bits: Vec<u16> = (0..rows)
                    .flat_map(|r| quarot_bench::as_bits(&src[r * stride..][..n]).to_vec())
                    .collect();
                x.write(gtype, &bits)
            }
        }
        match ctx.fwht(x, None) {
            Ok(y) => gg = Some((y, ctx.graph(&[y]))),
            Err(e) => fail(&mut figs, &mut active, Imp::Ggml, e),
        }
    }

    let t_setup = t_case.elapsed().as_secs_f64();
    // ---------------------------------------------------------------- checks (untimed)
    let scale = normalized_scale(n);
    let rsqrt_n = 1.0 / (n as f64).sqrt();
    for imp in active.clone() {
        let res: Result<f64, String> = match imp {
            Imp::Stream => continue,
            Imp::Ours => {
                let before: Vec<Vec<f64>> = check_idx
                    .iter()
                    .map(|&r| row_f64(&*src, r, n, stride))
                    .collect();
                ours_once(c, &mut *src, &mut *dst, stride, scale).and_then(|()| {
                    let got: Vec<Vec<f64>> = check_idx
                        .iter()
                        .map(|&r| {
                            if inplace {
                                row_f64(&*src, r, n, stride)
                            } else {
                                row_f64(&*dst, r, n, stride)
                            }
                        })
                        .collect();
                    compare(&got, &before, D::DTYPE, 1.0)
                })
            }
            Imp::OursSplit => {
                let before: Vec<Vec<f64>> = check_idx
                    .iter()
                    .map(|&r| row_f64(&*src, r, n, stride))
                    .collect();
                ours_split_once(c, &env.duo, &mut *src, &mut *dst, stride, scale).and_then(|()| {
                    let got: Vec<Vec<f64>> = check_idx
                        .iter()
                        .map(|&r| {
                            if inplace {
                                row_f64(&*src, r, n, stride)
                            } else {
                                row_f64(&*dst, r, n, stride)
                            }
                        })
                        .collect();
                    compare(&got, &before, D::DTYPE, 1.0)
                })
            }
            Imp::Ffht => {
                let before: Vec<Vec<f64>> = check_idx
                    .iter()
                    .map(|&r| row_f64(&*src, r, n, stride))
                    .collect();
                ffht_once(c, &env.duo, &mut *src, &mut *dst, stride).and_then(|()| {
                    let got: Vec<Vec<f64>> = check_idx
                        .iter()
                        .map(|&r| {
                            if inplace {
                                row_f64(&*src, r, n, stride)
                            } else {
                                row_f64(&*dst, r, n, stride)
                            }
                        })
                        .collect();
                    if inplace {
                        scale_rows(as_f32_mut(&mut *src), rows, n, stride, rsqrt_n as f32);
                    }
                    compare(&got, &before, DType::F32, rsqrt_n)
                })
            }
            Imp::FhtCpu => env
                .fhtcpu
                .as_mut()
                .map_err(|e| e.clone())
                .and_then(|f| f.check(n))
                .and_then(|got| {
                    let got: Vec<Vec<f64>> = got
                        .iter()
                        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
                        .collect();
                    compare(&got, &initial, DType::F32, rsqrt_n)
                }),
            Imp::Ggml => {
                let (y, g) = gg.as_ref().expect("ggml graph");
                env.runners[c.threads - 1]
                    .compute(g)
                    .map_err(|s| format!("ggml_graph_compute: status {s}"))
                    .and_then(|()| {
                        // Three one-row views: reading all of y would fault in a
                        // fresh copy of it.
                        let ctx = ctx.as_ref().expect("ggml context");
                        let got: Vec<Vec<f64>> = check_idx
                            .iter()
                            .map(|&r| {
                                ctx.view_2d(*y, n, 1, n * 4, r * n * 4)
                                    .read_f32()
                                    .iter()
                                    .map(|&v| f64::from(v))
                                    .collect()
                            })
                            .collect();
                        compare(&got, &initial, DType::F32, 1.0)
                    })
            }
        };
        if let Err(e) = &res {
            eprintln!("    CHECK FAILED: {} {}: {e}", c.short(), imp.name());
        }
        checks[imp.idx()] = Some(res);
    }

    let t_checks = t_case.elapsed().as_secs_f64();
    // ---------------------------------------------------------------- timing
    let base_iters = MIN_SAMPLE_ELEMENTS.div_ceil(rows * n).max(1);
    // Unnormalized in-place output grows by sqrt(n) per call: keep it below ~2^120.
    let cap = (220 / n.trailing_zeros().max(1) as usize)
        .saturating_sub(1)
        .max(1);
    let iters: Vec<usize> = IMPS
        .iter()
        .map(|imp| {
            if inplace && imp.unnormalized() {
                base_iters.min(cap)
            } else {
                base_iters
            }
        })
        .collect();
    let pids = env.pids();
    let probe = Probe::now(&pids);
    let elements = (rows * n) as f64;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); IMPS.len()];
    let waited = {
        let duo = &env.duo;
        let runners = &mut env.runners;
        let fhtcpu = &mut env.fhtcpu;
        let (src_s, dst_s) = (&mut *src, &mut *dst);
        let mut run = |imp: Imp, it: usize| -> Result<f64, String> {
            match imp {
                Imp::Ours => {
                    let t = Instant::now();
                    for _ in 0..it {
                        ours_once(c, &mut *src_s, &mut *dst_s, stride, scale)?;
                    }
                    Ok(t.elapsed().as_secs_f64())
                }
                Imp::OursSplit => {
                    let t = Instant::now();
                    for _ in 0..it {
                        ours_split_once(c, duo, &mut *src_s, &mut *dst_s, stride, scale)?;
                    }
                    Ok(t.elapsed().as_secs_f64())
                }
                Imp::Stream => {
                    let t = Instant::now();
                    for _ in 0..it {
                        stream_once(c, duo, &mut *src_s, &mut *dst_s, stride);
                    }
                    Ok(t.elapsed().as_secs_f64())
                }
                Imp::Ffht => {
                    let t = Instant::now();
                    for _ in 0..it {
                        ffht_once(c, duo, &mut *src_s, &mut *dst_s, stride)?;
                    }
                    let e = t.elapsed().as_secs_f64();
                    if inplace {
                        let s = (n as f64).powf(-(it as f64) / 2.0) as f32;
                        scale_rows(as_f32_mut(&mut *src_s), rows, n, stride, s);
                    }
                    Ok(e)
                }
                Imp::FhtCpu => fhtcpu
                    .as_mut()
                    .map_err(|e| e.clone())
                    .and_then(|f| f.time(it)),
                Imp::Ggml => {
                    let (_, g) = gg.as_ref().expect("ggml graph");
                    let runner = &mut runners[c.threads - 1];
                    let t = Instant::now();
                    for _ in 0..it {
                        runner
                            .compute(g)
                            .map_err(|s| format!("ggml_graph_compute: status {s}"))?;
                    }
                    Ok(t.elapsed().as_secs_f64())
                }
            }
        };
        // Warm-up: at least 2 samples and 10 ms per implementation.
        for imp in active.clone() {
            let t0 = Instant::now();
            let mut k = 0;
            while k < 2 || t0.elapsed() < Duration::from_millis(10) {
                if let Err(e) = run(imp, iters[imp.idx()]) {
                    fail(&mut figs, &mut active, imp, e);
                    break;
                }
                k += 1;
            }
        }
        // Nothing of ours may still be spinning (ggml's workers poll ~0.1 s after a graph).
        let mut waited = sysinfo::quiesce(&pids, QUIESCE_MAX);
        for rep in 0..env.runs {
            let order = active.clone();
            for j in 0..order.len() {
                let imp = order[(j + rep) % order.len()];
                if !active.contains(&imp) {
                    continue;
                }
                let it = iters[imp.idx()];
                if c.threads > 1 {
                    // Let the previous implementation's spinning workers go idle, then
                    // wake this one's (an untimed sample): each is timed hot, as in an
                    // engine's back-to-back calls, and undisturbed by the others.
                    waited += sysinfo::quiesce(&pids, QUIESCE_MAX);
                    if let Err(e) = run(imp, it) {
                        fail(&mut figs, &mut active, imp, e);
                        continue;
                    }
                }
                match run(imp, it) {
                    Ok(s) => samples[imp.idx()].push(s * 1e9 / (it as f64 * elements)),
                    Err(e) => fail(&mut figs, &mut active, imp, e),
                }
            }
        }
        waited
    };
    let others = probe.others(&pids);
    eprintln!(
        "    setup {t_setup:.1} s, checks {:.1} s, warm-up + rounds {:.1} s (of which {:.2} s waiting for idle workers)",
        t_checks - t_setup,
        t_case.elapsed().as_secs_f64() - t_checks,
        waited.as_secs_f64()
    );
    for imp in &active {
        figs[imp.idx()] = Fig::Ok(Stats::of(&samples[imp.idx()]));
    }
    if let Ok(f) = env.fhtcpu.as_mut() {
        if Imp::FhtCpu.applies(c) {
            f.free();
        }
    }
    // dst is not scanned: the stream pass may be its last writer (for 16-bit → f32 it
    // writes bit patterns, not values); the checks cover what the transforms write there.
    let (bad1, sub1) = scan(&*src, rows, n, stride);
    let mut notes = String::new();
    if sub0 + sub1 > 0 {
        let _ = write!(notes, "{sub0} → {sub1} subnormal");
    }
    if bad1 > 0 {
        let _ = write!(
            notes,
            "{}{bad1} NON-FINITE",
            if notes.is_empty() { "" } else { ", " }
        );
    }
    CaseResult {
        figs,
        checks,
        others,
        notes,
        secs: t_case.elapsed().as_secs_f64(),
    }
}

fn run_any(c: &Case, env: &mut Env, arenas: &mut [Arena; 2]) -> CaseResult {
    match (c.dtype, c.op) {
        (DType::F32, _) => run_case::<f32, f32>(c, env, arenas),
        (DType::F16, Op::ToF32) => run_case::<f16, f32>(c, env, arenas),
        (DType::F16, _) => run_case::<f16, f16>(c, env, arenas),
        (DType::Bf16, Op::ToF32) => run_case::<bf16, f32>(c, env, arenas),
        (DType::Bf16, _) => run_case::<bf16, bf16>(c, env, arenas),
    }
}

// ------------------------------------------------------------------------------ targets

#[derive(Clone, Copy)]
enum Goal {
    /// ns per element at most.
    Ns(f64),
    /// at most this multiple of the streaming bound measured in the same case.
    Stream(f64),
    /// µs per vector (row) at most.
    UsPerRow(f64),
}

struct Target {
    label: &'static str,
    case: Case,
    goal: Goal,
}

fn targets() -> Vec<Target> {
    let big = Case::f32(4096, 16384);
    vec![
        Target {
            label: "16384 × 4096 f32 (256 MiB)",
            case: big,
            goal: Goal::Stream(1.12),
        },
        Target {
            label: "256 × 4096 f32",
            case: Case::f32(4096, 256),
            goal: Goal::Ns(0.18),
        },
        Target {
            label: "8192 × 128 f32",
            case: Case::f32(128, 8192),
            goal: Goal::Ns(0.13),
        },
        Target {
            label: "1 × 4096 f32 (decode, in cache)",
            case: Case::f32(4096, 1),
            goal: Goal::UsPerRow(0.6),
        },
        Target {
            label: "16384 × 4096 f16",
            case: big.with(|c| c.dtype = DType::F16),
            goal: Goal::Ns(0.2),
        },
        Target {
            label: "16384 × 4096 bf16",
            case: big.with(|c| c.dtype = DType::Bf16),
            goal: Goal::Ns(0.2),
        },
        Target {
            label: "512 × 11008 f32 (K = 172)",
            case: Case::f32(11008, 512),
            goal: Goal::Ns(2.0),
        },
        Target {
            label: "512 × 14336 f32 (K = 28)",
            case: Case::f32(14336, 512),
            goal: Goal::Ns(0.6),
        },
        Target {
            label: "16384 × 4096 f32, 2 threads",
            case: big.with(|c| c.threads = 2),
            goal: Goal::Stream(1.15),
        },
    ]
}

/// The src -> dst companion of a target case (where ggml can run: f32 -> f32, f16 -> f32).
fn companion(c: &Case) -> Case {
    c.with(|c| {
        c.op = if c.dtype == DType::F16 {
            Op::ToF32
        } else {
            Op::Copy
        }
    })
}

// ------------------------------------------------------------------------------ options

struct Opts {
    quick: bool,
    runs: usize,
    sets: Vec<String>,
    widths: Option<Vec<usize>>,
    batches: Option<Vec<Option<usize>>>,
    types: Option<Vec<DType>>,
    layouts: Option<Vec<Layout>>,
    ops: Option<Vec<Op>>,
    threads: Option<Vec<usize>>,
    full: bool,
    peers: [bool; 6],
    stride_pad: usize,
    max_elements: usize,
    write: bool,
    md: PathBuf,
    png: PathBuf,
    list: bool,
    sets_given: bool,
}

const HELP: &str = "\
quarot-bench peers: libquarot's Hadamard transforms vs FFHT, fht-cpu and ggml's FWHT

  cargo bench -p quarot-bench -- [OPTIONS]

Default: the sets targets,sweep,batches,variants (a few minutes on 2 cores).
  --quick               sets targets,sweep with 9 runs
  --sets LIST           targets, sweep (all widths, 64 rows, f32, in place and src→dst: the
                        plot), batches (4096 and 14336 over all batches, 1 and 2 threads),
                        variants (4096 and 14336 x 512 rows over types, layouts, ops, threads)
  --runs N              timed rounds per case (default 15, --quick 9; at least 9 advised)
Any of these selects the cross product of the given values instead of the default sets
(dimensions not given: 4096, 64 rows, f32, contig, inplace, 1 thread):
  --widths LIST         numbers, or pow2 / hadk / all
  --batches LIST        numbers, or big (ceil(2^26 / n) rows: 256 MiB of f32)
  --types LIST          f32,f16,bf16
  --layouts LIST        contig,strided (strided: rows n + 64 elements apart)
  --ops LIST            inplace,copy,tof32 (src→dst same type, or 16-bit → f32)
  --threads LIST        1,2
  --full                every value of every dimension (hours)
  --max-elements E      skip cases of more than E elements (default 2^26)
  --stride-pad P        padding of the strided layout, elements (default 64)
  --peers LIST          ffht,fht-cpu,ggml or none (default: all that are available)
  --list                print the cases and exit
  --write               also write BENCHMARKS.md and docs/bench.png (repository root)
  --md PATH, --png PATH where --write writes
";

fn parse_list<T>(v: &str, f: impl Fn(&str) -> Result<Vec<T>, String>) -> Vec<T> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match f(item) {
            Ok(mut x) => out.append(&mut x),
            Err(e) => {
                eprintln!("{e}\n\n{HELP}");
                std::process::exit(2)
            }
        }
    }
    out
}

fn all_widths() -> Vec<usize> {
    POW2.iter()
        .copied()
        .chain(HADK.iter().map(|&(k, m)| k * m))
        .collect()
}

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        quick: false,
        runs: 11,
        sets: vec![
            "targets".into(),
            "sweep".into(),
            "batches".into(),
            "variants".into(),
        ],
        widths: None,
        batches: None,
        types: None,
        layouts: None,
        ops: None,
        threads: None,
        full: false,
        peers: [true; 6],
        stride_pad: STRIDE_PAD,
        max_elements: BIG_ELEMENTS,
        write: false,
        md: root.join("BENCHMARKS.md"),
        png: root.join("docs/bench.png"),
        list: false,
        sets_given: false,
    };
    let mut runs = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a, None),
        };
        let mut value = || -> String {
            if let Some(v) = inline.clone() {
                return v;
            }
            i += 1;
            args.get(i).cloned().unwrap_or_else(|| {
                eprintln!("{flag} needs a value\n\n{HELP}");
                std::process::exit(2)
            })
        };
        match flag {
            // cargo bench appends --bench to a harness = false bench's arguments.
            "--bench" => {}
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0)
            }
            "--quick" => o.quick = true,
            "--full" => o.full = true,
            "--list" => o.list = true,
            "--write" => o.write = true,
            "--md" => o.md = PathBuf::from(value()),
            "--png" => o.png = PathBuf::from(value()),
            "--runs" => runs = Some(value().parse().expect("--runs N")),
            "--stride-pad" => o.stride_pad = value().parse().expect("--stride-pad P"),
            "--max-elements" => o.max_elements = value().parse().expect("--max-elements E"),
            "--sets" => {
                o.sets_given = true;
                o.sets = parse_list(&value(), |s| match s {
                    "targets" | "sweep" | "batches" | "variants" => Ok(vec![s.to_string()]),
                    _ => Err(format!("--sets: unknown set {s}")),
                })
            }
            "--widths" => {
                o.widths = Some(parse_list(&value(), |s| match s {
                    "pow2" => Ok(POW2.to_vec()),
                    "hadk" => Ok(HADK.iter().map(|&(k, m)| k * m).collect()),
                    "all" => Ok(all_widths()),
                    _ => match s.parse::<usize>() {
                        Ok(n) if hadamard_k(n).is_some() => Ok(vec![n]),
                        _ => Err(format!("--widths: {s} is not a supported width")),
                    },
                }))
            }
            "--batches" => {
                o.batches = Some(parse_list(&value(), |s| match s {
                    "big" => Ok(vec![None]),
                    _ => s
                        .parse::<usize>()
                        .ok()
                        .filter(|&r| r > 0)
                        .map(|r| vec![Some(r)])
                        .ok_or(format!("--batches: {s}")),
                }))
            }
            "--types" => {
                o.types = Some(parse_list(&value(), |s| match s {
                    "f32" => Ok(vec![DType::F32]),
                    "f16" => Ok(vec![DType::F16]),
                    "bf16" => Ok(vec![DType::Bf16]),
                    _ => Err(format!("--types: {s}")),
                }))
            }
            "--layouts" => {
                o.layouts = Some(parse_list(&value(), |s| match s {
                    "contig" | "contiguous" => Ok(vec![Layout::Contig]),
                    "strided" => Ok(vec![Layout::Strided]),
                    _ => Err(format!("--layouts: {s}")),
                }))
            }
            "--ops" => {
                o.ops = Some(parse_list(&value(), |s| match s {
                    "inplace" => Ok(vec![Op::InPlace]),
                    "copy" => Ok(vec![Op::Copy]),
                    "tof32" => Ok(vec![Op::ToF32]),
                    _ => Err(format!("--ops: {s}")),
                }))
            }
            "--threads" => {
                o.threads = Some(parse_list(&value(), |s| match s {
                    "1" => Ok(vec![1]),
                    "2" => Ok(vec![2]),
                    _ => Err(format!("--threads: 1 or 2, not {s}")),
                }))
            }
            "--peers" => {
                let list = value();
                o.peers = [true, true, false, false, false, true];
                if list != "none" {
                    for p in parse_list(&list, |s| match s {
                        "ffht" => Ok(vec![Imp::Ffht]),
                        "fht-cpu" => Ok(vec![Imp::FhtCpu]),
                        "ggml" => Ok(vec![Imp::Ggml]),
                        _ => Err(format!("--peers: {s}")),
                    }) {
                        o.peers[p.idx()] = true;
                    }
                }
            }
            _ => {
                eprintln!("unknown option {a}\n\n{HELP}");
                std::process::exit(2)
            }
        }
        i += 1;
    }
    if o.quick && !o.sets_given {
        o.sets = vec!["targets".into(), "sweep".into()];
    }
    o.runs = runs.unwrap_or(if o.quick { 9 } else { 15 }).max(1);
    o
}

fn custom(o: &Opts) -> bool {
    o.full
        || o.widths.is_some()
        || o.batches.is_some()
        || o.types.is_some()
        || o.layouts.is_some()
        || o.ops.is_some()
        || o.threads.is_some()
}

fn big_rows(n: usize) -> usize {
    BIG_ELEMENTS.div_ceil(n).max(1)
}

/// (set name, its cases) in run order.
fn plan(o: &Opts) -> (Vec<(String, Vec<Case>)>, usize) {
    let mut sets = Vec::new();
    let mut skipped = 0;
    if custom(o) {
        let full = o.full;
        let widths = o
            .widths
            .clone()
            .unwrap_or(if full { all_widths() } else { vec![4096] });
        let batches = o.batches.clone().unwrap_or(if full {
            vec![Some(1), Some(8), Some(64), Some(512), Some(4096), None]
        } else {
            vec![Some(64)]
        });
        let types = o.types.clone().unwrap_or(if full {
            vec![DType::F32, DType::F16, DType::Bf16]
        } else {
            vec![DType::F32]
        });
        let layouts = o.layouts.clone().unwrap_or(if full {
            vec![Layout::Contig, Layout::Strided]
        } else {
            vec![Layout::Contig]
        });
        let ops = o.ops.clone().unwrap_or(if full {
            vec![Op::InPlace, Op::Copy, Op::ToF32]
        } else {
            vec![Op::InPlace]
        });
        let threads = o
            .threads
            .clone()
            .unwrap_or(if full { vec![1, 2] } else { vec![1] });
        let mut cases = Vec::new();
        for &n in &widths {
            for &b in &batches {
                let rows = b.unwrap_or_else(|| big_rows(n));
                if rows * n > o.max_elements {
                    skipped += types.len() * layouts.len() * ops.len() * threads.len();
                    continue;
                }
                for &dtype in &types {
                    for &layout in &layouts {
                        for &op in &ops {
                            if dtype == DType::F32 && op == Op::ToF32 {
                                continue; // f32 -> f32 is "copy"
                            }
                            for &threads in &threads {
                                cases.push(Case {
                                    n,
                                    rows,
                                    dtype,
                                    layout,
                                    op,
                                    threads,
                                });
                            }
                        }
                    }
                }
            }
        }
        sets.push(("custom".to_string(), cases));
    }
    if !custom(o) || o.sets_given {
        for s in &o.sets {
            let cases: Vec<Case> = match s.as_str() {
                "targets" => targets()
                    .iter()
                    .flat_map(|t| [t.case, companion(&t.case)])
                    .collect(),
                "sweep" => all_widths()
                    .into_iter()
                    .flat_map(|n| {
                        let rows = if n >= 1 << 20 { 1 } else { SWEEP_ROWS };
                        [Op::InPlace, Op::Copy].map(|op| Case::f32(n, rows).with(|c| c.op = op))
                    })
                    .collect(),
                "batches" => [4096, 14336]
                    .into_iter()
                    .flat_map(|n| {
                        [1, 8, 64, 512, 4096, big_rows(n)]
                            .into_iter()
                            .flat_map(move |rows| {
                                [1, 2].map(|t| Case::f32(n, rows).with(|c| c.threads = t))
                            })
                    })
                    .collect(),
                "variants" => {
                    let mut v = Vec::new();
                    for n in [4096, 14336] {
                        for dtype in [DType::F32, DType::F16, DType::Bf16] {
                            for op in [Op::InPlace, Op::Copy, Op::ToF32] {
                                if dtype == DType::F32 && op == Op::ToF32 {
                                    continue;
                                }
                                for layout in [Layout::Contig, Layout::Strided] {
                                    for threads in [1, 2] {
                                        v.push(Case {
                                            n,
                                            rows: 512,
                                            dtype,
                                            layout,
                                            op,
                                            threads,
                                        });
                                    }
                                }
                            }
                        }
                    }
                    v
                }
                _ => unreachable!(),
            };
            sets.push((s.clone(), cases));
        }
    }
    (sets, skipped)
}

// ------------------------------------------------------------------------------ report

fn fmt_ns(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(r: &CaseResult, imp: Imp) -> String {
    let bad_check = matches!(r.checks[imp.idx()], Some(Err(_)));
    let mut s = match &r.figs[imp.idx()] {
        Fig::Na => "n/a".to_string(),
        Fig::Missing => "not installed".to_string(),
        Fig::Off => "off".to_string(),
        Fig::Failed(_) => "FAILED".to_string(),
        Fig::Ok(st) => format!("{} ({})", fmt_ns(st.med), fmt_ns(st.min)),
    };
    if bad_check {
        s += " CHECK FAILED";
    }
    s
}

fn ratio(r: &CaseResult, imp: Imp) -> String {
    match (r.figs[0].stats(), r.figs[imp.idx()].stats()) {
        (Some(o), Some(p)) if p.med > 0.0 => format!("{:.2}", o.med / p.med),
        _ => "–".into(),
    }
}

fn results_table(md: &mut String, cases: &[Case], res: &HashMap<Case, CaseResult>) {
    md.push_str("| n | K | rows | MiB | type | layout | op | thr | ours | ours split | stream | ours/stream | FFHT | ours/FFHT | fht-cpu | ours/fht-cpu | ggml | ours/ggml | others' CPU % |\n");
    md.push_str(
        "|---:|---:|---:|---:|---|---|---|---:|---|---|---|---:|---|---:|---|---:|---|---:|---:|\n",
    );
    for c in cases {
        let Some(r) = res.get(c) else { continue };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            c.n,
            hadamard_k(c.n).unwrap_or(0),
            c.rows,
            c.mib(),
            c.type_label(),
            c.layout_label(),
            c.op_label(),
            c.threads,
            cell(r, Imp::Ours),
            cell(r, Imp::OursSplit),
            cell(r, Imp::Stream),
            ratio(r, Imp::Stream),
            cell(r, Imp::Ffht),
            ratio(r, Imp::Ffht),
            cell(r, Imp::FhtCpu),
            ratio(r, Imp::FhtCpu),
            cell(r, Imp::Ggml),
            ratio(r, Imp::Ggml),
            r.others
        );
    }
}

fn target_table(md: &mut String, res: &HashMap<Case, CaseResult>) {
    md.push_str("| target case | target | ours | met? | stream | ours/stream | FFHT in place | fht-cpu in place | ours src→dst | ggml src→dst | others' CPU % |\n");
    md.push_str("|---|---|---|---|---|---:|---|---|---|---|---:|\n");
    for t in targets() {
        let Some(r) = res.get(&t.case) else { continue };
        let comp = res.get(&companion(&t.case));
        let ours = r.figs[0].stats();
        let strm = r.figs[1].stats();
        let (goal, got, met) = match (t.goal, ours) {
            (_, None) => ("?".to_string(), "FAILED".to_string(), false),
            (Goal::Ns(g), Some(o)) => (
                format!("≤ {g} ns/el"),
                format!("{} ns/el ({})", fmt_ns(o.med), fmt_ns(o.min)),
                o.med <= g,
            ),
            (Goal::UsPerRow(g), Some(o)) => {
                let us = |ns: f64| ns * t.case.n as f64 / 1000.0;
                (
                    format!("≤ {g} µs/vector"),
                    format!(
                        "{:.3} µs/vector ({:.3}); {} ns/el",
                        us(o.med),
                        us(o.min),
                        fmt_ns(o.med)
                    ),
                    us(o.med) <= g,
                )
            }
            (Goal::Stream(g), Some(o)) => {
                let rr = strm.map_or(f64::INFINITY, |s| o.med / s.med);
                (
                    format!(
                        "≤ {g} × stream{}",
                        if t.case.threads > 1 {
                            " (2 threads)"
                        } else {
                            ""
                        }
                    ),
                    format!(
                        "{} ns/el ({}) = {rr:.2} × stream",
                        fmt_ns(o.med),
                        fmt_ns(o.min)
                    ),
                    rr <= g,
                )
            }
        };
        let got = match r.figs[Imp::OursSplit.idx()].stats() {
            Some(sp) if t.case.threads > 1 => format!(
                "{got}; ours split: {} ({}) = {:.2} × stream",
                fmt_ns(sp.med),
                fmt_ns(sp.min),
                strm.map_or(f64::NAN, |s| sp.med / s.med)
            ),
            _ => got,
        };
        let chk = !matches!(r.checks[0], Some(Err(_)));
        let _ = writeln!(
            md,
            "| {} | {goal} | {got}{} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            t.label,
            if chk { "" } else { " CHECK FAILED" },
            if met && chk { "met" } else { "**NOT met**" },
            cell(r, Imp::Stream),
            ratio(r, Imp::Stream),
            cell(r, Imp::Ffht),
            cell(r, Imp::FhtCpu),
            comp.map_or("–".into(), |c| format!(
                "{}{}",
                cell(c, Imp::Ours),
                if c.figs[0].stats().is_some() {
                    format!(" [{}]", companion(&t.case).type_label())
                } else {
                    String::new()
                }
            )),
            comp.map_or("–".into(), |c| cell(c, Imp::Ggml)),
            r.others
        );
    }
}

// ------------------------------------------------------------------------------ plot

const PLOT: &str = r#"
import sys, collections
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not installed: no plot", flush=True)
    sys.exit(0)
out = sys.argv[1]
title = sys.stdin.readline().strip()
data = collections.OrderedDict()
labels = {}
for line in sys.stdin:
    s, panel, n, v, lab = line.rstrip("\n").split("\t")
    data.setdefault(s, {}).setdefault(panel, []).append((int(n), float(v)))
    labels[(panel, int(n))] = lab
styles = {"ours in place": ("C0", "-", "o"), "ours src→dst": ("C0", "--", "s"),
          "streaming bound (in place)": ("k", ":", "."), "FFHT in place": ("C1", "-", "^"),
          "FFHT src→dst": ("C1", "--", "v"), "fht-cpu in place": ("C2", "-", "D"),
          "ggml src→dst": ("C3", "--", "x")}
fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [7, 14]})
for ax, panel, name in zip(axes, ["pow2", "hadk"],
                           ["power-of-two widths", "had-K widths n = K·2^m (sorted by n)"]):
    ticks = sorted(n for (p, n) in labels if p == panel)
    pos = {n: i for i, n in enumerate(ticks)}
    for s, d in data.items():
        pts = sorted(d.get(panel, []))
        if not pts:
            continue
        c, ls, m = styles.get(s, (None, "-", "o"))
        ax.plot([pos[p[0]] for p in pts], [p[1] for p in pts], color=c, linestyle=ls, marker=m,
                label=s, markersize=4)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ticks)))
    ax.set_xticklabels([labels[(panel, n)] for n in ticks], rotation=60, fontsize=7)
    ax.set_xlabel("width n (equally spaced)")
    ax.set_ylabel("ns per element (median)")
    ax.set_title(name)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
fig.suptitle(title, fontsize=9)
fig.tight_layout()
fig.savefig(out, dpi=110)
print("plot written: " + out, flush=True)
"#;

/// Plot the sweep set; returns what happened (a line for the report).
fn plot(
    png: &Path,
    sweep: &[Case],
    res: &HashMap<Case, CaseResult>,
    title: &str,
) -> Result<String, String> {
    let mut lines = format!("{title}\n");
    for c in sweep {
        let Some(r) = res.get(c) else { continue };
        let k = hadamard_k(c.n).unwrap_or(0);
        let (panel, lab) = if k == 1 {
            ("pow2", format!("{}", c.n))
        } else {
            ("hadk", format!("{} = {}·{}", c.n, k, c.n / k))
        };
        let lab = if c.rows == 1 {
            format!("{lab} (1 row)")
        } else {
            lab
        };
        let series: &[(Imp, Op, &str)] = &[
            (Imp::Ours, Op::InPlace, "ours in place"),
            (Imp::Ours, Op::Copy, "ours src→dst"),
            (Imp::Stream, Op::InPlace, "streaming bound (in place)"),
            (Imp::Ffht, Op::InPlace, "FFHT in place"),
            (Imp::FhtCpu, Op::InPlace, "fht-cpu in place"),
            (Imp::Ggml, Op::Copy, "ggml src→dst"),
        ];
        for &(imp, op, name) in series {
            if c.op != op {
                continue;
            }
            if let Some(s) = r.figs[imp.idx()].stats() {
                let _ = writeln!(lines, "{name}\t{panel}\t{}\t{}\t{lab}", c.n, s.med);
            }
        }
    }
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PLOT)
        .arg(png)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("matplotlib not installed: no plot (python3: {e})"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(lines.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text.starts_with("plot written") {
        Ok(text)
    } else if text.is_empty() {
        Err("python3 failed: no plot".into())
    } else {
        Err(text)
    }
}

// ------------------------------------------------------------------------------ main

fn main() {
    let o = parse_opts();
    let (sets, skipped) = plan(&o);
    let mut order: Vec<Case> = Vec::new();
    for (_, cases) in &sets {
        for c in cases {
            if !order.contains(c) {
                order.push(*c);
            }
        }
    }
    if o.list {
        for (name, cases) in &sets {
            println!("{name}: {} cases", cases.len());
            for c in cases {
                println!("  {}", c.short());
            }
        }
        println!(
            "{} distinct cases; {skipped} skipped (more than {} elements)",
            order.len(),
            o.max_elements
        );
        return;
    }

    let total = Instant::now();
    let ticks0 = sysinfo::machine_ticks();
    let load0 = sysinfo::loadavg();
    quarot::set_num_threads(2).expect("set_num_threads(2)");
    let fhtcpu = if o.peers[Imp::FhtCpu.idx()] {
        eprintln!("starting the fht-cpu server (python3) ...");
        FhtCpu::start()
    } else {
        Err("disabled (--peers)".into())
    };
    let fhtcpu_info = match &fhtcpu {
        Ok((_, info)) => info.clone(),
        Err(e) => e.clone(),
    };
    // Placement: the bench's helper on CPU 1, the main thread on CPU 0 — after every other
    // pool exists (libquarot's rayon pool, ggml's runner, the Python child's process), since
    // threads inherit the creator's mask: those keep both CPUs, as in an engine.
    let runners = vec![Runner::new(1), Runner::new(2)];
    {
        let mut w = Buf::<f32>::new(4096 * 2);
        hadamard_rows(w.m(), 2, 4096, 4096, normalized_scale(4096), FLAG_PARALLEL)
            .expect("start libquarot's pool");
    }
    let two_cpus = sysinfo::cpus() >= 2;
    let (duo, helper_pin) = Duo::with_pin(two_cpus.then_some(1));
    // Checked here; applied per case (2-thread cases only, see run_any).
    let main_pin = if two_cpus {
        sysinfo::pin_current_thread(0).and_then(|()| sysinfo::unpin_current_thread())
    } else {
        Err("one CPU".into())
    };
    let pin_main = main_pin.is_ok() && helper_pin.is_ok();
    let placement = match (&main_pin, &helper_pin) {
        (Ok(()), Ok(())) => "in 2-thread cases the bench's main thread is pinned to CPU 0 (1-thread cases: unpinned) and its helper thread is pinned to CPU 1 (sched_setaffinity), set after libquarot's rayon pool, ggml's pool and the Python child were started, so their threads keep both CPUs".to_string(),
        (a, b) => format!(
            "threads not pinned ({}; {})",
            a.clone().err().unwrap_or_default(),
            b.clone().err().unwrap_or_default()
        ),
    };
    let mut env = Env {
        runs: o.runs,
        stride_pad: o.stride_pad,
        duo,
        runners,
        fhtcpu: fhtcpu.map(|(f, _)| f),
        enabled: o.peers,
    };

    // Bring the core out of any low-power state before the first measurement (~0.3 s).
    {
        let mut w = Buf::<f32>::new(4096 * 64);
        fill(w.m(), 64, 4096, 4096, 1);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            hadamard_rows(w.m(), 64, 4096, 4096, normalized_scale(4096), 0).expect("transform");
        }
    }

    let mut res: HashMap<Case, CaseResult> = HashMap::new();
    let mut arenas = [Arena::default(), Arena::default()];
    for (i, c) in order.iter().enumerate() {
        eprintln!(
            "[{}/{}] {} (K = {}) ... ({:.0} s so far)",
            i + 1,
            order.len(),
            c.short(),
            hadamard_k(c.n).unwrap_or(0),
            total.elapsed().as_secs_f64()
        );
        if pin_main {
            let _ = if c.threads > 1 {
                sysinfo::pin_current_thread(0)
            } else {
                sysinfo::unpin_current_thread()
            };
        }
        let r = run_any(c, &mut env, &mut arenas);
        res.insert(*c, r);
    }
    let fhtcpu_pid = env.pids();
    let fhtcpu_ticks: u64 = fhtcpu_pid
        .iter()
        .map(|p| sysinfo::process_ticks(&p.to_string()))
        .sum();
    drop(env);

    // ---------------------------------------------------------------- report
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root_s = root.to_string_lossy().to_string();
    let git = |args: &[&str]| {
        let mut a = vec!["-C", root_s.as_str()];
        a.extend_from_slice(args);
        sysinfo::sh("git", &a)
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let head_subject = git(&["log", "-1", "--format=%s"]);
    let dirty = git(&["status", "--short", "src"]);
    let date = sysinfo::sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let wall = total.elapsed().as_secs_f64();
    let ticks1 = sysinfo::machine_ticks();
    let hz = sysinfo::clk_tck();
    let mine = sysinfo::process_ticks("self") as f64 / hz;
    let py = fhtcpu_ticks as f64 / hz;
    let others = ((ticks1.0 - ticks0.0) as f64 / hz - mine - py).max(0.0);
    let isa =
        quarot::dispatch::active_isa().map_or_else(|e| e.to_string(), |i| i.name().to_string());
    let cmdline: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();

    let mut md = String::new();
    md.push_str("# libquarot transform benchmark: ours vs CPU peers\n\n");
    md.push_str("Generated by `cargo bench -p quarot-bench -- --write` (integrations/bench/benches/peers.rs); do not edit by hand.\n\n");
    let _ = writeln!(md, "- date: {date}; total bench time {wall:.0} s");
    let _ = writeln!(
        md,
        "- CPU: {} ({} logical CPUs; {}); libquarot active ISA: {isa}; stream loops: {}",
        sysinfo::cpu_model(),
        sysinfo::cpus(),
        sysinfo::caches(),
        stream::isa_name()
    );
    let _ = writeln!(
        md,
        "- libquarot {} at git {head} (\"{head_subject}\"); uncommitted changes in src/ at run time: {}; src/ fingerprint at build time: {}",
        quarot::VERSION,
        if dirty.is_empty() { "none".to_string() } else { dirty.split_whitespace().collect::<Vec<_>>().join(" ") },
        env!("QUAROT_BENCH_SRC_FNV")
    );
    let _ = writeln!(
        md,
        "- load average: {load0} at start, {} at end; CPU time during the run: this bench {mine:.0} s, its fht-cpu child {py:.0} s, other processes {others:.0} s = {:.1} % of the machine's capacity (per case in the tables: others' CPU %)",
        sysinfo::loadavg(),
        100.0 * others / (sysinfo::cpus() as f64 * wall)
    );
    let _ = writeln!(
        md,
        "- command line: `{}`; {} runs per case",
        if cmdline.is_empty() {
            "(default)".to_string()
        } else {
            cmdline.join(" ")
        },
        o.runs
    );
    md.push_str("\nPeers and versions:\n\n");
    let _ = writeln!(
        md,
        "- **FFHT**: {}{}",
        ffht::INFO,
        if o.peers[Imp::Ffht.idx()] {
            ""
        } else {
            " — disabled by --peers"
        }
    );
    let _ = writeln!(md, "- **fht-cpu**: {fhtcpu_info}");
    let _ = writeln!(
        md,
        "- **ggml**: ggml {} (sources of the crates.io crate llama-cpp-sys-2 0.1.161, built by integrations/ggml/build.rs: -O3 -march=native, no OpenMP), its FWHT `ggml_mul_mat(rot, x)` with `GGML_HINT_SRC0_IS_HADAMARD`, run by a persistent ggml thread pool (quarot_ggml_runner){}",
        quarot_ggml::ggml_version(),
        if o.peers[Imp::Ggml.idx()] { "" } else { " — disabled by --peers" }
    );
    md.push_str("- numpy / OpenBLAS only matter for the weight rotation: see `cargo bench --bench rotate`.\n");

    md.push_str(&format!("\n## Method\n\n\
- Every figure is ns per element = time / (calls × rows × n), shown as median (min) over {runs} timed rounds; ratios are ours / X of the medians (< 1: ours faster). In each round every implementation runs one sample, in an order rotated from round to round; before the rounds each gets a warm-up of at least 2 samples and 10 ms. A sample is `iters` back-to-back calls over the whole batch, iters = ceil(2^17 / (rows × n)) (1 for large batches), so tiny cases are not timer-bound; the unnormalized in-place peers (FFHT, fht-cpu) are capped at floor(220 / log2 n) − 1 calls per sample (see denormals).\n\
- **ours**: `quarot::hadamard::hadamard_rows` (in place) or `hadamard_rows_into` (src→dst, same type or 16-bit → f32), scale `normalized_scale(n)` = 1/sqrt(n), active ISA. 2 threads = `FLAG_PARALLEL` with `quarot::set_num_threads(2)` (libquarot's own rayon pool; the calling thread waits). **ours split** (2-thread cases only): the rows split in two halves, each given to the serial transform (flags 0), one on the calling thread and one on the bench's helper thread (below) — what an engine's own pool gets from libquarot, and a check of what FLAG_PARALLEL's pool costs.\n\
- **stream**: the streaming bound, measured in the same case on the same buffers: in place `x *= -1` (f32) / `x ^= 0x8000` (16-bit); src→dst `dst = -src` / `dst = src ^ 0x8000`; 16-bit → f32 `dst = bits << 16`; {simd} intrinsics, 4 vectors per iteration; strided rows one row at a time (the gaps are not touched). 2 threads: rows split in two halves, one on the calling thread, one on the bench's persistent helper thread, which spins for 2 ms after each job before it sleeps (as libgomp's and ggml's workers spin; rayon's workers sleep after microseconds, and waking a thread on this VM's idle vCPU can take milliseconds, so a rayon join of two halves often ran both on one thread); one row runs on the calling thread alone, as libquarot does.\n\
- **FFHT**: `fht_float` per row (in place) or `fht_float_oop` (src→dst: FFHT copies the row, then transforms in place there); f32, power-of-two n. 2 threads: the same two threads as the stream, rows split in two halves. Built from C rather than installed with pip (`pip install ffht-unofficial` needs pybind11, `--no-build-isolation`, and OpenMP): the C call has no Python overhead, takes any row stride (the Python batch call is wrong on row-strided views), and splits over threads exactly as the stream does.\n\
- **fht-cpu**: the PyPI wheel, driven from a persistent `python3 -c` child (as benches/rotate.rs drives numpy): contiguous rows go straight to `fht_cpu._core.fht_2d_f32_rows(x, num_threads)` (src→dst: `np.copyto(out, x)` first, as its `fht(x, out=out)` does), strided rows through the public `fht_cpu.fht(x, num_threads=...)`, which copies them to a contiguous array and back (the extension takes only C-contiguous arrays). Timed inside the child with `time.perf_counter` around the calls only; the figures include the Python + binding overhead per call given above. 1 thread = `num_threads=1` (its serial path), 2 = OpenMP with 2 threads. f32 only.\n\
- **ggml**: one `ggml_graph_compute` (graph plan included, as an engine runs it) of `mul_mat(rot, x)` with `GGML_HINT_SRC0_IS_HADAMARD` (rot a placeholder never read), on a persistent ggml thread pool of 1 or 2 threads (the calling thread is worker 0). ggml reads f32 or f16 rows (strided views allowed) and writes a new contiguous f32 tensor, so it is only in src→dst rows: f32 → f32 and f16 → f32, power-of-two n.\n\
- **Checks**: once per implementation and case, untimed, before the rounds: rows 0, rows/2 and rows−1 of the result against the f64 evaluation of (H_K ⊗ H_2^m) x / sqrt(n) (natural-order Sylvester H_2^m, libquarot's H_K table) of the same input rows; FFHT's and fht-cpu's output is divided by sqrt(n) first (they compute the unnormalized H_n x), ggml's is compared as is (it scales by 1/sqrtf(n)). Tolerance: {tol:e} × max|y| plus half an ulp of the output type. A failure is printed as CHECK FAILED next to the figure (and listed below).\n\
- **Denormals**: the data are deterministic, roughly Gaussian with sigma 16 (normal in f32, f16 and bf16 but for a handful of f16 values). Repeated in-place runs keep them normal: ours is orthogonal (scale 1/sqrt(n)), the stream only flips signs, and after every sample of FFHT / fht-cpu in place the rows are multiplied by n^(−iters/2), untimed (the cap on iters keeps their growth below 2^120). No FTZ/DAZ is set (it would cover this thread only, not the pools' workers or the Python child); instead the subnormal count of the rows is taken before and after the rounds (listed below).\n\
- **Threads**: workers left spinning by one implementation would take a core from the next one timed: ggml's pool workers poll for about 0.1 s after every graph (ggml's default poll level 50; measured here: a full core for ~120 ms), libgomp's (fht-cpu) for about 1 ms after a parallel region. So before the rounds of every case, and in 2-thread cases before every sample, the bench waits (untimed) until its own threads and its Python child use less than 10 % of a core over 5 ms (/proc/*/task/*/schedstat; at most 1 s); in 2-thread cases it then runs one untimed sample of the implementation about to be timed, so that its workers are awake (spinning, if that is their design) as they are in an engine's back-to-back calls. Waking a sleeping worker on this VM can take milliseconds (an idle vCPU is halted), which is what the untimed sample keeps out of the figures; small 2-thread cases still vary a lot between samples (median vs min). others' CPU % = CPU time of other processes during the case (/proc/stat less this process and its Python child), in % of both cores: the machine is shared, and rows where it is above a few % are disturbed.\n\
- Placement: {placement}.\n\
- Layouts: contig = rows n elements apart; strided = rows n + {pad} elements apart (a view of wider rows; rows stay 64-byte aligned for n a multiple of 32). Buffers are 64-byte aligned. MiB = rows × n × size of the input type. \"big\" batches have ceil(2^26 / n) rows (256 MiB of f32; this VM reports a 260 MiB L3 shared with its host, so part of such a case may still be served from L3).\n",
        runs = o.runs,
        simd = stream::isa_name(),
        tol = REL_TOL,
        pad = o.stride_pad,
        placement = placement,
    ));

    let targets_run = targets().iter().any(|t| res.contains_key(&t.case));
    if targets_run {
        md.push_str("\n## Targets (issue 5)\n\nf32, 1 thread, contiguous, in place unless stated; \"met\" compares the median of ours (FLAG_PARALLEL for 2 threads; \"ours split\" is given beside it). The streaming bound and the peers are from the same case; ggml can only run src→dst, so the last two columns are the src→dst companion case (f16 → f32 for the f16 row; ggml has no bf16).\n\n");
        target_table(&mut md, &res);
    }

    let plot_line = if o.write {
        match sets.iter().find(|(n, _)| n == "sweep") {
            Some((_, sweep)) => {
                let title = format!(
                    "libquarot vs peers, f32, 1 thread, contiguous, {SWEEP_ROWS} rows (2^20: 1 row); {} ({}), git {head}, {date}",
                    sysinfo::cpu_model(),
                    isa
                );
                match plot(&o.png, sweep, &res, &title) {
                    Ok(s) => {
                        eprintln!("{s}");
                        Some(Ok(()))
                    }
                    Err(e) => {
                        println!("{e}");
                        Some(Err(e))
                    }
                }
            }
            None => None,
        }
    } else {
        None
    };

    for (name, cases) in &sets {
        let title = match name.as_str() {
            "targets" => "Target cases and their src→dst companions",
            "sweep" => "Width sweep: f32, 1 thread, contiguous, 64 rows (2^20: one vector)",
            "batches" => "Batch sweep: f32, contiguous, in place, 1 and 2 threads",
            "variants" => "Variants at 512 rows: types, layouts, in place / src→dst, threads",
            _ => "Selected cases",
        };
        let _ = writeln!(md, "\n## {title}\n");
        if name == "sweep" {
            match &plot_line {
                Some(Ok(())) => {
                    let rel = o
                        .png
                        .strip_prefix(o.md.parent().unwrap_or(Path::new(".")))
                        .map(|p| p.to_string_lossy().to_string())
                        .unwrap_or_else(|_| o.png.to_string_lossy().to_string());
                    let _ = writeln!(md, "![ns per element against width]({rel})\n");
                }
                Some(Err(e)) => {
                    let _ = writeln!(md, "({e})\n");
                }
                None => {}
            }
            let notes: Vec<String> = HADK
                .iter()
                .filter(|&&(k, m)| hadamard_k(k * m) != Some(k))
                .map(|&(k, m)| {
                    format!(
                        "{k}·{m} = {} uses K = {} (QuaRot's K order tries {} first)",
                        k * m,
                        hadamard_k(k * m).unwrap_or(0),
                        hadamard_k(k * m).unwrap_or(0)
                    )
                })
                .collect();
            if !notes.is_empty() {
                let _ = writeln!(md, "Note: {}; K = 20 is reached only at n = 20 itself, which is in the table for that reason.\n", notes.join("; "));
            }
        }
        results_table(&mut md, cases, &res);
    }

    // ---------------------------------------------------------------- checks and notes
    md.push_str("\n## Checks\n\n");
    let mut n_ok = 0;
    let mut worst = 0f64;
    let mut failures = Vec::new();
    let mut runtime_failures = Vec::new();
    for c in &order {
        let r = &res[c];
        for imp in IMPS {
            match &r.checks[imp.idx()] {
                Some(Ok(w)) => {
                    n_ok += 1;
                    worst = worst.max(*w);
                }
                Some(Err(e)) => failures.push(format!("{} {}: {e}", c.short(), imp.name())),
                None => {}
            }
            if let Fig::Failed(e) = &r.figs[imp.idx()] {
                runtime_failures.push(format!("{} {}: {e}", c.short(), imp.name()));
            }
        }
    }
    let _ = writeln!(
        md,
        "- {n_ok} checks passed (3 rows each vs f64; worst error beyond the output rounding {worst:.1e} × max|y|), {} failed",
        failures.len()
    );
    for f in &failures {
        let _ = writeln!(md, "  - CHECK FAILED: {f}");
    }
    for f in &runtime_failures {
        let _ = writeln!(md, "- run failed: {f}");
    }
    let sub_notes: Vec<String> = order
        .iter()
        .filter(|c| !res[c].notes.is_empty())
        .map(|c| format!("{}: {}", c.short(), res[c].notes))
        .collect();
    if sub_notes.is_empty() {
        md.push_str("- input rows before / after the rounds: no subnormal or non-finite value in any case\n");
    } else {
        let _ = writeln!(
            md,
            "- input rows with subnormal (or non-finite) values before → after the rounds, all other cases have none (f16's subnormals are |x| < 6.1e-5: the Gaussian's few values nearest 0, a few per million, also after orthogonal transforms): {}",
            sub_notes.join("; ")
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            md,
            "- {skipped} combinations skipped: more than {} elements (--max-elements)",
            o.max_elements
        );
    }
    let slow: f64 = res.values().map(|r| r.secs).sum();
    let _ = writeln!(md, "- {} cases in {slow:.0} s", order.len());

    print!("{md}");
    if o.write {
        match std::fs::write(&o.md, &md) {
            Ok(()) => eprintln!("written: {}", o.md.display()),
            Err(e) => eprintln!("cannot write {}: {e}", o.md.display()),
        }
    }
}
