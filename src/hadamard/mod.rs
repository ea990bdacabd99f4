//! Which widths are supported, how K is chosen, and the safe transform API.
//!
//! For n = K * 2^m a row x is mapped to `y = scale * (H_K (x) H_{2^m}) x`: x is viewed as a
//! K x 2^m matrix (element i * 2^m + j is row i, column j), the Sylvester Hadamard H_{2^m}
//! (natural order, as `scipy.linalg.hadamard`) is applied to each row, then H_K across the
//! rows. With scale = 1/sqrt(n) this is Quark's / QuaRot's `matmul_hadU`.

pub mod construct;
mod k_tables;
pub mod reference;
pub(crate) mod table_cache;

use crate::dispatch::{self, Isa};
use crate::element::{DType, Element};
use crate::error::{Error, Status};
use crate::kernel::{self, KTables, Rows, ScratchLayout};
use crate::parallel;

/// Use H_K^T instead of H_K (Quark >= 0.11 `matmul_hadU`; also the inverse of the
/// normalized transform). No effect when K = 1 or K is symmetric (28, 36).
pub const FLAG_TRANSPOSE_K: u32 = 1;
/// Quark <= 0.10 `hadamard_transform` compatibility: zero-pad each row to the next power of
/// two, transform, keep the first n outputs. Any n >= 1 is accepted; for n that is not a
/// power of two the map is NOT orthogonal. K is not used.
pub const FLAG_PAD_TRUNCATE: u32 = 2;
/// Run rows on libquarot's worker pool (see [`crate::set_num_threads`]) instead of only on
/// the calling thread; transforms of fewer than [`PARALLEL_MIN_ELEMENTS`] elements still
/// run on the calling thread.
pub const FLAG_PARALLEL: u32 = 4;

/// Transforms with FLAG_PARALLEL and fewer than this many elements (rows * n) run on the
/// calling thread. Measured on a 2-vCPU VM, 4096-wide f32 rows, 2 threads, median ns per
/// element: 8 rows (32K elements) 0.5-1.0 on the pool vs 0.3-0.5 serial; from 64 to 512
/// rows the pool was up to 2x faster in some runs and slower in others (waking a worker is
/// slow and erratic here). Below 2^19 elements the pool is not worth it on average.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 19;
/// Opt-in for widths no Hadamard matrix is known for: transform each row as n / b
/// independent blocks of width b, b = [`block_size`]`(n)` (the largest supported width
/// dividing n; b = n when n is supported, so the flag changes nothing then). Weaker mixing
/// than a full rotation: values only mix within their block. The orthogonal scale is
/// then 1/sqrt(b), not 1/sqrt(n). Not combinable with [`FLAG_PAD_TRUNCATE`].
pub const FLAG_BLOCK_DIAGONAL: u32 = 16;
/// Every flag bit this version knows; any other bit is an error.
pub const KNOWN_FLAGS: u32 =
    FLAG_TRANSPOSE_K | FLAG_PAD_TRUNCATE | FLAG_PARALLEL | FLAG_BLOCK_DIAGONAL;

/// The K values, in the order QuaRot and Quark try them, then SpinQuant's 44 (which no
/// QuaRot width reaches: 44 * 2^m is divisible by no earlier K).
pub const K_ORDER: [usize; 12] = [172, 156, 140, 108, 60, 52, 36, 28, 40, 20, 12, 44];

