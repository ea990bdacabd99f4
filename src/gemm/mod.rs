//! Dense matrix product C = A * B in f32 or f64 for the weight rotations (W * R), written
//! GotoBLAS / BLIS style: B is packed once into KC x NR micro-panels ([`PackedB`]), A is
//! packed per cache block into MR x KC micro-panels ([`Workspace`]), and register-blocked
//! micro-kernels (AVX-512, AVX2 + FMA, portable scalar; chosen by the caller's [`Isa`]) do
//! the arithmetic with fused multiply-adds in the element type itself.
//!
//! Each call is single-threaded; a caller parallelizes by giving each thread its own row
//! panel of A and C, one shared `PackedB` (it is `Sync`) and its own `Workspace`.
//!
//! Every element of C is `sum over p = 0..k-1, in that order, of fma steps`, restarted
//! (one add of the partial sums) at each depth block boundary; the result is accurate to
//! about k * eps * sum |a||b| (eps of F), like any BLAS.

mod kernel;
mod simd;

use crate::dispatch::{check_available, Isa};
use crate::error::{Error, Status};
use crate::scratch::Buf;
use kernel::Job;
use simd::Scalar;
#[cfg(target_arch = "x86_64")]
use simd::{Avx2, Avx512, Lanes};

/// An element type of the product: f32 or f64.
pub(crate) trait Real: Copy + Send + Sync + 'static + sealed::Sealed {
    /// 0.0
    const ZERO: Self;
    /// The nearest value of this type (round to nearest even).
    fn from_f64(x: f64) -> Self;
    /// The exact value as f64.
    fn to_f64(self) -> f64;
}

pub(crate) mod sealed {
    use super::kernel::Job;
    use super::Blocking;
    use crate::dispatch::Isa;

    /// What the element types must provide internally (not implementable elsewhere).
    pub(crate) trait Sealed: Sized {
        fn add(self, b: Self) -> Self;
        /// `self * a + b` with one rounding.
        fn mul_add(self, a: Self, b: Self) -> Self;
        /// Register tile and cache blocks of this type's kernels for `isa`.
        fn blocking(isa: Isa) -> Blocking;
        /// Run `job` with this type's kernels for `isa`.
        ///
        /// # Safety
        /// `isa` must be available; `job` must satisfy `kernel::run`'s contract for
        /// `Self::blocking(isa)` (with the job's own kc, mc, nc).
        unsafe fn run(isa: Isa, job: &Job<Self>);
    }
}

/// Register tile and cache blocking of one (instruction set, element type) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Rows of the register tile (rows of an A micro-panel).
    pub mr: usize,
    /// Columns of the register tile (columns of a B micro-panel).
    pub nr: usize,
    /// Depth of a cache block: B micro-panels are KC x NR, fixed when B is packed.
    pub kc: usize,
    /// Rows of an A cache block (MC x KC, L2); a multiple of `mr`.
    pub mc: usize,
    /// Columns of a B cache block (KC x NC, L3); a multiple of `nr`.
    pub nc: usize,
}

/// A register tile of `mr` rows by `nv` vectors, and the cache blocks, as constants.
struct Shape {
    mr: usize,
    nv: usize,
    kc: usize,
    mc: usize,
    nc: usize,
}

impl Shape {
    const fn blocking(&self, lanes: usize) -> Blocking {
        Blocking {
            mr: self.mr,
            nr: self.nv * lanes,
            kc: self.kc,
            mc: self.mc,
            nc: self.nc,
        }
    }
}

