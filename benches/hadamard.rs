//! Single-thread throughput of the in-place row transform, next to a streaming
//! read-modify-write loop over the very same buffer (the memory/cache bound).
//!
//!     cargo bench --bench hadamard [-- --isa avx512|avx2|scalar] [--quick]
//!
//! Method: every case is first checked (untimed) against an independent f64 evaluation of
//! (H_K (x) H_{2^m}) x / sqrt(n); then `ours` and `stream` runs alternate on the same
//! 64-byte-aligned buffer after a warm-up, and the median and min ns per element are
//! reported. The data stays bounded because the normalized transform is orthogonal and
//! the stream loop only flips signs (f32: x * -1, 16-bit: x ^ 0x8000); it is re-checked
//! (non-finite / subnormal counts, rms) after the timed runs.

use half::{bf16, f16};
use quarot::dispatch::{active_isa, Isa};
use quarot::hadamard::{hadamard_rows_isa, k_matrix, reference::hadamard_row_reference};
use quarot::{hadamard_k, normalized_scale, DType, Element, HadamardPlan};
use std::hint::black_box;
use std::time::Instant;

const CASES: [(usize, usize); 11] = [
    (4096, 1),
    (128, 8192),
    (4096, 256),
    (4096, 16384),
    (11008, 512),
    (14336, 512),
    // Widths beyond QuaRot's table (Paley K): Qwen2.5-0.5B, Qwen3-14B, Qwen3-32B,
    // DeepSeek-V2-Lite and Qwen2-72B MLP widths.
    (4864, 512),
    (17408, 128),
    (25600, 128),
    (10944, 64),
    (29568, 64),
];

// ---------------------------------------------------------------- buffers and data