/// The K used for width n. First QuaRot's rule, unchanged: the first of [`K_ORDER`] with
/// n % K == 0 and n / K a power of two; else 1 if n is a power of two. Otherwise the
/// smallest K = (odd part of n) * 2^j, j >= 2, n / K a power of two, that a Paley
/// construction gives ([`construct`], K <= [`construct::MAX_CONSTRUCTED_K`]). `None` if
/// there is none (unsupported) and for n = 0.
pub fn hadamard_k(n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    // n = K * 2^j exactly when n and K have the same odd part and K has no more factors
    // of two than n: no divisions (this runs on every call).
    let tz = n.trailing_zeros();
    let odd = n >> tz;
    if odd == 1 {
        return Some(1); // every table K has an odd factor > 1
    }
    if let Some(k) = K_ORDER
        .iter()
        .copied()
        .find(|&k| k >> k.trailing_zeros() == odd && k.trailing_zeros() <= tz)
    {
        return Some(k);
    }
    if odd > construct::MAX_CONSTRUCTED_K / 4 {
        return None;
    }
    (2..=tz)
        .map(|j| odd << j)
        .take_while(|&k| k <= construct::MAX_CONSTRUCTED_K)
        .find(|&k| construct::construction(k).is_some())
}

/// The block width of [`FLAG_BLOCK_DIAGONAL`] for rows of width n: the largest supported
/// width dividing n (n itself when n is supported), or `None` when only 1 divides n (n
/// odd and unsupported, or n = 0). It is (largest odd divisor o of n's odd part that some
/// K has as odd part, with K's power of two not above n's) * (the power of two of n).
pub fn block_size(n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    if hadamard_k(n).is_some() {
        return Some(n); // also n = 1 (found by fuzz/: it gave None)
    }
    let tz = n.trailing_zeros();
    let odd = n >> tz;
    // Odd divisors o of `odd`, largest first, with o << tz supported. A supported width's
    // odd part is a K's odd part, at most MAX_CONSTRUCTED_K, so only those are tried:
    // at most 512 candidates whatever n is (scanning all divisors of a 63-bit odd part
    // would not finish; found by fuzz/).
    let b = (1..=odd.min(construct::MAX_CONSTRUCTED_K))
        .rev()
        .filter(|&o| o % 2 == 1 && odd.is_multiple_of(o))
        .find(|&o| hadamard_k(o << tz).is_some())
        .map(|o| o << tz)?;
    (b > 1).then_some(b)
}

/// Whether H_K exists here: one of [`K_ORDER`] or an order with a Paley construction
/// ([`construct`]). Not every such K is chosen by a width: a constructed K whose odd part is
/// also a table K's (24 = 3 * 8, say) loses to that table K.
pub fn is_supported_k(k: usize) -> bool {
    K_ORDER.contains(&k) || construct::construction(k).is_some()
}

/// The supported widths nearest to n: the largest <= n and the smallest >= n (`None` where
/// there is none, e.g. below 1 or above `usize::MAX`).
pub fn nearest_supported(n: usize) -> (Option<usize>, Option<usize>) {
    let mut below: Option<usize> = None;
    let mut above: Option<usize> = None;
    let constructed = (4..=construct::MAX_CONSTRUCTED_K)
        .step_by(4)
        .filter(|&k| construct::construction(k).is_some());
    for k in std::iter::once(1).chain(K_ORDER).chain(constructed) {
        // Every K * 2^m is supported (possibly with another K), so scan each K's ladder.
        let mut w = k;
        loop {
            if w <= n {
                below = Some(below.map_or(w, |b| b.max(w)));
            }
            if w >= n {
                above = Some(above.map_or(w, |a| a.min(w)));
                break;
            }
            match w.checked_mul(2) {
                Some(next) => w = next,
                None => break,
            }
        }
    }
    (below, above)
}

/// `1/sqrt(n)` rounded to f32: the scale of the normalized (orthogonal) transform, as in
/// `matmul_hadU` and `hadamard_multiply`. 0 for n = 0.
pub fn normalized_scale(n: usize) -> f32 {
    if n == 0 {
        0.0
    } else {
        (1.0 / (n as f64).sqrt()) as f32
    }
}

/// The +-1 entries of H_K, row-major: for K in [`K_ORDER`] bit-identical to Quark's
/// `_get_hadamard_K` / SpinQuant's `get_had44`; for other K the Paley construction of
/// [`construct`] (see [`is_supported_k`]); `None` for any other K.
pub fn k_matrix(k: usize) -> Option<Vec<i8>> {
    let words = k_words(k)?;
    let wpr = k.div_ceil(64);
    Some(
        (0..k * k)
            .map(|t| {
                let (i, j) = (t / k, t % k);
                if words[i * wpr + j / 64] >> (j % 64) & 1 == 1 {
                    -1
                } else {
                    1
                }
            })
            .collect(),
    )
}