// Blocking per (instruction set, type), measured on a 2-core Xeon with AVX-512 (2 FMA units,
// 48 KiB L1d, 2 MiB L2) on 4096 x 4096 x 4096 and on 252-row panels (what the rotation
// calls with):
// - Register tiles: AVX-512 14 x 32 (f32) and 14 x 16 (f64): 28 accumulators + 2 B vectors,
//   the A values broadcast from memory; 28 FMAs per 16 loads. 12 x 32 and 8 x 48 measured
//   the same. AVX2: 6 x 16 / 6 x 8 (12 accumulators of the 16 registers).
// - KC = 1024 (AVX-512): each depth block re-reads and re-writes all of C, and C (tens of
//   MiB) lives in L3 or memory, so fewer, deeper blocks win: 256 -> 1024 took 4096^3 f32
//   from ~140 to ~166 GFLOP/s. The B micro-panel (KC x NR = 128 KiB) then streams from L2
//   (prefetched there one tile ahead), which the L2 sustains at ~13 bytes per cycle.
// - MC = 126 (AVX-512): the A block (126 x 1024: 504 KiB f32, 1 MiB f64) stays in L2
//   with the B micro-panel; 112..168 measured within 1 %, 126 splits a 252-row panel in
//   two (84-row blocks were 10 % slower there: too few tiles share each B micro-panel).
// - AVX2 keeps KC = 512 and A blocks of 144 KiB, which also fit the 256 KiB - 1 MiB L2 of
//   AVX2-only CPUs (KC = 1024 was at most 3 % faster here).
// - NC = 8192: B is packed once for the whole product, so NC only bounds C's column block;
//   the rotation widths (<= 8192 in practice) run as one block and A is packed once.
#[cfg(target_arch = "x86_64")]
const F32_AVX512: Shape = Shape {
    mr: 14,
    nv: 2,
    kc: 1024,
    mc: 126,
    nc: 8192,
};
#[cfg(target_arch = "x86_64")]
const F64_AVX512: Shape = Shape {
    mr: 14,
    nv: 2,
    kc: 1024,
    mc: 126,
    nc: 8192,
};
#[cfg(target_arch = "x86_64")]
const F32_AVX2: Shape = Shape {
    mr: 6,
    nv: 2,
    kc: 512,
    mc: 72,
    nc: 8192,
};
#[cfg(target_arch = "x86_64")]
const F64_AVX2: Shape = Shape {
    mr: 6,
    nv: 2,
    kc: 512,
    mc: 36,
    nc: 8192,
};
const F32_SCALAR: Shape = Shape {
    mr: 4,
    nv: 4,
    kc: 256,
    mc: 64,
    nc: 8192,
};
const F64_SCALAR: Shape = Shape {
    mr: 4,
    nv: 4,
    kc: 256,
    mc: 64,
    nc: 8192,
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn run_avx512<F: Real, const MR: usize, const NV: usize>(job: &Job<F>)
where
    Avx512: Lanes<F>,
{
    // SAFETY: forwarded; the caller checked that AVX-512 is available.
    unsafe { kernel::run::<F, Avx512, MR, NV>(job) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<F: Real, const MR: usize, const NV: usize>(job: &Job<F>)
where
    Avx2: Lanes<F>,
{
    // SAFETY: forwarded; the caller checked that AVX2 + FMA are available.
    unsafe { kernel::run::<F, Avx2, MR, NV>(job) }
}

unsafe fn run_scalar<F: Real, const MR: usize, const NV: usize>(job: &Job<F>) {
    // SAFETY: forwarded.
    unsafe { kernel::run::<F, Scalar, MR, NV>(job) }
}

macro_rules! real_impl {
    ($t:ty, $avx512:ident, $avx2:ident, $scalar:ident, $l512:expr, $l256:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }

        impl sealed::Sealed for $t {
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self + b
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn blocking(isa: Isa) -> Blocking {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => $avx512.blocking($l512),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => $avx2.blocking($l256),
                    _ => $scalar.blocking(1),
                }
            }
            unsafe fn run(isa: Isa, job: &Job<Self>) {
                // SAFETY: forwarded; each entry point is only called for an instruction set
                // the caller found on this CPU, with the tile `blocking(isa)` describes.
                unsafe {
                    match isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512 => run_avx512::<$t, { $avx512.mr }, { $avx512.nv }>(job),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 => run_avx2::<$t, { $avx2.mr }, { $avx2.nv }>(job),
                        _ => run_scalar::<$t, { $scalar.mr }, { $scalar.nv }>(job),
                    }
                }
            }
        }
    };
}

real_impl!(f32, F32_AVX512, F32_AVX2, F32_SCALAR, 16, 8);
real_impl!(f64, F64_AVX512, F64_AVX2, F64_SCALAR, 8, 4);

fn out_of_memory(what: &str, len: usize, elem: usize) -> Error {
    Error {
        status: Status::OutOfMemory,
        message: format!("could not allocate {what} ({len} values of {elem} bytes)"),
    }
}

