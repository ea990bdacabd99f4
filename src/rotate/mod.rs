//! Weight rotation: Quark's `rotate_in_channels2` / `rotate_out_channels2`
//! (`multiply_with_reshape`), blockwise, in place, for f32 / f16 / bf16 weights.
//!
//! W is out_features x in_features, row-major, rows `row_stride` elements apart.
//! - in-channels, rotation R of size r (r divides in_features): every block of r
//!   consecutive columns becomes W[:, block] * R;
//! - out-channels (r divides out_features): every block of r rows becomes R^T * W[block, :],
//!   and bias[block] becomes R^T * bias[block].
//!
//! Both are "x -> x * R" on a set of logical rows of length r (for out-channels a logical
//! row is one column of a block, or a block of the bias), so one engine serves both:
//! logical rows are gathered a panel at a time into a contiguous buffer, multiplied, and
//! rounded once back into place. Extra memory is O(panel) plus, for a dense R, one packed
//! copy of R; never a copy of W.

mod fwht64;
pub mod hadamard64;
pub mod matrices;

pub use hadamard64::{quark_hadamard_scale, HadamardLayout, HadamardRotation};

use crate::dispatch::{self, Isa};
use crate::element::Element;
use crate::error::{Error, Status};
use crate::gemm::{self, AlignedBuf, PackedB, Real, Workspace};
use crate::hadamard::{hadamard_k, HadamardPlan, FLAG_PARALLEL};
use crate::parallel;

/// Accumulate the dense product in f32 (R and the weights rounded to f32 first) instead
/// of f64: about twice as fast, and no longer bit-identical to Quark. Rejected for
/// Hadamard rotations, which always compute in f64.
pub const ROTATE_FLAG_F32_ACCUMULATE: u32 = 8;
/// Flags the rotation functions accept: [`FLAG_PARALLEL`] (use libquarot's worker pool)
/// and [`ROTATE_FLAG_F32_ACCUMULATE`].
pub const ROTATE_KNOWN_FLAGS: u32 = FLAG_PARALLEL | ROTATE_FLAG_F32_ACCUMULATE;

/// Logical rows per panel of the dense path: big enough to amortize packing the
/// panel, small enough that A and C panels stay a few MiB; a multiple of the GEMM register
/// tiles' heights (14 for AVX-512, 6 for AVX2) so no panel ends in an edge tile
/// (measured: 192 rows cost 2.6 % more than 252 at 4096 x 4096).
const PANEL_ROWS: usize = 252;
/// Logical rows per panel of the Hadamard path (enough to read adjacent columns together).
const HADAMARD_PANEL_ROWS: usize = 32;

/// The rotation R (r x r) applied to each block.
#[derive(Clone, Copy, Debug)]
pub enum Rotation<'a> {
    /// A dense row-major r x r matrix of f64 (as Quark requires), `matrix.len() == r * r`.
    Dense {
        /// Row-major entries.
        matrix: &'a [f64],
        /// r.
        n: usize,
    },
    /// A Hadamard rotation, applied with the fast transform without forming R.
    Hadamard(HadamardRotation<'a>),
}

impl Rotation<'_> {
    /// r.
    pub fn n(&self) -> usize {
        match self {
            Rotation::Dense { n, .. } => *n,
            Rotation::Hadamard(h) => h.n,
        }
    }
}

/// Which side of W is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channels {
    In,
    Out,
}

/// The logical rows x (length r) that become x * R, as (buffer, offset, step) triples.
#[derive(Clone, Copy, Debug)]
struct RowSet {
    channels: Channels,
    r: usize,
    in_features: usize,
    row_stride: usize,
    weight_rows: usize,
    bias_rows: usize,
}