/// A 64-byte-aligned slice of `len` elements inside an over-allocated Vec.
struct Buf<T> {
    v: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Element> Buf<T> {
    fn new(len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let v = vec![T::ZERO; len + 64 / size];
        let off = (64 - v.as_ptr() as usize % 64) % 64 / size;
        Buf { v, off, len }
    }
    fn s(&mut self) -> &mut [T] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// Deterministic, roughly Gaussian data (sum of 4 uniforms), sigma = 16: far from the f16
/// subnormal range (< 6.1e-5) for almost all values, far from overflow after the transform.
fn fill<T: Element>(x: &mut [T], seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for v in x.iter_mut() {
        let g = (next() + next() + next() + next()) * 3f32.sqrt(); // variance 1
        *v = T::from_f32(16.0 * g);
    }
}

/// (non-finite count, subnormal count, rms) of the buffer, in the element's own format.
fn scan<T: Element>(x: &[T]) -> (usize, usize, f64) {
    let (mut bad, mut sub, mut ss) = (0usize, 0usize, 0f64);
    for &v in x {
        let f = v.to_f32();
        if !f.is_finite() {
            bad += 1;
            continue;
        }
        ss += (f as f64) * (f as f64);
        let subnormal = match T::DTYPE {
            // SAFETY: f16 is a transparent u16.
            DType::F16 => {
                let b: u16 = unsafe { std::mem::transmute_copy(&v) };
                b & 0x7c00 == 0 && b & 0x03ff != 0
            }
            _ => f.is_subnormal(), // bf16 widens exactly to an f32 with the same class
        };
        sub += subnormal as usize;
    }
    (bad, sub, (ss / x.len().max(1) as f64).sqrt())
}

// ---------------------------------------------------------------- the stream loop

/// In-place read-modify-write over the buffer's bytes with the widest vectors available:
/// f32 x * -1.0, 16-bit x ^ 0x8000 (a sign flip, same bytes as the transform reads/writes).
fn stream<T: Element>(x: &mut [T], isa: Isa) {
    let len = x.len();
    let p = x.as_mut_ptr();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the pointer covers `len` elements; each variant is only called when the
    // CPU has its instruction set.
    unsafe {
        match (T::DTYPE, isa) {
            (DType::F32, Isa::Avx512) => return stream_f32_avx512(p.cast(), len),
            (DType::F32, Isa::Avx2) => return stream_f32_avx2(p.cast(), len),
            (DType::F16 | DType::Bf16, Isa::Avx512) => return stream_u16_avx512(p.cast(), len),
            (DType::F16 | DType::Bf16, Isa::Avx2) => return stream_u16_avx2(p.cast(), len),
            _ => {}
        }
    }
    match T::DTYPE {
        // SAFETY: same memory, viewed as its bit patterns.
        DType::F32 => {
            let s = black_box(-1.0f32);
            for v in unsafe { std::slice::from_raw_parts_mut(p.cast::<f32>(), len) } {
                *v *= s;
            }
        }
        _ => {
            let m = black_box(0x8000u16);
            for v in unsafe { std::slice::from_raw_parts_mut(p.cast::<u16>(), len) } {
                *v ^= m;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_f32_avx512(p: *mut f32, len: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let s = _mm512_set1_ps(-1.0);
        let mut i = 0;
        while i + 64 <= len {
            let q = p.add(i);
            let (a, b, c, d) = (
                _mm512_loadu_ps(q),
                _mm512_loadu_ps(q.add(16)),
                _mm512_loadu_ps(q.add(32)),
                _mm512_loadu_ps(q.add(48)),
            );
            _mm512_storeu_ps(q, _mm512_mul_ps(a, s));
            _mm512_storeu_ps(q.add(16), _mm512_mul_ps(b, s));
            _mm512_storeu_ps(q.add(32), _mm512_mul_ps(c, s));
            _mm512_storeu_ps(q.add(48), _mm512_mul_ps(d, s));
            i += 64;
        }
        while i < len {
            *p.add(i) *= -1.0;
            i += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stream_f32_avx2(p: *mut f32, len: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let s = _mm256_set1_ps(-1.0);
        let mut i = 0;
        while i + 32 <= len {
            let q = p.add(i);
            let (a, b, c, d) = (
                _mm256_loadu_ps(q),
                _mm256_loadu_ps(q.add(8)),
                _mm256_loadu_ps(q.add(16)),
                _mm256_loadu_ps(q.add(24)),
            );
            _mm256_storeu_ps(q, _mm256_mul_ps(a, s));
            _mm256_storeu_ps(q.add(8), _mm256_mul_ps(b, s));
            _mm256_storeu_ps(q.add(16), _mm256_mul_ps(c, s));
            _mm256_storeu_ps(q.add(24), _mm256_mul_ps(d, s));
            i += 32;
        }
        while i < len {
            *p.add(i) *= -1.0;
            i += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_u16_avx512(p: *mut u16, len: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let m = _mm512_set1_epi16(0x8000u16 as i16);
        let mut i = 0;
        while i + 128 <= len {
            let q = p.add(i).cast::<__m512i>();
            let (a, b, c, d) = (
                _mm512_loadu_si512(q),
                _mm512_loadu_si512(q.add(1)),
                _mm512_loadu_si512(q.add(2)),
                _mm512_loadu_si512(q.add(3)),
            );
            _mm512_storeu_si512(q, _mm512_xor_si512(a, m));
            _mm512_storeu_si512(q.add(1), _mm512_xor_si512(b, m));
            _mm512_storeu_si512(q.add(2), _mm512_xor_si512(c, m));
            _mm512_storeu_si512(q.add(3), _mm512_xor_si512(d, m));
            i += 128;
        }
        while i < len {
            *p.add(i) ^= 0x8000;
            i += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stream_u16_avx2(p: *mut u16, len: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let m = _mm256_set1_epi16(0x8000u16 as i16);
        let mut i = 0;
        while i + 64 <= len {
            let q = p.add(i).cast::<__m256i>();
            let (a, b, c, d) = (
                _mm256_loadu_si256(q),
                _mm256_loadu_si256(q.add(1)),
                _mm256_loadu_si256(q.add(2)),
                _mm256_loadu_si256(q.add(3)),
            );
            _mm256_storeu_si256(q, _mm256_xor_si256(a, m));
            _mm256_storeu_si256(q.add(1), _mm256_xor_si256(b, m));
            _mm256_storeu_si256(q.add(2), _mm256_xor_si256(c, m));
            _mm256_storeu_si256(q.add(3), _mm256_xor_si256(d, m));
            i += 64;
        }
        while i < len {
            *p.add(i) ^= 0x8000;
            i += 1;
        }
    }
}

// ---------------------------------------------------------------- correctness

/// Independent f64 evaluation: FWHT (natural Sylvester order) of each 2^m segment, then
/// out[i][j] = sum_k H_K[i][k] seg[k][j], times 1/sqrt(n) (exact, not the f32 scale).
fn reference_f64(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let k = hadamard_k(n).expect("supported width");
    let m = n / k;
    let mut v = x.to_vec();
    for seg in v.chunks_mut(m) {
        let mut h = 1;
        while h < m {
            for b in seg.chunks_mut(2 * h) {
                for i in 0..h {
                    let (p, q) = (b[i], b[i + h]);
                    b[i] = p + q;
                    b[i + h] = p - q;
                }
            }
            h *= 2;
        }
    }
    if k > 1 {
        let hk = k_matrix(k).expect("table K");
        v = (0..n)
            .map(|t| {
                (0..k)
                    .map(|kk| hk[(t / m) * k + kk] as f64 * v[kk * m + t % m])
                    .sum()
            })
            .collect();
    }
    let s = 1.0 / (n as f64).sqrt();
    v.iter().map(|y| y * s).collect()
}

/// Half the spacing of T's values at |y| (0 for f32): the output rounding allowance.
fn half_ulp<T: Element>(y: f64) -> f64 {
    let e = y.abs().max(f64::MIN_POSITIVE).log2().floor();
    match T::DTYPE {
        DType::F32 => 0.0,
        DType::F16 => 0.5 * (e.max(-14.0) - 10.0).exp2(),
        DType::Bf16 => 0.5 * (e - 7.0).exp2(),
    }
}

/// Transform the whole buffer once (untimed) and check 3 rows: error vs f64 relative to
/// max|y| (allowing T's own output rounding), and bit-exactness vs the crate's reference.
fn verify<T: Element>(buf: &mut [T], n: usize, rows: usize, isa: Isa) -> Result<String, String> {
    let check_rows = [0, rows / 2, rows - 1];
    let before: Vec<Vec<T>> = check_rows
        .iter()
        .map(|&r| buf[r * n..][..n].to_vec())
        .collect();
    let scale = normalized_scale(n);
    hadamard_rows_isa(isa, buf, rows, n, n, scale, 0).map_err(|e| e.to_string())?;
    let plan = HadamardPlan::new(n, 0).map_err(|e| e.to_string())?;
    let (mut worst, mut exact) = (0f64, true);
    for (&r, x) in check_rows.iter().zip(&before) {
        let y = &buf[r * n..][..n];
        let want = reference_f64(&x.iter().map(|v| v.to_f32() as f64).collect::<Vec<_>>());
        let ymax = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        for (got, w) in y.iter().zip(&want) {
            let err = (got.to_f32() as f64 - w).abs();
            if err > 1e-5 * ymax + half_ulp::<T>(*w) * (1.0 + 1e-6) {
                return Err(format!(
                    "row {r}: |{} - {w}| exceeds 1e-5 * max|y| + half ulp",
                    got.to_f32()
                ));
            }
            worst = worst.max((err - half_ulp::<T>(*w)).max(0.0) / ymax);
        }
        let mut r32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        hadamard_row_reference(&plan, &mut r32, scale);
        exact &= r32
            .iter()
            .zip(y)
            .all(|(a, b)| T::from_f32(*a).to_f32().to_bits() == b.to_f32().to_bits());
    }
    Ok(format!(
        "err beyond output rounding <= {worst:.1e} * max|y|, bit-exact vs crate reference: {}",
        if exact { "yes" } else { "NO" }
    ))
}

// ---------------------------------------------------------------- timing

struct Stats {
    med: f64,
    min: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    Stats {
        med: v[v.len() / 2],
        min: v[0],
    }
}

struct Line {
    case: String,
    dtype: &'static str,
    reps: usize,
    ours: Stats,
    strm: Stats,
    bytes_per_el: usize,
    note: String,
}

fn run_case<T: Element>(
    name: &'static str,
    n: usize,
    rows: usize,
    reps: usize,
    isa: Isa,
    stream_isa: Isa,
) -> Line {
    let len = n * rows;
    let mut b = Buf::<T>::new(len);
    let buf = b.s();
    fill(buf, (n * 31 + rows) as u64);
    let (_, sub0, rms0) = scan(buf);
    let check = match verify(buf, n, rows, isa) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("FAILED: n = {n} x {rows} {name}: {e}");
            std::process::exit(1);
        }
    };
    let scale = normalized_scale(n);
    // Warm-up: at least 2 pairs (1 for the 256 MiB case) and at least 50 ms.
    let warm_start = Instant::now();
    let mut warm = 0;
    while warm < if len >= 1 << 24 { 1 } else { 2 } || warm_start.elapsed().as_millis() < 50 {
        hadamard_rows_isa(isa, black_box(&mut *buf), rows, n, n, scale, 0).expect("transform");
        stream(black_box(&mut *buf), stream_isa);
        warm += 1;
    }
    // Small cases: several back-to-back calls per sample, so the timer does not dominate.
    let iters = (1usize << 17).div_ceil(len);
    let (mut to, mut ts) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..iters {
            hadamard_rows_isa(isa, black_box(&mut *buf), rows, n, n, scale, 0).expect("transform");
        }
        let a = t.elapsed().as_secs_f64() * 1e9 / (len * iters) as f64;
        let t = Instant::now();
        for _ in 0..iters {
            stream(black_box(&mut *buf), stream_isa);
        }
        let s = t.elapsed().as_secs_f64() * 1e9 / (len * iters) as f64;
        to.push(a);
        ts.push(s);
    }
    let (bad, sub, rms) = scan(buf);
    let mut note = check;
    note += &format!("; rms {rms0:.3} -> {rms:.3}, subnormals {sub0} -> {sub}");
    if bad > 0 {
        note += &format!(", {bad} NON-FINITE");
    }
    Line {
        case: format!("{n} x {rows}"),
        dtype: name,
        reps,
        ours: stats(to),
        strm: stats(ts),
        bytes_per_el: std::mem::size_of::<T>(),
        note,
    }
}

// ---------------------------------------------------------------- what limits the kernel

/// The core's clock in GHz while busy, measured (this VM has no hardware counters for
/// `perf stat`): a chain of dependent 64-bit `imul`, whose latency is 3 cycles on every
/// x86-64 core of the last 15 years; median of 5 runs of about 30 ms.
#[cfg(target_arch = "x86_64")]
fn core_ghz() -> f64 {
    let runs: Vec<f64> = (0..5)
        .map(|_| {
            let iters = 10_000_000u64;
            let mut x: u64 = 3;
            let t = Instant::now();
            for _ in 0..iters {
                // SAFETY: register arithmetic only.
                unsafe {
                    std::arch::asm!(
                        "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}",
                        inout(reg) x,
                        options(nomem, nostack, pure)
                    );
                }
                x = black_box(x);
            }
            let dt = t.elapsed().as_secs_f64();
            (iters * 4 * 3) as f64 / dt / 1e9
        })
        .collect();
    stats(runs).med
}

#[cfg(not(target_arch = "x86_64"))]
fn core_ghz() -> f64 {
    f64::NAN
}

/// Vector FP instructions per cycle the core sustains on `isa` (independent FMAs, 16
/// chains, so latency does not limit), at clock `ghz`.
fn fp_per_cycle(isa: Isa, ghz: f64) -> f64 {
    let iters = 2_000_000usize;
    let t = Instant::now();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: each variant is only called when the CPU has its instruction set.
    unsafe {
        match isa {
            Isa::Avx512 => fma_chains_avx512(iters),
            Isa::Avx2 => fma_chains_avx2(iters),
            Isa::Scalar => return f64::NAN,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    return f64::NAN;
    #[allow(unreachable_code)]
    {
        (iters * 16) as f64 / (t.elapsed().as_secs_f64() * ghz * 1e9)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(iters: usize) {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(black_box(0.999));
    let b = _mm512_set1_ps(black_box(1e-3));
    let mut acc = [_mm512_set1_ps(1.0); 16];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    black_box(acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(iters: usize) {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(black_box(0.999));
    let b = _mm256_set1_ps(black_box(1e-3));
    let mut acc = [_mm256_set1_ps(1.0); 16];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    black_box(acc);
}

/// Vector FP instructions the f32 kernels of `isa` issue per vector of output for width n
/// (read off kernel.rs): one add or sub per element and radix-2 stage (a butterfly is two
/// instructions for two vectors); stages inside a vector (the lowest log2(lanes)) cost a
/// permute besides their FMA; K > 1 adds K FMAs per output vector (the K x K mix); the
/// scale is one multiply. Loads and stores are left out: in L1 they fit in other ports.
fn fp_ops_per_vector(n: usize, isa: Isa) -> Option<usize> {
    let plan = HadamardPlan::new(n, 0).ok()?;
    let log2_lanes = match isa {
        Isa::Avx512 => 4,
        Isa::Avx2 => 3,
        Isa::Scalar => return None,
    };
    let l = plan.log2_m() as usize;
    let mix = if plan.k() > 1 { plan.k() } else { 0 };
    Some(l + l.min(log2_lanes) + mix + 1)
}

// ---------------------------------------------------------------- main

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
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut isa = None;
    for (i, a) in args.iter().enumerate() {
        let v = if a == "--isa" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--isa=").map(str::to_string)
        };
        if let Some(v) = v {
            isa = Some(
                Isa::ALL
                    .into_iter()
                    .find(|x| x.name() == v)
                    .unwrap_or_else(|| {
                        eprintln!("--isa {v}: expected avx512, avx2 or scalar");
                        std::process::exit(2)
                    }),
            );
        }
    }
    let active = active_isa();
    let isa = match (isa, &active) {
        (Some(i), _) => i,
        (None, Ok(i)) => *i,
        (None, Err(e)) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    };
    if !isa.is_available() {
        eprintln!("--isa {}: not available on this CPU", isa.name());
        std::process::exit(2);
    }
    let stream_isa = Isa::best();

    println!(
        "# libquarot {} Hadamard benchmark (single thread, in place, flags 0, scale 1/sqrt(n))",
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
        "- active ISA (dispatch::active_isa): {}; measured ISA: {}; stream loop: {} intrinsics",
        active
            .as_ref()
            .map_or_else(|e| e.to_string(), |i| i.name().to_string()),
        isa.name(),
        stream_isa.name()
    );
    println!(
        "- load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "- mode: {}",
        if quick {
            "--quick (rows / 16, 5 reps)"
        } else {
            "full"
        }
    );
    println!();

    let t0 = Instant::now();
    // Bring the core out of any low-power state before the first measurement (~0.3 s).
    let mut w = Buf::<f32>::new(4096 * 64);
    fill(w.s(), 1);
    while t0.elapsed().as_millis() < 300 {
        hadamard_rows_isa(isa, w.s(), 64, 4096, 4096, normalized_scale(4096), 0)
            .expect("transform");
    }
    drop(w);
    let ghz0 = core_ghz();
    let fp_cycle = fp_per_cycle(isa, ghz0);
    let mut lines = Vec::new();
    for (n, rows) in CASES {
        let rows = if quick {
            (rows / 16).max(rows.min(8))
        } else {
            rows
        };
        let len = n * rows;
        let reps = if quick {
            5
        } else if len >= 1 << 24 {
            11
        } else if len >= 1 << 22 {
            25
        } else {
            51
        };
        for dt in [DType::F32, DType::F16, DType::Bf16] {
            eprintln!("  running {n} x {rows} {dt:?} ({reps} reps) ...");
            lines.push(match dt {
                DType::F32 => run_case::<f32>("f32", n, rows, reps, isa, stream_isa),
                DType::F16 => run_case::<f16>("f16", n, rows, reps, isa, stream_isa),
                DType::Bf16 => run_case::<bf16>("bf16", n, rows, reps, isa, stream_isa),
            });
        }
    }

    let ghz1 = core_ghz();
    let ghz = (ghz0 + ghz1) / 2.0;
    println!(
        "- core clock while busy: {ghz0:.2} GHz at start, {ghz1:.2} GHz at end (dependent imul \
         chain, 3 cycles each; no hardware counters needed); {} FP instructions per cycle \
         sustained (16 independent FMA chains, {} vectors)",
        format_args!("{fp_cycle:.2}"),
        isa.name()
    );
    println!();
    println!(
        "ns per element; median (min) over the timed runs; ratio = ours / stream (medians, mins)."
    );
    println!(
        "FP bound (f32 rows only) = the vector FP instructions the kernel must issue per element \
         (fp_ops_per_vector in this file: stages, in-vector permutes, the K x K mix, the scale) \
         / the FP instructions per cycle measured above / the clock: the fastest the kernel's \
         arithmetic can run. % of bound = FP bound / ours (median)."
    );
    println!("GB/s counts read + write of the buffer: 2 * bytes / time (from the mins).");
    println!();
    println!("| n x rows | K | dtype | MiB | reps | ours ns/el med (min) | stream ns/el med (min) | ratio med (min) | ours GB/s | stream GB/s | ours cycles/el | FP ops/vector | FP bound ns/el | % of bound |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for l in &lines {
        let n: usize = l.case.split(' ').next().unwrap().parse().unwrap();
        let rows: usize = l.case.rsplit(' ').next().unwrap().parse().unwrap();
        let mib = (n * rows * l.bytes_per_el) as f64 / (1 << 20) as f64;
        let gbs = |ns: f64| 2.0 * l.bytes_per_el as f64 / ns;
        let lanes = match isa {
            Isa::Avx512 => 16.0,
            _ => 8.0,
        };
        let (ops, bound) = match (l.dtype, fp_ops_per_vector(n, isa)) {
            ("f32", Some(ops)) => {
                let b = ops as f64 / lanes / fp_cycle / ghz;
                (
                    ops.to_string(),
                    format!("{b:.3} | {:.0} %", 100.0 * b / l.ours.med),
                )
            }
            _ => ("–".into(), "– | –".into()),
        };
        println!(
            "| {} | {} | {} | {:.1} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.2} ({:.2}) | {:.1} | {:.1} | {:.2} | {} | {} |",
            l.case,
            hadamard_k(n).unwrap(),
            l.dtype,
            mib,
            l.reps,
            l.ours.med,
            l.ours.min,
            l.strm.med,
            l.strm.min,
            l.ours.med / l.strm.med,
            l.ours.min / l.strm.min,
            gbs(l.ours.min),
            gbs(l.strm.min),
            l.ours.med * ghz,
            ops,
            bound
        );
    }
    println!();
    println!(
        "Checks (untimed, rows 0, rows/2, rows-1 vs an f64 evaluation; data after the timed runs):"
    );
    println!();
    for l in &lines {
        println!("- {} {}: {}", l.case, l.dtype, l.note);
    }
    println!();
    println!(
        "- load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("- total bench time: {:.1} s", t0.elapsed().as_secs_f64());
}