/// Rows of the register tile of `isa` for F (row panels that are multiples of it end in
/// no partial tile).
pub(crate) fn tile_rows<F: Real>(isa: Isa) -> usize {
    F::blocking(isa).mr
}

/// `len` values of F in a 64-byte-aligned scratch buffer ([`crate::scratch`]: large ones
/// are reused across calls, so the contents are unspecified, zeros or old values).
pub(crate) struct AlignedBuf<F> {
    buf: Buf,
    len: usize,
    _f: std::marker::PhantomData<F>,
}

impl<F: Real> AlignedBuf<F> {
    pub(crate) const fn new() -> Self {
        AlignedBuf {
            buf: Buf::empty(),
            len: 0,
            _f: std::marker::PhantomData,
        }
    }

    /// `len` values (unspecified but initialized), or `OutOfMemory` (never an abort).
    pub(crate) fn scratch(len: usize, what: &str) -> Result<Self, Error> {
        let size = std::mem::size_of::<F>();
        let buf = len
            .checked_mul(size)
            .and_then(Buf::take)
            .ok_or_else(|| out_of_memory(what, len, size))?;
        Ok(AlignedBuf {
            buf,
            len,
            _f: std::marker::PhantomData,
        })
    }

    pub(crate) fn as_slice(&self) -> &[F] {
        // SAFETY: the buffer holds len * size_of::<F>() initialized bytes, 64-byte aligned,
        // and every bit pattern is a valid f32 / f64 (or it is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [F] {
        // SAFETY: as `as_slice`, and we hold the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast(), self.len) }
    }

    fn as_mut_ptr(&mut self) -> *mut F {
        self.buf.as_mut_ptr().cast()
    }
}

/// B (k x n) packed for the micro-kernels of `isa`; read-only after creation, shareable
/// across threads (Sync).
///
/// Layout: depth blocks of `kc` rows (the last may be shorter); block starting at row `pc`
/// begins at `pc * n_pad` (n_pad = n rounded up to NR) and holds ceil(n / NR) micro-panels
/// of `kc_block x NR` values, row by row; columns past n are zero.
pub(crate) struct PackedB<F: Real> {
    isa: Isa,
    k: usize,
    n: usize,
    kc: usize,
    nr: usize,
    data: AlignedBuf<F>,
}

/// Rows of B packed together (see `PackedB::new_split`).
const PACK_GROUP: usize = 16;

/// Where concurrent packers write: the packed buffer's pointer, shared by the parts of
/// [`PackedB::new_split`] (each writes only its own rows).
struct PackDst<F>(*mut F);
// SAFETY: the parts write disjoint elements (new_split's contract).
unsafe impl<F> Sync for PackDst<F> {}

impl<F> PackDst<F> {
    // A method, so closures capture the (Sync) wrapper rather than the raw pointer field.
    fn get(&self) -> *mut F {
        self.0
    }
}

impl<F: Real> PackedB<F> {
    /// Pack B[i][j] = b[i * rs + j * cs] from an f64 source (converted to F).
    /// Allocation failure -> Err(OutOfMemory); an `isa` this CPU lacks -> Err(IsaUnavailable).
    #[allow(dead_code)] // the single-threaded form, used by the tests and benches/gemm.rs
    pub(crate) fn new(
        isa: Isa,
        k: usize,
        n: usize,
        b: &[f64],
        rs: usize,
        cs: usize,
    ) -> Result<Self, Error> {
        Self::with_kc(isa, k, n, b, rs, cs, F::blocking(isa).kc)
    }

    #[allow(dead_code)] // as `new`
    fn with_kc(
        isa: Isa,
        k: usize,
        n: usize,
        b: &[f64],
        rs: usize,
        cs: usize,
        kc: usize,
    ) -> Result<Self, Error> {
        // SAFETY: one call of `work` covering all rows.
        unsafe { Self::split_kc(isa, k, n, b, rs, cs, kc, |work| work(0, k)) }.map(|(p, _)| p)
    }