fn k_words(k: usize) -> Option<&'static [u64]> {
    use k_tables::*;
    Some(match k {
        12 => &HAD12,
        20 => &HAD20,
        28 => &HAD28,
        36 => &HAD36,
        40 => &HAD40,
        44 => &HAD44,
        52 => &HAD52,
        60 => &HAD60,
        108 => &HAD108,
        140 => &HAD140,
        156 => &HAD156,
        172 => &HAD172,
        _ => return construct::constructed_words(k),
    })
}

/// A validated transform: width, K, flags. Cheap to build; holds no buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HadamardPlan {
    /// Transform width: n, or the block width of FLAG_BLOCK_DIAGONAL.
    n: usize,
    /// Row width (n times the number of blocks).
    width: usize,
    k: usize,
    log2_m: u32,
    padded_len: usize,
    transpose: bool,
    pad: bool,
    parallel: bool,
}

impl HadamardPlan {
    /// Validate width `n` and `flags` (see the `FLAG_*` constants).
    pub fn new(n: usize, flags: u32) -> Result<HadamardPlan, Error> {
        HadamardPlan::new_named(n, flags, "n")
    }

    /// [`HadamardPlan::new`] for a width the caller calls `name` (`block_size`,
    /// `head_dim`, ...): the error messages name it so.
    pub(crate) fn new_named(n: usize, flags: u32, name: &str) -> Result<HadamardPlan, Error> {
        // The weight-rotation flag is a known QUAROT_FLAG_* value, just not a transform one.
        let unknown = flags & !KNOWN_FLAGS & !crate::rotate::ROTATE_FLAG_F32_ACCUMULATE;
        if unknown != 0 {
            return Err(Error::new(
                Status::InvalidFlags,
                format!(
                    "flags = {flags:#x} has unknown bits {unknown:#x} (known: {KNOWN_FLAGS:#x})"
                ),
            ));
        }
        if flags & crate::rotate::ROTATE_FLAG_F32_ACCUMULATE != 0 {
            return Err(Error::new(
                Status::InvalidFlags,
                format!(
                    "flags = {flags:#x}: QUAROT_FLAG_F32_ACCUMULATE (0x8) is only for the \
                     weight-rotation functions (quarot_rotate_in_channels / \
                     quarot_rotate_out_channels); the transforms and handles compute in float \
                     already and do not take it"
                ),
            ));
        }
        if n == 0 {
            return Err(Error::new(
                Status::UnsupportedSize,
                format!("{name} = 0: the width must be at least 1"),
            ));
        }
        let transpose = flags & FLAG_TRANSPOSE_K != 0;
        let parallel = flags & FLAG_PARALLEL != 0;
        if flags & FLAG_BLOCK_DIAGONAL != 0 {
            if flags & FLAG_PAD_TRUNCATE != 0 {
                return Err(Error::new(
                    Status::InvalidFlags,
                    "QUAROT_FLAG_BLOCK_DIAGONAL and QUAROT_FLAG_PAD_TRUNCATE cannot be combined",
                ));
            }
            let Some(b) = block_size(n) else {
                return Err(Error::new(
                    Status::UnsupportedSize,
                    format!(
                        "{name} = {n}: no Hadamard block wider than 1 divides it ({name} is odd)"
                    ),
                ));
            };
            let inner = HadamardPlan::new_named(b, flags & !FLAG_BLOCK_DIAGONAL, name)?;
            return Ok(HadamardPlan { width: n, ..inner });
        }
        if flags & FLAG_PAD_TRUNCATE != 0 {
            let padded_len = n.checked_next_power_of_two().ok_or_else(|| {
                Error::new(
                    Status::SizeOverflow,
                    format!("{name} = {n}: the padded width overflows size_t"),
                )
            })?;
            return Ok(HadamardPlan {
                n,
                width: n,
                k: 1,
                log2_m: padded_len.trailing_zeros(),
                padded_len,
                transpose,
                pad: true,
                parallel,
            });
        }
        let Some(k) = hadamard_k(n) else {
            let (below, above) = nearest_supported(n);
            let show = |w: Option<usize>| w.map_or("none".to_string(), |w| w.to_string());
            let block = match block_size(n) {
                Some(b) => format!(
                    "; or QUAROT_FLAG_BLOCK_DIAGONAL: {} blocks of {b} (weaker mixing)",
                    n / b
                ),
                None => String::new(),
            };
            return Err(Error::new(
                Status::UnsupportedSize,
                format!(
                    "{name} = {n} is not K*2^m for a K with a known Hadamard matrix (QuaRot's 12, 20, 28, 36, 40, \
                     44, 52, 60, 108, 140, 156, 172, or a Paley order <= {}: none for odd part {}); \
                     nearest supported widths: {}, {}{block}",
                    construct::MAX_CONSTRUCTED_K,
                    n >> n.trailing_zeros(),
                    show(below),
                    show(above)
                ),
            ));
        };
        Ok(HadamardPlan {
            n,
            width: n,
            k,
            log2_m: (n / k).trailing_zeros(),
            padded_len: n,
            transpose,
            pad: false,
            parallel,
        })
    }