impl RowSet {
    fn new(
        channels: Channels,
        r: usize,
        out_features: usize,
        in_features: usize,
        row_stride: usize,
        bias: bool,
    ) -> RowSet {
        let (weight_rows, bias_rows) = match channels {
            Channels::In => (out_features * (in_features / r), 0),
            Channels::Out => (
                (out_features / r) * in_features,
                if bias { out_features / r } else { 0 },
            ),
        };
        RowSet {
            channels,
            r,
            in_features,
            row_stride,
            weight_rows,
            bias_rows,
        }
    }

    fn len(&self) -> usize {
        self.weight_rows + self.bias_rows
    }

    /// (in the bias?, offset of the first element, step between elements) of row `t`.
    #[inline]
    fn row(&self, t: usize) -> (bool, usize, usize) {
        match self.channels {
            Channels::In => {
                let per_row = self.in_features / self.r;
                let (i, j) = (t / per_row, t % per_row);
                (false, i * self.row_stride + j * self.r, 1)
            }
            Channels::Out if t < self.weight_rows => {
                let (j, c) = (t / self.in_features, t % self.in_features);
                (false, j * self.r * self.row_stride + c, self.row_stride)
            }
            Channels::Out => (true, (t - self.weight_rows) * self.r, 1),
        }
    }
}

/// Raw pointers to the weight and bias, shared by the worker threads; each logical row is
/// touched by exactly one of them.
struct Target<T> {
    weight: *mut T,
    bias: *mut T,
}
impl<T> Clone for Target<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Target<T> {}
// SAFETY: workers write disjoint logical rows (disjoint elements) of buffers the caller
// lent exclusively for the call.
unsafe impl<T> Send for Target<T> {}
unsafe impl<T> Sync for Target<T> {}

impl<T: Element> Target<T> {
    /// Runs of logical rows `t0 .. t0 + count` that are adjacent columns of the weight
    /// (same step > 1, offsets one apart): `f(first_index, run_length, buffer, offset, step)`.
    /// Copying such a run element-row by element-row reads memory in order instead of one
    /// element per cache line (and per page) as a column-by-column copy would.
    #[inline(always)]
    fn runs(
        &self,
        rows: &RowSet,
        t0: usize,
        count: usize,
        mut f: impl FnMut(usize, usize, *mut T, usize, usize),
    ) {
        let mut i = 0;
        while i < count {
            let (in_bias, off, step) = rows.row(t0 + i);
            let mut len = 1;
            if step != 1 {
                while i + len < count && rows.row(t0 + i + len) == (in_bias, off + len, step) {
                    len += 1;
                }
            }
            f(
                i,
                len,
                if in_bias { self.bias } else { self.weight },
                off,
                step,
            );
            i += len;
        }
    }

    /// Copy logical rows `t0 .. t0 + count` into `out` (count x r, row-major), widened,
    /// element k multiplied by `signs[k]` when given (exact: they are +-1).
    ///
    /// # Safety
    /// The row set must describe valid memory of this target.
    #[inline(always)]
    unsafe fn gather<F: Real>(
        &self,
        rows: &RowSet,
        t0: usize,
        count: usize,
        out: &mut [F],
        signs: Option<&[f64]>,
    ) {
        let r = rows.r;
        let widen = |v: T| f64::from(v.to_f32());
        self.runs(rows, t0, count, |i, len, base, off, step| {
            if step == 1 {
                // A contiguous row: a plain converting copy the compiler vectorizes.
                // SAFETY: forwarded; the row has r elements.
                let src = unsafe { std::slice::from_raw_parts(base.add(off), r) };
                let out = &mut out[i * r..(i + 1) * r];
                match signs {
                    Some(s) => {
                        for ((o, &v), &s) in out.iter_mut().zip(src).zip(&s[..r]) {
                            *o = F::from_f64(widen(v) * s);
                        }
                    }
                    None => {
                        for (o, &v) in out.iter_mut().zip(src) {
                            *o = F::from_f64(widen(v));
                        }
                    }
                }
                return;
            }
            for k in 0..r {
                let s = signs.map_or(1.0, |s| s[k]);
                for q in 0..len {
                    // SAFETY: forwarded.
                    let v = unsafe { *base.add(off + q + k * step) };
                    out[(i + q) * r + k] = F::from_f64(widen(v) * s);
                }
            }
        });
    }