    /// `new`, with the packing split by rows: `run` must call `work(first, count)` for
    /// ranges of rows that together cover `0..k`, on as many threads as it likes. Also
    /// tells whether every value of B was finite (checked while packing, so the caller
    /// needs no separate pass over B).
    ///
    /// # Safety
    /// Ranges that `run` lets execute at the same time must not overlap.
    pub(crate) unsafe fn new_split(
        isa: Isa,
        k: usize,
        n: usize,
        b: &[f64],
        rs: usize,
        cs: usize,
        run: impl FnOnce(&(dyn Fn(usize, usize) + Sync)),
    ) -> Result<(Self, bool), Error> {
        // SAFETY: forwarded.
        unsafe { Self::split_kc(isa, k, n, b, rs, cs, F::blocking(isa).kc, run) }
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn split_kc(
        isa: Isa,
        k: usize,
        n: usize,
        b: &[f64],
        rs: usize,
        cs: usize,
        kc: usize,
        run: impl FnOnce(&(dyn Fn(usize, usize) + Sync)),
    ) -> Result<(Self, bool), Error> {
        check_available(isa)?;
        assert!(kc > 0);
        let nr = F::blocking(isa).nr;
        let n_pad = n.div_ceil(nr) * nr;
        let len = k.checked_mul(n_pad).ok_or_else(|| Error {
            status: Status::SizeOverflow,
            message: format!("packed B of {k} x {n} values overflows usize"),
        })?;
        if k > 0 && n > 0 {
            // The largest index read; also rules out overflow in the loop below.
            let last = (k - 1)
                .checked_mul(rs)
                .and_then(|x| (n - 1).checked_mul(cs).and_then(|y| x.checked_add(y)));
            assert!(
                last.is_some_and(|l| l < b.len()),
                "B ({k} x {n}, rs {rs}, cs {cs}) does not fit in {} values",
                b.len()
            );
        }
        let mut data = AlignedBuf::<F>::scratch(len, "packed B")?;
        let dst = PackDst(data.as_mut_ptr());
        let finite = std::sync::atomic::AtomicBool::new(true);
        // Row by row: each source row is read once, in order, and its values go to every
        // micro-panel of its depth block (panel-by-panel packing would read B down the
        // columns, a new page every row).
        let work = |first: usize, count: usize| {
            assert!(first <= k && count <= k - first, "rows out of range");
            let panels = n.div_ceil(nr);
            let mut ok = true;
            let end = first + count;
            let mut g0 = first;
            while g0 < end {
                let pc = g0 / kc * kc;
                let kcb = kc.min(k - pc);
                // A group of rows in one depth block, copied panel by panel: each panel
                // receives one contiguous run (group x NR values) and each source row is
                // read in order, NR values per panel.
                let g1 = end.min(g0 + PACK_GROUP).min(pc + kcb);
                for jp in 0..panels {
                    let j0 = jp * nr;
                    let cols = nr.min(n - j0);
                    for p in g0..g1 {
                        let at = pc * n_pad + jp * kcb * nr + (p - pc) * nr;
                        // SAFETY: at + nr <= len: row p of micro-panel jp in the layout;
                        // rows of other ranges are not touched (the caller's contract), so
                        // this range's elements have no other writer.
                        let all = unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), nr) };
                        // Columns past n are zero (the buffer may hold old values).
                        let (out, pad) = all.split_at_mut(cols);
                        pad.fill(F::ZERO);
                        let src = p * rs + j0 * cs;
                        if cs == 1 {
                            let src = &b[src..src + cols];
                            for (o, &v) in out.iter_mut().zip(src) {
                                *o = F::from_f64(v);
                            }
                            ok &= src.iter().fold(true, |a, v| a & v.is_finite());
                        } else {
                            for (j, o) in out.iter_mut().enumerate() {
                                let v = b[src + j * cs];
                                ok &= v.is_finite();
                                *o = F::from_f64(v);
                            }
                        }
                    }
                }
                g0 = g1;
            }
            if !ok {
                finite.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        };
        run(&work);
        Ok((
            PackedB {
                isa,
                k,
                n,
                kc,
                nr,
                data,
            },
            finite.into_inner(),
        ))
    }

    /// Rows of B (the depth of the product).
    #[allow(dead_code)] // interface for callers; used by the tests and benches/gemm.rs
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Columns of B (and of C).
    #[allow(dead_code)] // as `k`
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The instruction set the panels were packed for.
    #[allow(dead_code)] // as `k`
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }
}

/// Reusable scratch for packing A (so a caller looping over row panels allocates once).
pub(crate) struct Workspace<F: Real> {
    apack: AlignedBuf<F>,
}