    /// Transform width: n, or the block width with [`FLAG_BLOCK_DIAGONAL`].
    pub fn n(&self) -> usize {
        self.n
    }
    /// Row width: the n the plan was made for (a multiple of [`Self::n`]).
    pub fn width(&self) -> usize {
        self.width
    }
    /// Blocks per row (1 unless [`FLAG_BLOCK_DIAGONAL`] split an unsupported width).
    pub fn blocks(&self) -> usize {
        self.width / self.n
    }
    /// K (1 for powers of two and for the pad-truncate mode).
    pub fn k(&self) -> usize {
        self.k
    }
    /// log2 of the power-of-two factor (of the padded width in pad-truncate mode).
    pub fn log2_m(&self) -> u32 {
        self.log2_m
    }
    /// Whether H_K^T is used.
    pub fn transposed(&self) -> bool {
        self.transpose
    }
    /// Whether this is the pad-truncate compatibility mode.
    pub fn pads(&self) -> bool {
        self.pad
    }
    /// Width after padding (n unless [`FLAG_PAD_TRUNCATE`]).
    pub fn padded_len(&self) -> usize {
        self.padded_len
    }
    /// Whether `scale * H` is orthogonal for scale = 1/sqrt(n) (false only for the
    /// pad-truncate mode with n not a power of two).
    pub fn is_orthogonal(&self) -> bool {
        !self.pad || self.n.is_power_of_two()
    }

    /// Fill `out` (K * K) with H_K, or H_K^T when transposed, as +-1.0.
    pub(crate) fn expand_k_table(&self, out: &mut [f32]) {
        let k = self.k;
        let words = k_words(k).expect("plans only hold table K values");
        let wpr = k.div_ceil(64);
        for i in 0..k {
            for j in 0..k {
                let (r, c) = if self.transpose { (j, i) } else { (i, j) };
                let neg = words[r * wpr + c / 64] >> (c % 64) & 1 == 1;
                out[i * k + j] = if neg { -1.0 } else { 1.0 };
            }
        }
    }