    /// Round rows of `x` (count x r), each value multiplied by `scale` when given, once to
    /// T and store them as logical rows `t0 ..`.
    ///
    /// # Safety
    /// As `gather`.
    #[inline(always)]
    unsafe fn scatter<F: Real>(
        &self,
        rows: &RowSet,
        t0: usize,
        count: usize,
        x: &[F],
        scale: Option<f64>,
    ) {
        let r = rows.r;
        // x * 1.0 is exact, so no scale and a scale of 1 are the same.
        let c = scale.unwrap_or(1.0);
        let round = |v: F| T::from_f64(v.to_f64() * c);
        self.runs(rows, t0, count, |i, len, base, off, step| {
            if step == 1 {
                // SAFETY: forwarded; the row has r elements and no other thread's.
                let dst = unsafe { std::slice::from_raw_parts_mut(base.add(off), r) };
                for (d, &v) in dst.iter_mut().zip(&x[i * r..(i + 1) * r]) {
                    *d = round(v);
                }
                return;
            }
            for k in 0..r {
                for q in 0..len {
                    // SAFETY: forwarded.
                    unsafe { *base.add(off + q + k * step) = round(x[(i + q) * r + k]) };
                }
            }
        });
    }
}

fn err(status: Status, message: String) -> Error {
    Error::new(status, message)
}

/// Divisors of `dim` nearest to `r`, for error messages.
fn nearest_divisors(dim: usize, r: usize) -> String {
    // A linear scan: fine for layer sizes, not for absurd ones (fuzz/ found a call with
    // dim near 2^64 that never returned).
    if dim > 1 << 24 {
        return "not searched (dimension above 2^24)".to_string();
    }
    let below = (1..=r.min(dim)).rev().find(|d| dim.is_multiple_of(*d));
    let above = (r.max(1)..=dim).find(|d| dim.is_multiple_of(*d));
    match (below, above) {
        (Some(b), Some(a)) if a != b => format!("{b} or {a}"),
        (Some(b), _) => b.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => "none".to_string(),
    }
}

/// Everything checked before any element is written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn validate(
    channels: Channels,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    if flags & !ROTATE_KNOWN_FLAGS != 0 {
        return Err(err(
            Status::InvalidFlags,
            format!(
                "flags = {flags:#x} has bits {:#x} that weight rotation does not know (known: {ROTATE_KNOWN_FLAGS:#x})",
                flags & !ROTATE_KNOWN_FLAGS
            ),
        ));
    }
    if row_stride < in_features {
        return Err(err(
            Status::InvalidStride,
            format!("row_stride = {row_stride} is smaller than in_features = {in_features}"),
        ));
    }
    let r = rotation.n();
    let (dim_name, dim) = match channels {
        Channels::In => ("in_features", in_features),
        Channels::Out => ("out_features", out_features),
    };
    if r == 0 {
        return Err(err(Status::InvalidArgument, "rotation_n = 0".to_string()));
    }
    if !dim.is_multiple_of(r) {
        return Err(err(
            Status::InvalidArgument,
            format!(
                "rotation_n = {r} does not divide {dim_name} = {dim}; divisors of {dim_name} nearest to it: {}",
                nearest_divisors(dim, r)
            ),
        ));
    }
    if out_features > 0 {
        (out_features - 1)
            .checked_mul(row_stride)
            .and_then(|x| x.checked_add(in_features))
            .filter(|&x| x.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
            .ok_or_else(|| {
                err(
                    Status::SizeOverflow,
                    format!("out_features = {out_features} with row_stride = {row_stride} overflows the address space"),
                )
            })?;
    }
    match rotation {
        Rotation::Dense { matrix, n } => {
            let need = n.checked_mul(*n).ok_or_else(|| {
                err(
                    Status::SizeOverflow,
                    format!("rotation_n = {n} squared overflows"),
                )
            })?;
            if matrix.len() < need {
                return Err(err(
                    Status::InvalidArgument,
                    format!(
                        "rotation has {} entries, rotation_n^2 = {need}",
                        matrix.len()
                    ),
                ));
            }
            // Finiteness is checked while R is packed (`dense`), before any write: a
            // separate pass over a large R cost about 5 % of the whole call.
        }
        Rotation::Hadamard(h) => {
            if flags & ROTATE_FLAG_F32_ACCUMULATE != 0 {
                return Err(err(
                    Status::InvalidFlags,
                    "the f32-accumulate flag applies to dense rotations only; the Hadamard path always computes in f64".to_string(),
                ));
            }
            check_hadamard(h, "rotation_n")?;
        }
    }
    Ok(())
}