impl<F: Real> Default for Workspace<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Real> Workspace<F> {
    /// An empty workspace; it grows on first use.
    pub(crate) fn new() -> Self {
        Workspace {
            apack: AlignedBuf::new(),
        }
    }

    /// Grow now to what [`gemm`] needs for products of up to `m` rows with `b`, so that
    /// those calls cannot fail later (a caller can then allocate before it writes anything).
    pub(crate) fn prepare(&mut self, isa: Isa, m: usize, b: &PackedB<F>) -> Result<(), Error> {
        let blk = F::blocking(isa);
        let kc = b.kc.min(b.k);
        let mc = blk.mc.min(m.div_ceil(blk.mr) * blk.mr);
        self.reserve(mc * kc).map(|_| ())
    }

    /// At least `len` values of packing room, 64-byte aligned.
    fn reserve(&mut self, len: usize) -> Result<*mut F, Error> {
        if self.apack.len < len {
            self.apack = AlignedBuf::new(); // free the old block first
            self.apack = AlignedBuf::scratch(len, "the A packing workspace")?;
        }
        Ok(self.apack.as_mut_ptr())
    }
}

/// C (m x n, row-major with leading dimension ldc) = A (m x k, row-major, lda) * B.
/// Overwrites C (beta = 0); elements of C outside the m x n block are not touched.
/// Single-threaded, no allocation once `ws` has grown.
///
/// Panics if `isa` is not the one `b` was packed for, or if A or C is too short for the
/// given sizes (the caller checks sizes; these asserts only keep memory safe).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<F: Real>(
    isa: Isa,
    m: usize,
    a: &[F],
    lda: usize,
    b: &PackedB<F>,
    c: &mut [F],
    ldc: usize,
    ws: &mut Workspace<F>,
) -> Result<(), Error> {
    let mut blk = F::blocking(isa);
    blk.kc = b.kc;
    gemm_blocked(isa, m, a, lda, b, c, ldc, ws, blk)
}

/// `gemm` with explicit cache blocks (tests use small ones to reach every loop edge).
#[allow(clippy::too_many_arguments)]
fn gemm_blocked<F: Real>(
    isa: Isa,
    m: usize,
    a: &[F],
    lda: usize,
    b: &PackedB<F>,
    c: &mut [F],
    ldc: usize,
    ws: &mut Workspace<F>,
    blk: Blocking,
) -> Result<(), Error> {
    assert_eq!(isa, b.isa, "B was packed for another instruction set");
    let (k, n) = (b.k, b.n);
    debug_assert_eq!(blk.kc, b.kc);
    debug_assert_eq!(blk.nr, b.nr);
    debug_assert!(blk.mc > 0 && blk.mc.is_multiple_of(blk.mr));
    debug_assert!(blk.nc > 0 && blk.nc.is_multiple_of(blk.nr));
    if m == 0 || n == 0 {
        return Ok(());
    }
    let fits = |len: usize, ld: usize, cols: usize| {
        ld >= cols
            && (m - 1)
                .checked_mul(ld)
                .and_then(|x| x.checked_add(cols))
                .is_some_and(|need| need <= len)
    };
    assert!(
        fits(c.len(), ldc, n),
        "C ({m} x {n}, ldc {ldc}) does not fit in {} values",
        c.len()
    );
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(F::ZERO);
        }
        return Ok(());
    }
    assert!(
        fits(a.len(), lda, k),
        "A ({m} x {k}, lda {lda}) does not fit in {} values",
        a.len()
    );
    let kc = blk.kc.min(k);
    let mc = blk.mc.min(m.div_ceil(blk.mr) * blk.mr);
    let apack = ws.reserve(mc * kc)?;
    let job = Job {
        m,
        n,
        k,
        a: a.as_ptr(),
        lda,
        b: b.data.as_slice().as_ptr(),
        c: c.as_mut_ptr(),
        ldc,
        apack,
        kc: blk.kc,
        mc: blk.mc,
        nc: blk.nc,
    };
    // SAFETY: `b` exists, so `isa` passed `check_available`; the asserts above keep every
    // access of the kernels inside a, c and b's data; apack has room for an mc x kc block.
    unsafe { F::run(isa, &job) };
    Ok(())
}

#[cfg(test)]
mod tests;