    /// Check a strided batch against a buffer of `len` elements: rows * stride must not
    /// overflow, stride >= n, and the last row must end inside the buffer.
    /// `what` names the buffer and `stride_name` its stride parameter in the messages.
    pub(crate) fn check_rows(
        &self,
        what: &str,
        stride_name: &str,
        rows: usize,
        stride: usize,
        elem_size: usize,
    ) -> Result<usize, Error> {
        if stride < self.width {
            return Err(Error::new(
                Status::InvalidStride,
                format!(
                    "{stride_name} = {stride} is smaller than n = {}",
                    self.width
                ),
            ));
        }
        if rows == 0 {
            return Ok(0);
        }
        (rows - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(self.width))
            .filter(|&x| x.checked_mul(elem_size).is_some_and(|b| b <= isize::MAX as usize))
            .ok_or_else(|| {
                Error::new(
                    Status::SizeOverflow,
                    format!("{what}: rows = {rows} with {stride_name} = {stride} overflows the address space"),
                )
            })
    }
}

/// The geometry of one side of a job: `rows` rows of `elem_size`-byte elements, `stride`
/// elements apart. `name` and `stride_name` are what the caller calls the buffer and its
/// stride (`src` / `src_stride`, `data` / `row_stride`), for the error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Side<'a> {
    pub name: &'a str,
    pub stride_name: &'a str,
    pub stride: usize,
    pub elem_size: usize,
}

/// Validate everything about a job except its pointers, in the order a caller sees the
/// errors: flags and n, scale, then each side's stride and extent. Returns the plan and the
/// number of elements each side spans.
pub(crate) fn check_job(
    n: usize,
    flags: u32,
    scale: f32,
    rows: usize,
    src: Side<'_>,
    dst: Side<'_>,
) -> Result<(HadamardPlan, usize, usize), Error> {
    let plan = HadamardPlan::new(n, flags)?;
    if !scale.is_finite() {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("scale = {scale} is not finite"),
        ));
    }
    let src_len = plan.check_rows(src.name, src.stride_name, rows, src.stride, src.elem_size)?;
    let dst_len = plan.check_rows(dst.name, dst.stride_name, rows, dst.stride, dst.elem_size)?;
    Ok((plan, src_len, dst_len))
}

fn check_len(what: &str, have: usize, need: usize) -> Result<(), Error> {
    if have < need {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("{what} has {have} elements, the rows need {need}"),
        ));
    }
    Ok(())
}

/// Transform `rows` rows of `data` in place: row r is `data[r * row_stride ..][..n]`.
/// Elements between rows are not touched. See [`HadamardPlan::new`] for `flags`.
pub fn hadamard_rows<T: Element>(
    data: &mut [T],
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    hadamard_rows_isa(
        dispatch::active_isa()?,
        data,
        rows,
        n,
        row_stride,
        scale,
        flags,
    )
}

/// [`hadamard_rows`] on a given instruction set (for tests and benchmarks); an error if
/// `isa` is not available on this CPU.
#[doc(hidden)]
pub fn hadamard_rows_isa<T: Element>(
    isa: Isa,
    data: &mut [T],
    rows: usize,
    n: usize,
    row_stride: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    let side = Side {
        name: "data",
        stride_name: "row_stride",
        stride: row_stride,
        elem_size: std::mem::size_of::<T>(),
    };
    let (plan, need, _) = check_job(n, flags, scale, rows, side, side)?;
    check_len("data", data.len(), need)?;
    dispatch::check_available(isa)?;
    let ptr = data.as_mut_ptr();
    let job = Rows {
        src: ptr.cast_const(),
        src_stride: row_stride,
        dst: ptr,
        dst_stride: row_stride,
        rows,
    };
    // SAFETY: the slice covers every row (checked above) and src == dst row for row.
    unsafe { execute(isa, &plan, scale, job) }
}

/// Transform `rows` rows from `src` (row r at `src[r * src_stride ..][..n]`) into `dst`
/// (row r at `dst[r * dst_stride ..][..n]`), converting the element type on the way.
#[allow(clippy::too_many_arguments)]
pub fn hadamard_rows_into<S: Element, D: Element>(
    src: &[S],
    src_stride: usize,
    dst: &mut [D],
    dst_stride: usize,
    rows: usize,
    n: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    hadamard_rows_into_isa(
        dispatch::active_isa()?,
        src,
        src_stride,
        dst,
        dst_stride,
        rows,
        n,
        scale,
        flags,
    )
}