/// The size of a Hadamard rotation: UnsupportedSize for 0 and for a width with no
/// Hadamard matrix. `name` is what the caller calls the size (`rotation_n`, `n`).
pub(crate) fn check_hadamard_n(n: usize, name: &str) -> Result<(), Error> {
    if n == 0 {
        return Err(err(
            Status::UnsupportedSize,
            format!("{name} = 0: the width must be at least 1"),
        ));
    }
    if hadamard_k(n).is_none() {
        let (below, above) = crate::hadamard::nearest_supported(n);
        return Err(err(
            Status::UnsupportedSize,
            format!(
                "{name} = {n} has no Hadamard matrix (not K*2^m); nearest supported: {}, {}",
                below.map_or("none".into(), |v| v.to_string()),
                above.map_or("none".into(), |v| v.to_string())
            ),
        ));
    }
    Ok(())
}

/// Everything about a Hadamard rotation except flags: its size ([`check_hadamard_n`]),
/// a finite nonzero scale, and signs of +-1 (at least n of them).
pub(crate) fn check_hadamard(h: &HadamardRotation<'_>, name: &str) -> Result<(), Error> {
    check_hadamard_n(h.n, name)?;
    if !h.scale.is_finite() || h.scale == 0.0 {
        return Err(err(
            Status::InvalidArgument,
            format!("scale = {} is not finite and nonzero", h.scale),
        ));
    }
    if let Some(s) = h.signs {
        if s.len() < h.n {
            return Err(err(
                Status::InvalidArgument,
                format!("signs has {} entries, {name} = {}", s.len(), h.n),
            ));
        }
        if let Some(i) = s[..h.n].iter().position(|&v| v != 1 && v != -1) {
            return Err(err(
                Status::InvalidArgument,
                format!("signs[{i}] = {} is not +1 or -1", s[i]),
            ));
        }
    }
    Ok(())
}