/// [`hadamard_rows_into`] on a given instruction set (for tests and benchmarks).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn hadamard_rows_into_isa<S: Element, D: Element>(
    isa: Isa,
    src: &[S],
    src_stride: usize,
    dst: &mut [D],
    dst_stride: usize,
    rows: usize,
    n: usize,
    scale: f32,
    flags: u32,
) -> Result<(), Error> {
    let (plan, need_src, need_dst) = check_job(
        n,
        flags,
        scale,
        rows,
        Side {
            name: "src",
            stride_name: "src_stride",
            stride: src_stride,
            elem_size: std::mem::size_of::<S>(),
        },
        Side {
            name: "dst",
            stride_name: "dst_stride",
            stride: dst_stride,
            elem_size: std::mem::size_of::<D>(),
        },
    )?;
    check_len("src", src.len(), need_src)?;
    check_len("dst", dst.len(), need_dst)?;
    dispatch::check_available(isa)?;
    let job = Rows {
        src: src.as_ptr(),
        src_stride,
        dst: dst.as_mut_ptr(),
        dst_stride,
        rows,
    };
    // SAFETY: both slices cover their rows (checked above) and cannot overlap (&, &mut).
    unsafe { execute(isa, &plan, scale, job) }
}

/// Run a validated job: allocate scratch (before touching any data, so an allocation
/// failure leaves the rows unchanged), then run on this thread or on the pool.
///
/// # Safety
/// `job` must describe valid memory for every row, with src and dst either the same rows
/// or disjoint; `isa` must be available.
pub(crate) unsafe fn execute<Ts: Element, Td: Element>(
    isa: Isa,
    plan: &HadamardPlan,
    scale: f32,
    job: Rows<Ts, Td>,
) -> Result<(), Error> {
    if job.rows == 0 {
        return Ok(());
    }
    if plan.parallel
        && job.rows > 1
        && job.rows.saturating_mul(plan.width()) >= PARALLEL_MIN_ELEMENTS
    {
        // SAFETY: forwarded.
        return unsafe { parallel::execute_parallel(isa, plan, scale, job) };
    }
    // The calling thread's kept scratch (taken out while in use: a re-entrant call on this
    // thread would find none and use a fresh one).
    let mut scratch = SCRATCH.with(|c| c.take()).unwrap_or_default();
    // SAFETY: forwarded.
    let result = unsafe { execute_with_scratch(isa, plan, scale, job, &mut scratch) };
    SCRATCH.with(|c| c.set(Some(scratch)));
    result
}

thread_local! {
    /// Per-thread scratch of the serial transforms (16-bit output wider than the first pass,
    /// K > 1, pad-truncate): grown on demand and kept, so repeated calls on a thread
    /// allocate nothing. At most 2 * max(8192, n) + 32 * K floats (the kernel's
    /// `ScratchLayout`: work rows or the padded row, the mixing panel; the K x K tables
    /// are shared by all threads, see `table_cache`).
    static SCRATCH: std::cell::Cell<Option<Vec<f32>>> = const { std::cell::Cell::new(None) };
}

/// Run a validated job on this thread with a caller-kept scratch vector, grown (never
/// shrunk) to what the job needs: the online handles keep one per thread, so steady-state
/// calls allocate nothing. The scratch's old contents do not matter (every value the
/// kernels read they wrote first in the same call).
///
/// # Safety
/// As [`execute`]; the plan must not be parallel.
pub(crate) unsafe fn execute_with_scratch<Ts: Element, Td: Element>(
    isa: Isa,
    plan: &HadamardPlan,
    scale: f32,
    job: Rows<Ts, Td>,
    scratch: &mut Vec<f32>,
) -> Result<(), Error> {
    if job.rows == 0 {
        return Ok(());
    }
    let tables = KTables::for_plan(plan, isa)?;
    let need = scratch_len(plan, isa, Td::DTYPE, job.rows);
    grow(scratch, need, 0.0)?;
    // SAFETY: forwarded; scratch has the layout's length.
    unsafe { run_blocks(isa, plan, tables, scale, job, &mut scratch[..need]) };
    Ok(())
}

/// Scratch values `run_blocks` needs for `rows` rows.
pub(crate) fn scratch_len(plan: &HadamardPlan, isa: Isa, dst: DType, rows: usize) -> usize {
    ScratchLayout::new(plan, isa, dst, rows.saturating_mul(plan.blocks())).len()
}

/// `kernel::run` on rows of `plan.width()`: with FLAG_BLOCK_DIAGONAL each row is
/// `plan.blocks()` rows of width `plan.n()` (one batch when rows are contiguous).
///
/// # Safety
/// As `kernel::run`, with `scratch` of `scratch_len(plan, isa, Td::DTYPE, job.rows)` values.
pub(crate) unsafe fn run_blocks<Ts: Element, Td: Element>(
    isa: Isa,
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    job: Rows<Ts, Td>,
    scratch: &mut [f32],
) {
    let blocks = plan.blocks();
    let b = plan.n();
    let as_blocks = |row: Rows<Ts, Td>, rows: usize| Rows {
        src: row.src,
        src_stride: b,
        dst: row.dst,
        dst_stride: b,
        rows,
    };
    // SAFETY (all three): the block rows cover exactly the caller's rows.
    unsafe {
        if blocks == 1 {
            kernel::run(isa, plan, tables, scale, job, scratch);
        } else if job.src_stride == plan.width() && job.dst_stride == plan.width() {
            let all = as_blocks(job, job.rows * blocks);
            kernel::run(isa, plan, tables, scale, all, scratch);
        } else {
            for r in 0..job.rows {
                let row = as_blocks(job.sub(r, 1), blocks);
                kernel::run(isa, plan, tables, scale, row, scratch);
            }
        }
    }
}

/// Grow `v` to at least `len` values (new ones = `fill`), or `OutOfMemory`.
pub(crate) fn grow<V: Copy>(v: &mut Vec<V>, len: usize, fill: V) -> Result<(), Error> {
    if v.len() < len {
        v.try_reserve_exact(len - v.len()).map_err(|_| {
            Error::new(
                Status::OutOfMemory,
                format!("could not allocate {len} values of scratch"),
            )
        })?;
        v.resize(len, fill);
    }
    Ok(())
}

/// A zeroed f32 buffer, or `OutOfMemory` instead of an abort.
pub(crate) fn alloc_scratch(len: usize) -> Result<Vec<f32>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::new(
            Status::OutOfMemory,
            format!("could not allocate {len} f32 values of scratch"),
        )
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hadamard_k` avoids divisions; it must choose exactly what QuaRot's rule (the first
    /// K of the order with n % K == 0 and n / K a power of two, else 1 for powers of two)
    /// chooses, and otherwise the smallest constructed K with n / K a power of two.
    #[test]
    fn k_choice_matches_quarot_rule() {
        let rule = |n: usize| {
            K_ORDER
                .iter()
                .copied()
                .find(|&k| n.is_multiple_of(k) && (n / k).is_power_of_two())
                .or(if n.is_power_of_two() { Some(1) } else { None })
                .or_else(|| {
                    (4..=construct::MAX_CONSTRUCTED_K).step_by(4).find(|&k| {
                        n.is_multiple_of(k)
                            && (n / k).is_power_of_two()
                            && construct::construction(k).is_some()
                    })
                })
        };
        let mut checked = 0;
        let mut supported = 0;
        for n in (0..1usize << 17).chain([usize::MAX, usize::MAX - 1, 172 << 50, 3 << 60]) {
            let got = hadamard_k(n);
            let want = if n == 0 { None } else { rule(n) };
            assert_eq!(got, want, "n = {n}");
            checked += 1;
            supported += got.is_some() as usize;
        }
        assert_eq!(checked, (1 << 17) + 4);
        assert!(supported > 100, "{supported}");
    }
}