/// The error for the first non-finite entry of a dense rotation, if there is one.
pub(crate) fn check_finite(matrix: &[f64], n: usize) -> Result<(), Error> {
    match matrix[..n * n].iter().position(|v| !v.is_finite()) {
        Some(i) => Err(err(
            Status::InvalidArgument,
            format!(
                "rotation[{}][{}] = {} is not finite",
                i / n,
                i % n,
                matrix[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Rotate the input channels of W in place: each block of r columns becomes W[:, block] * R.
/// `weight.len()` must cover (out_features - 1) * row_stride + in_features elements.
pub fn rotate_in_channels<T: Element>(
    weight: &mut [T],
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    validate(
        Channels::In,
        out_features,
        in_features,
        row_stride,
        rotation,
        flags,
    )?;
    check_weight_len(weight.len(), out_features, in_features, row_stride)?;
    let rows = RowSet::new(
        Channels::In,
        rotation.n(),
        out_features,
        in_features,
        row_stride,
        false,
    );
    let target = Target {
        weight: weight.as_mut_ptr(),
        bias: std::ptr::null_mut(),
    };
    // SAFETY: the slice covers every logical row (checked).
    unsafe { run(dispatch::active_isa()?, rows, target, rotation, flags) }
}

/// Rotate the output channels of W (and the bias) in place: each block of r rows becomes
/// R^T * W[block, :], and bias[block] becomes R^T * bias[block].
pub fn rotate_out_channels<T: Element>(
    weight: &mut [T],
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    bias: Option<&mut [T]>,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    validate(
        Channels::Out,
        out_features,
        in_features,
        row_stride,
        rotation,
        flags,
    )?;
    check_weight_len(weight.len(), out_features, in_features, row_stride)?;
    if let Some(b) = &bias {
        if b.len() < out_features {
            return Err(err(
                Status::InvalidArgument,
                format!(
                    "bias has {} elements, out_features = {out_features}",
                    b.len()
                ),
            ));
        }
    }
    let rows = RowSet::new(
        Channels::Out,
        rotation.n(),
        out_features,
        in_features,
        row_stride,
        bias.is_some(),
    );
    let target = Target {
        weight: weight.as_mut_ptr(),
        bias: bias.map_or(std::ptr::null_mut(), |b| b.as_mut_ptr()),
    };
    // SAFETY: the slices cover every logical row (checked).
    unsafe { run(dispatch::active_isa()?, rows, target, rotation, flags) }
}

fn check_weight_len(
    len: usize,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
) -> Result<(), Error> {
    let need = if out_features == 0 {
        0
    } else {
        (out_features - 1) * row_stride + in_features
    };
    if len < need {
        return Err(err(
            Status::InvalidArgument,
            format!("weight has {len} elements, needs {need}"),
        ));
    }
    Ok(())
}

/// Raw entry for the C layer: the caller has validated (`validate`) and vouches for the
/// pointers.
///
/// # Safety
/// `weight` (and `bias`, if not NULL, with out_features elements) must be valid for the
/// described matrix; the rotation must have passed `validate`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn rotate_raw<T: Element>(
    channels_out: bool,
    weight: *mut T,
    out_features: usize,
    in_features: usize,
    row_stride: usize,
    bias: *mut T,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    let channels = if channels_out {
        Channels::Out
    } else {
        Channels::In
    };
    let rows = RowSet::new(
        channels,
        rotation.n(),
        out_features,
        in_features,
        row_stride,
        !bias.is_null(),
    );
    // SAFETY: forwarded.
    unsafe {
        run(
            dispatch::active_isa()?,
            rows,
            Target { weight, bias },
            rotation,
            flags,
        )
    }
}

/// Do it: allocate everything first (so a failure leaves the data unchanged), then split
/// logical rows over the pool (with FLAG_PARALLEL) or run on this thread.
unsafe fn run<T: Element>(
    isa: Isa,
    rows: RowSet,
    target: Target<T>,
    rotation: &Rotation<'_>,
    flags: u32,
) -> Result<(), Error> {
    if rows.len() == 0 {
        if let Rotation::Dense { matrix, n } = rotation {
            // Nothing to rotate, but a bad R is still an error.
            check_finite(matrix, *n)?;
        }
        return Ok(());
    }
    let threads = if flags & FLAG_PARALLEL != 0 {
        Some(parallel::pool()?)
    } else {
        None
    };
    let parts = threads
        .as_ref()
        .map_or(1, |p| p.current_num_threads())
        .clamp(1, rows.len());
    match rotation {
        Rotation::Dense { matrix, n } => {
            if flags & ROTATE_FLAG_F32_ACCUMULATE != 0 {
                unsafe { dense::<T, f32>(isa, rows, target, matrix, *n, parts, threads.as_deref()) }
            } else {
                unsafe { dense::<T, f64>(isa, rows, target, matrix, *n, parts, threads.as_deref()) }
            }
        }
        Rotation::Hadamard(h) => unsafe {
            hadamard::<T>(isa, rows, target, h, parts, threads.as_deref())
        },
    }
}

/// Run `work(part, first_row, count)` for each of `parts` contiguous ranges of rows, on
/// the pool when there is one.
fn split(
    rows: usize,
    parts: usize,
    pool: Option<&rayon::ThreadPool>,
    work: &(dyn Fn(usize, usize, usize) + Sync),
) {
    let range = |p: usize| parallel::rows_for_thread(rows, p, parts).expect("p < parts");
    match pool {
        Some(pool) if parts > 1 => parallel::run_parts(pool, parts, &|p| {
            let (first, count) = range(p);
            work(p, first, count);
        }),
        _ => {
            for p in 0..parts {
                let (first, count) = range(p);
                work(p, first, count);
            }
        }
    }
}

// Not inlined: big, called once per call, and (as of Rust 1.95 / LLVM 22) inlining it into
// some callers crashed LLVM's loop vectorizer.
#[inline(never)]
unsafe fn dense<T: Element, F: Real>(
    isa: Isa,
    rows: RowSet,
    target: Target<T>,
    matrix: &[f64],
    r: usize,
    parts: usize,
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), Error> {
    // Pack R on the same threads (each its own rows of R), checking it is finite.
    // SAFETY: `split` hands out disjoint row ranges covering 0..r.
    let (packed, finite) = unsafe {
        PackedB::<F>::new_split(isa, r, r, matrix, r, 1, |work| {
            split(r, parts, pool, &|_, first, count| work(first, count))
        })
    }?;
    if !finite {
        check_finite(matrix, r)?;
        // The packer saw a non-finite value the scan did not: cannot happen; never go on
        // silently.
        return Err(err(
            Status::InvalidArgument,
            "rotation has a non-finite entry".to_string(),
        ));
    }
    let panel = PANEL_ROWS.min(rows.len());
    let tile = gemm::tile_rows::<F>(isa);
    let mut buffers = Vec::with_capacity(parts);
    for _ in 0..parts {
        let a = AlignedBuf::<F>::scratch(panel * r, "a row panel")?;
        let c = AlignedBuf::<F>::scratch(panel * r, "a row panel")?;
        let mut ws = Workspace::<F>::new();
        ws.prepare(isa, panel, &packed)?;
        buffers.push(std::sync::Mutex::new((a, c, ws)));
    }
    let failure = std::sync::Mutex::new(None::<Error>);
    split(rows.len(), parts, pool, &|p, first, count| {
        let mut guard = buffers[p].lock().unwrap_or_else(|e| e.into_inner());
        let (a, c, ws) = &mut *guard;
        let (a, c) = (a.as_mut_slice(), c.as_mut_slice());
        // Panels as even as the register tile allows (2048 rows: 8 x 238 + 144, not
        // 8 x 252 + 32: a sliver streams all of packed R for a few tiles).
        let even = count
            .div_ceil(count.div_ceil(panel))
            .next_multiple_of(tile)
            .min(panel);
        let mut t0 = first;
        while t0 < first + count {
            let mc = even.min(first + count - t0);
            // SAFETY: rows of this part only; memory vouched for by the caller.
            unsafe { target.gather(&rows, t0, mc, a, None) };
            if let Err(e) = gemm::gemm(isa, mc, a, r, &packed, c, r, ws) {
                // Cannot happen: the workspace was prepared for `panel` rows before any
                // row was written. Kept as an error rather than a panic all the same.
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                return;
            }
            // SAFETY: as above.
            unsafe { target.scatter(&rows, t0, mc, c, None) };
            t0 += mc;
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[inline(never)]
unsafe fn hadamard<T: Element>(
    isa: Isa,
    rows: RowSet,
    target: Target<T>,
    rot: &HadamardRotation<'_>,
    parts: usize,
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), Error> {
    let r = rot.n;
    let plan = HadamardPlan::new(r, 0)?;
    let k = plan.k();
    let k_table: Vec<f64> = crate::hadamard::k_matrix(k)
        .map_or_else(Vec::new, |m| m.into_iter().map(f64::from).collect());
    let signs: Option<Vec<f64>> = rot
        .signs
        .map(|s| s[..r].iter().map(|&v| f64::from(v)).collect());
    // In-channels: logical rows are contiguous, so a panel of about 32 KiB keeps gather,
    // transform and store in L1. Out-channels: HADAMARD_PANEL_ROWS adjacent columns are
    // gathered together so each weight row is read a cache line at a time.
    let panel = match rows.channels {
        Channels::In => (4096 / r).clamp(1, HADAMARD_PANEL_ROWS),
        Channels::Out => HADAMARD_PANEL_ROWS,
    }
    .min(rows.len());
    let mut buffers = Vec::with_capacity(parts);
    for _ in 0..parts {
        buffers.push(std::sync::Mutex::new((
            alloc::<f64>(panel * r)?,
            alloc::<f64>(r)?,
        )));
    }
    let job = HadamardJob {
        rows: &rows,
        target,
        layout: rot.layout,
        signs: signs.as_deref(),
        scale: rot.scale,
        plan: &plan,
        k_table: &k_table,
    };
    split(rows.len(), parts, pool, &|p, first, count| {
        let mut guard = buffers[p].lock().unwrap_or_else(|e| e.into_inner());
        let (x, tmp) = &mut *guard;
        // SAFETY: rows of this part only; isa is available (it came from the dispatcher).
        unsafe { hadamard_rows(isa, &job, first, count, x, tmp) };
    });
    Ok(())
}

/// What every worker of the Hadamard path shares (read-only).
struct HadamardJob<'a, T> {
    rows: &'a RowSet,
    target: Target<T>,
    layout: HadamardLayout,
    /// The +-1 signs as f64, applied while gathering.
    signs: Option<&'a [f64]>,
    /// Applied while storing.
    scale: f64,
    plan: &'a HadamardPlan,
    k_table: &'a [f64],
}

/// The f64 row loop over logical rows `first .. first + count`, in panels of `x.len() / r`
/// rows, with the transform of the instruction set.
unsafe fn hadamard_rows<T: Element>(
    isa: Isa,
    job: &HadamardJob<'_, T>,
    first: usize,
    count: usize,
    x: &mut [f64],
    tmp: &mut [f64],
) {
    #[inline(always)]
    unsafe fn body<T: Element, V: fwht64::F64Lanes>(
        job: &HadamardJob<'_, T>,
        first: usize,
        count: usize,
        x: &mut [f64],
        tmp: &mut [f64],
    ) {
        let r = job.rows.r;
        let panel = x.len() / r;
        let mut t0 = first;
        while t0 < first + count {
            let mc = panel.min(first + count - t0);
            // SAFETY: forwarded; V's instruction set is the caller's.
            unsafe {
                job.target.gather(job.rows, t0, mc, x, job.signs);
                for row in x[..mc * r].chunks_exact_mut(r) {
                    hadamard64::transform_row::<V>(job.layout, job.plan, row, tmp, job.k_table);
                }
                job.target
                    .scatter(job.rows, t0, mc, &x[..mc * r], Some(job.scale));
            }
            t0 += mc;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512<T: Element>(
        job: &HadamardJob<'_, T>,
        first: usize,
        count: usize,
        x: &mut [f64],
        tmp: &mut [f64],
    ) {
        unsafe { body::<T, fwht64::Avx512>(job, first, count, x, tmp) }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<T: Element>(
        job: &HadamardJob<'_, T>,
        first: usize,
        count: usize,
        x: &mut [f64],
        tmp: &mut [f64],
    ) {
        unsafe { body::<T, fwht64::Avx2>(job, first, count, x, tmp) }
    }
    // SAFETY: isa is available; the rest is forwarded.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512(job, first, count, x, tmp),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2(job, first, count, x, tmp),
            _ => body::<T, fwht64::Scalar>(job, first, count, x, tmp),
        }
    }
}

fn alloc<F: Real>(len: usize) -> Result<Vec<F>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        err(
            Status::OutOfMemory,
            format!("could not allocate {len} values of scratch"),
        )
    })?;
    v.resize(len, F::ZERO);
    Ok(v)
}
