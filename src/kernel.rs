//! The row kernels: a Walsh-Hadamard transform along each row (or along each 2^m-long
//! segment of it), then, for n = K * 2^m, the K x K mix across segments.
//!
//! Exactness. Every path performs the same IEEE f32 operations in the same order as the
//! plain loop in `hadamard::reference` (and as Quark's `matmul_hadU`): radix-2 stages
//! h = 1, 2, 4, ... with (a, b) -> (a + b, a - b); then out[i][j] = sum over k = 0..K-1, in
//! that order from 0, of H[i][k] * seg[k][j] (H = +-1, so each step is one exact add or
//! subtract); then one multiplication by `scale`, and one rounding to the output type.
//! Scheduling (which stages share a pass, which rows share registers) does not change
//! any operation, so AVX-512, AVX2 and scalar results are bit-identical.
//!
//! Passes. The first pass loads the source (any element type), does every stage that fits
//! in 8 registers (log2(8 * LANES) stages: the in-vector ones by permutes, the others between
//! registers) and writes f32. Rows shorter than 8 vectors share the 8 registers, so short
//! rows (head_dim 64/128, K * 2^m with small m) still use full vectors. Wider rows get radix-8
//! passes (3 stages each) at strides >= 8 * LANES; the last pass of a K = 1 transform scales
//! and converts on the way out. For K > 1 the mix reads the f32 segments and writes the
//! scaled, converted result.

use crate::dispatch::Isa;
use crate::element::{DType, Element};
use crate::hadamard::{table_cache, HadamardPlan};
use crate::simd::scalar::Scalar;
use crate::simd::{load, store, Simd};

/// Scratch f32 values reserved per row chunk for the widened rows of a 16-bit output.
const CHUNK_FLOATS: usize = 8192;

/// A batch of rows: `rows` vectors at `src + r * src_stride` and `dst + r * dst_stride`
/// (strides in elements). `src` and `dst` may be the same rows (same pointer and stride),
/// and may not otherwise overlap.
pub(crate) struct Rows<Ts, Td> {
    pub src: *const Ts,
    pub src_stride: usize,
    pub dst: *mut Td,
    pub dst_stride: usize,
    pub rows: usize,
}

impl<Ts, Td> Clone for Rows<Ts, Td> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Ts, Td> Copy for Rows<Ts, Td> {}

impl<Ts, Td> Rows<Ts, Td> {
    /// Rows `first .. first + count` of this batch.
    pub fn sub(&self, first: usize, count: usize) -> Rows<Ts, Td> {
        Rows {
            src: self.src.wrapping_add(first * self.src_stride),
            src_stride: self.src_stride,
            dst: self.dst.wrapping_add(first * self.dst_stride),
            dst_stride: self.dst_stride,
            rows: count,
        }
    }
}

/// Where each part of the f32 scratch goes, for one plan, instruction set and output type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScratchLayout {
    /// K x (2 * LANES) copy of a column block, for in-place f32 mixing; 0 when K = 1.
    panel: usize,
    /// Rows of f32 in flight (chunk_rows * n), or the padded row of the pad-truncate mode.
    work: usize,
    chunk_rows: usize,
}

impl ScratchLayout {
    pub fn new(plan: &HadamardPlan, isa: Isa, dst: DType, rows: usize) -> ScratchLayout {
        let lanes = isa.lanes();
        let k = plan.k();
        let panel = if k > 1 { k * 2 * lanes } else { 0 };
        let (work, chunk_rows) = if plan.pads() {
            (plan.padded_len(), 1)
        } else {
            let n = plan.n();
            // Rows whose K mix runs in pairs (`kmix_pair`) need two rows per chunk.
            let pairs = k > 1 && lanes > 1 && (1usize << plan.log2_m()) == lanes;
            let min_rows = if pairs { 2 } else { 1 };
            let chunk_rows = (CHUNK_FLOATS / n).max(min_rows).clamp(1, rows.max(1));
            let first_pass_stages = (intra_log2_lanes(isa, n) + 3).min(plan.log2_m());
            let done_in_first_pass = k == 1 && first_pass_stages == plan.log2_m();
            if dst != DType::F32 && !done_in_first_pass {
                (chunk_rows * n, chunk_rows)
            } else {
                (0, chunk_rows)
            }
        };
        ScratchLayout {
            panel,
            work,
            chunk_rows,
        }
    }

    /// Total f32 values of scratch.
    pub fn len(&self) -> usize {
        self.panel + self.work
    }
}

/// The K x K tables a plan with K > 1 needs (`table_cache`), fetched before any data is
/// touched (fetching can fail for lack of memory); null pointers when K = 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KTables {
    /// Row-major H_K (or H_K^T), K x K.
    h: *const f32,
    /// The narrow layout (`TableKey::narrow`), only for narrow mixes; else null.
    h_narrow: *const f32,
}

// SAFETY: the tables are immutable and live for the whole process.
unsafe impl Send for KTables {}
unsafe impl Sync for KTables {}

impl KTables {
    pub fn for_plan(plan: &HadamardPlan, isa: Isa) -> Result<KTables, crate::error::Error> {
        if plan.k() == 1 || plan.pads() {
            return Ok(KTables {
                h: std::ptr::null(),
                h_narrow: std::ptr::null(),
            });
        }
        let h = table_cache::table(plan, false)?.as_ptr();
        let h_narrow = if narrow_kmix(isa, plan) {
            table_cache::table(plan, true)?.as_ptr()
        } else {
            std::ptr::null()
        };
        Ok(KTables { h, h_narrow })
    }
}

/// Whether the K mix of `plan` on `isa` runs across outputs (`kmix_row_narrow`): K > 1 and
/// segments of m < 8 values (shorter than the narrowest vector of the SIMD paths).
fn narrow_kmix(isa: Isa, plan: &HadamardPlan) -> bool {
    plan.k() > 1 && !plan.pads() && isa != Isa::Scalar && (1usize << plan.log2_m()) < 8
}

/// log2 of the vector width the first pass uses for rows of length `len`: the widest of
/// the instruction set's vectors that divides `len` (AVX-512 falls back to AVX2 for rows
/// of 8 * odd length, e.g. 72 = 36 * 2).
fn intra_log2_lanes(isa: Isa, len: usize) -> u32 {
    let candidates: &[u32] = match isa {
        Isa::Avx512 => &[4, 3],
        Isa::Avx2 => &[3],
        Isa::Scalar => &[],
    };
    candidates
        .iter()
        .copied()
        .find(|&l| len.is_multiple_of(1 << l))
        .unwrap_or(0)
}

/// Transform `rows` with the kernels of `isa`.
///
/// # Safety
/// `isa` must be available on this CPU; `rows` must describe valid, non-overlapping (or
/// identical) memory for `plan.n()` elements per row; `scratch` must have at least
/// `ScratchLayout::new(plan, isa, Td::DTYPE, rows.rows).len()` elements.
pub(crate) unsafe fn run<Ts: Element, Td: Element>(
    isa: Isa,
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    rows: Rows<Ts, Td>,
    scratch: &mut [f32],
) {
    let layout = ScratchLayout::new(plan, isa, Td::DTYPE, rows.rows);
    debug_assert!(scratch.len() >= layout.len());
    let scratch = scratch.as_mut_ptr();
    // SAFETY: forwarded from the caller; each entry point is only called for an
    // instruction set the dispatcher found on this CPU.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => run_avx512(plan, tables, scale, rows, layout, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => run_avx2(plan, tables, scale, rows, layout, scratch),
            _ => run_rows::<Scalar, Scalar, Ts, Td>(plan, tables, scale, rows, layout, scratch),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn run_avx512<Ts: Element, Td: Element>(
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    rows: Rows<Ts, Td>,
    layout: ScratchLayout,
    scratch: *mut f32,
) {
    use crate::simd::{avx2::Avx2, avx512::Avx512};
    unsafe { run_rows::<Avx512, Avx2, Ts, Td>(plan, tables, scale, rows, layout, scratch) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<Ts: Element, Td: Element>(
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    rows: Rows<Ts, Td>,
    layout: ScratchLayout,
    scratch: *mut f32,
) {
    use crate::simd::avx2::Avx2;
    unsafe { run_rows::<Avx2, Avx2, Ts, Td>(plan, tables, scale, rows, layout, scratch) }
}

/// The whole job for one instruction set: `S` is its full vector, `Hw` its 8-lane one.
#[inline(always)]
unsafe fn run_rows<S: Simd, Hw: Simd, Ts: Element, Td: Element>(
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    rows: Rows<Ts, Td>,
    layout: ScratchLayout,
    scratch: *mut f32,
) {
    let panel = scratch;
    let work = panel.wrapping_add(layout.panel);
    unsafe {
        if plan.pads() {
            for r in 0..rows.rows {
                let row = rows.sub(r, 1);
                padded_row::<S, Hw, Ts, Td>(plan, scale, row.src, row.dst, work);
            }
            return;
        }
        let mut first = 0;
        while first < rows.rows {
            let count = layout.chunk_rows.min(rows.rows - first);
            chunk::<S, Hw, Ts, Td>(plan, tables, scale, rows.sub(first, count), work, panel);
            first += count;
        }
    }
}

/// Rows of one chunk: first pass for all of them (sharing registers), then the rest per row.
#[inline(always)]
unsafe fn chunk<S: Simd, Hw: Simd, Ts: Element, Td: Element>(
    plan: &HadamardPlan,
    tables: KTables,
    scale: f32,
    rows: Rows<Ts, Td>,
    work: *mut f32,
    panel: *mut f32,
) {
    let htab = tables.h;
    let n = plan.n();
    let l = plan.log2_m();
    let k = plan.k();
    let (lanes, stages) = first_pass_width::<S, Hw>(n, l);
    let done_in_first_pass = k == 1 && stages == l;
    // The f32 rows the remaining passes work on: the destination itself when it is f32.
    let (wbase, wstride) = if Td::DTYPE == DType::F32 {
        (rows.dst.cast::<f32>(), rows.dst_stride)
    } else {
        (work, n)
    };
    unsafe {
        if done_in_first_pass {
            first_pass_any::<S, Hw, Ts, Td>(
                lanes,
                rows.src,
                rows.src_stride,
                rows.dst,
                rows.dst_stride,
                rows.rows,
                n,
                stages,
                Some(scale),
            );
            return;
        }
        first_pass_any::<S, Hw, Ts, f32>(
            lanes,
            rows.src,
            rows.src_stride,
            wbase,
            wstride,
            rows.rows,
            n,
            stages,
            None,
        );
        // Segments of exactly one vector (m = LANES): two rows at a time share the K mix,
        // so it runs with two column vectors per table entry (`kmix_pair`).
        let pair = k > 1 && S::LANES > 1 && (1usize << l) == S::LANES;
        let mut r = 0;
        while r < rows.rows {
            let w = wbase.add(r * wstride);
            let dst = rows.dst.add(r * rows.dst_stride);
            let mut s = stages;
            while s < l {
                let c = (l - s).min(3);
                let last = s + c == l;
                if last && k == 1 {
                    radix_pass_any::<S, Td>(w, dst, n, s, c, Some(scale));
                } else {
                    radix_pass_any::<S, f32>(w, w, n, s, c, None);
                }
                s += c;
            }
            if pair && r + 1 < rows.rows {
                let w1 = wbase.add((r + 1) * wstride);
                let mut s = stages;
                while s < l {
                    let c = (l - s).min(3);
                    radix_pass_any::<S, f32>(w1, w1, n, s, c, None);
                    s += c;
                }
                kmix_pair::<S, Td>(w, w1, dst, rows.dst_stride, k, htab, scale, panel);
                r += 2;
                continue;
            }
            r += 1;
            if k > 1 {
                let m = 1usize << l;
                if m >= S::LANES {
                    kmix_row::<S, Td>(w, dst, k, m, htab, scale, panel);
                } else if m >= Hw::LANES {
                    kmix_row::<Hw, Td>(w, dst, k, m, htab, scale, panel);
                } else if S::LANES > 1 {
                    // m < 8: vectorize across the K outputs instead of along the segment.
                    kmix_row_narrow::<S, Td>(w, dst, k, m, tables.h_narrow, scale, panel);
                } else {
                    kmix_row::<Scalar, Td>(w, dst, k, m, htab, scale, panel);
                }
            }
        }
    }
}

/// Quark <= 0.10 `hadamard_transform` compatibility: zero-pad to the next power of two,
/// transform, keep the first n outputs.
#[inline(always)]
unsafe fn padded_row<S: Simd, Hw: Simd, Ts: Element, Td: Element>(
    plan: &HadamardPlan,
    scale: f32,
    src: *const Ts,
    dst: *mut Td,
    work: *mut f32,
) {
    let n = plan.n();
    let p = plan.padded_len();
    let l = p.trailing_zeros();
    unsafe {
        for i in 0..n {
            *work.add(i) = (*src.add(i)).to_f32();
        }
        for i in n..p {
            *work.add(i) = 0.0;
        }
        let (lanes, stages) = first_pass_width::<S, Hw>(p, l);
        first_pass_any::<S, Hw, f32, f32>(lanes, work, p, work, p, 1, p, stages, None);
        let mut s = stages;
        while s < l {
            let c = (l - s).min(3);
            radix_pass_any::<S, f32>(work, work, p, s, c, None);
            s += c;
        }
        for i in 0..n {
            *dst.add(i) = Td::from_f32(*work.add(i) * scale);
        }
    }
}

/// The vector width of the first pass over rows of length `len` (the widest of S, Hw and
/// scalar that divides it) and how many of the `l` stages it does (what fits in 8 registers).
/// Must agree with `intra_log2_lanes`.
#[inline(always)]
fn first_pass_width<S: Simd, Hw: Simd>(len: usize, l: u32) -> (usize, u32) {
    let lanes = if len.is_multiple_of(S::LANES) {
        S::LANES
    } else if len.is_multiple_of(Hw::LANES) {
        Hw::LANES
    } else {
        1
    };
    (lanes, (lanes.trailing_zeros() + 3).min(l))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn first_pass_any<S: Simd, Hw: Simd, Ts: Element, To: Element>(
    lanes: usize,
    src: *const Ts,
    src_stride: usize,
    out: *mut To,
    out_stride: usize,
    rows: usize,
    n: usize,
    stages: u32,
    scale: Option<f32>,
) {
    unsafe {
        if lanes == S::LANES {
            first_pass::<S, Ts, To>(src, src_stride, out, out_stride, rows, n, stages, scale)
        } else if lanes == Hw::LANES {
            first_pass::<Hw, Ts, To>(src, src_stride, out, out_stride, rows, n, stages, scale)
        } else {
            first_pass::<Scalar, Ts, To>(src, src_stride, out, out_stride, rows, n, stages, scale)
        }
    }
}

/// First pass over `rows` rows of length `n` (a multiple of V::LANES): `stages` stages
/// (at most LOG2_LANES + 3) on groups of 8 vectors. Rows whose length is not a multiple of
/// 8 vectors are streamed: consecutive rows fill the 8 registers, which is exact because
/// each row's vector count is a multiple of the 2^stages-element block.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn first_pass<V: Simd, Ts: Element, To: Element>(
    src: *const Ts,
    src_stride: usize,
    out: *mut To,
    out_stride: usize,
    rows: usize,
    n: usize,
    stages: u32,
    scale: Option<f32>,
) {
    let w = V::LANES;
    let group_len = 8 * w;
    unsafe {
        if n.is_multiple_of(group_len) {
            for r in 0..rows {
                let s = src.add(r * src_stride);
                let o = out.add(r * out_stride);
                let mut g = 0;
                while g < n {
                    let sp: [*const Ts; 8] = std::array::from_fn(|i| s.add(g + i * w));
                    let op: [*mut To; 8] = std::array::from_fn(|i| o.add(g + i * w));
                    group::<V, Ts, To>(&sp, &op, stages, scale);
                    g += group_len;
                }
            }
            return;
        }
        let zeros = [Ts::ZERO; 16];
        let mut sink = [To::ZERO; 16];
        let mut sp = [zeros.as_ptr(); 8];
        let mut op = [sink.as_mut_ptr(); 8];
        let mut filled = 0;
        for r in 0..rows {
            let s = src.add(r * src_stride);
            let o = out.add(r * out_stride);
            let mut off = 0;
            while off < n {
                sp[filled] = s.add(off);
                op[filled] = o.add(off);
                filled += 1;
                if filled == 8 {
                    group::<V, Ts, To>(&sp, &op, stages, scale);
                    filled = 0;
                }
                off += w;
            }
        }
        if filled > 0 {
            for i in filled..8 {
                sp[i] = zeros.as_ptr();
                op[i] = sink.as_mut_ptr();
            }
            group::<V, Ts, To>(&sp, &op, stages, scale);
        }
    }
}

/// Load 8 vectors, do `stages` radix-2 stages (in-vector first, then between registers
/// at distance 1, 2, 4), optionally scale, store.
#[inline(always)]
unsafe fn group<V: Simd, Ts: Element, To: Element>(
    sp: &[*const Ts; 8],
    op: &[*mut To; 8],
    stages: u32,
    scale: Option<f32>,
) {
    unsafe {
        let mut v: [V::V; 8] = std::array::from_fn(|i| load::<V, Ts>(sp[i]));
        let in_vector = stages.min(V::LOG2_LANES);
        // Literal stage numbers, so each `stage_in_vector` folds to its permute (a runtime
        // stage number left a branch per call).
        macro_rules! in_vector_stage {
            ($st:literal) => {
                if in_vector > $st {
                    for x in v.iter_mut() {
                        *x = V::stage_in_vector(*x, $st);
                    }
                }
            };
        }
        in_vector_stage!(0);
        in_vector_stage!(1);
        in_vector_stage!(2);
        in_vector_stage!(3);
        // Stages between registers at distance 1, 2, 4 (constant distances, so the eight
        // values stay in registers: a runtime distance made the compiler keep `v` in memory).
        let between = stages - in_vector;
        if between >= 1 {
            butterflies::<V, 8, 1>(&mut v);
        }
        if between >= 2 {
            butterflies::<V, 8, 2>(&mut v);
        }
        if between >= 3 {
            butterflies::<V, 8, 4>(&mut v);
        }
        if let Some(c) = scale {
            let c = V::splat(c);
            for x in v.iter_mut() {
                *x = V::mul(*x, c);
            }
        }
        for i in 0..8 {
            store::<V, To>(op[i], v[i]);
        }
    }
}

/// One radix-2 stage between registers r and r + D (for r with bit D clear).
#[inline(always)]
unsafe fn butterflies<V: Simd, const R: usize, const D: usize>(v: &mut [V::V; R]) {
    for r in 0..R {
        if r & D == 0 {
            let d = D;
            let (a, b) = (v[r], v[r + d]);
            // SAFETY: plain arithmetic on values already in registers.
            unsafe {
                v[r] = V::add(a, b);
                v[r + d] = V::sub(a, b);
            }
        }
    }
}

#[inline(always)]
unsafe fn radix_pass_any<V: Simd, To: Element>(
    buf: *const f32,
    out: *mut To,
    n: usize,
    s0: u32,
    c: u32,
    scale: Option<f32>,
) {
    unsafe {
        match c {
            1 => radix_pass::<V, To, 2>(buf, out, n, s0, scale),
            2 => radix_pass::<V, To, 4>(buf, out, n, s0, scale),
            _ => radix_pass::<V, To, 8>(buf, out, n, s0, scale),
        }
    }
}

/// log2(R) stages h = 2^s0, 2^(s0+1), ... on an f32 row, R vectors at a time; h >= LANES.
#[inline(always)]
unsafe fn radix_pass<V: Simd, To: Element, const R: usize>(
    buf: *const f32,
    out: *mut To,
    n: usize,
    s0: u32,
    scale: Option<f32>,
) {
    let h = 1usize << s0;
    let span = h * R;
    unsafe {
        let mut base = 0;
        while base < n {
            let mut j = base;
            while j < base + h {
                let mut v: [V::V; R] = std::array::from_fn(|r| V::load_f32(buf.add(j + r * h)));
                if R >= 2 {
                    butterflies::<V, R, 1>(&mut v);
                }
                if R >= 4 {
                    butterflies::<V, R, 2>(&mut v);
                }
                if R >= 8 {
                    butterflies::<V, R, 4>(&mut v);
                }
                if let Some(c) = scale {
                    let c = V::splat(c);
                    for x in v.iter_mut() {
                        *x = V::mul(*x, c);
                    }
                }
                for (r, x) in v.iter().enumerate() {
                    store::<V, To>(out.add(j + r * h), *x);
                }
                j += V::LANES;
            }
            base += span;
        }
    }
}

/// out[i][j] = scale * sum_{k = 0..K-1} H[i][k] * w[k][j] for a K x m row (m >= LANES).
/// `w` may be the destination itself (f32 output): column blocks are copied to `panel`
/// before they are overwritten.
#[inline(always)]
unsafe fn kmix_row<V: Simd, Td: Element>(
    w: *mut f32,
    dst: *mut Td,
    k: usize,
    m: usize,
    htab: *const f32,
    scale: f32,
    panel: *mut f32,
) {
    let lanes = V::LANES;
    let aliased = Td::DTYPE == DType::F32 && std::ptr::eq(w.cast::<Td>(), dst);
    let two_vectors = m >= 2 * lanes;
    let jb = if two_vectors { 2 * lanes } else { lanes };
    unsafe {
        let mut j0 = 0;
        while j0 < m {
            let (a, a_stride) = if aliased {
                for kk in 0..k {
                    let mut j = 0;
                    while j < jb {
                        V::store_f32(panel.add(kk * jb + j), V::load_f32(w.add(kk * m + j0 + j)));
                        j += lanes;
                    }
                }
                (panel.cast_const(), jb)
            } else {
                (w.add(j0).cast_const(), m)
            };
            let mut i = 0;
            if V::KMIX_MR == 8 {
                while i + 8 <= k {
                    kmix_block_nr::<V, Td, 8>(
                        two_vectors,
                        a,
                        a_stride,
                        htab.add(i * k),
                        k,
                        dst.add(i * m + j0),
                        m,
                        scale,
                    );
                    i += 8;
                }
            }
            while i < k {
                // K is a multiple of 4 for every table entry.
                kmix_block_nr::<V, Td, 4>(
                    two_vectors,
                    a,
                    a_stride,
                    htab.add(i * k),
                    k,
                    dst.add(i * m + j0),
                    m,
                    scale,
                );
                i += 4;
            }
            j0 += jb;
        }
    }
}

/// The K mix of two rows whose segments are one vector long (m = V::LANES), together:
/// both rows' segments go into `panel` (K x 2 vectors, which also makes in place safe) and
/// each table entry then multiplies two vectors (twice the work per broadcast of a table
/// entry as `kmix_row` with m = LANES). Row 1's outputs are `dst_stride` elements after
/// row 0's. Same operations in the same order per output as `kmix_row`: the same bits.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn kmix_pair<V: Simd, Td: Element>(
    w0: *const f32,
    w1: *const f32,
    dst: *mut Td,
    dst_stride: usize,
    k: usize,
    htab: *const f32,
    scale: f32,
    panel: *mut f32,
) {
    let lanes = V::LANES;
    unsafe {
        for kk in 0..k {
            V::store_f32(panel.add(kk * 2 * lanes), V::load_f32(w0.add(kk * lanes)));
            V::store_f32(
                panel.add(kk * 2 * lanes + lanes),
                V::load_f32(w1.add(kk * lanes)),
            );
        }
        let a = panel.cast_const();
        let mut i = 0;
        if V::KMIX_MR == 8 {
            while i + 8 <= k {
                let d = dst.add(i * lanes);
                kmix_block::<V, Td, 8, 2>(
                    a,
                    2 * lanes,
                    htab.add(i * k),
                    k,
                    d,
                    lanes,
                    dst_stride,
                    scale,
                );
                i += 8;
            }
        }
        while i < k {
            let d = dst.add(i * lanes);
            kmix_block::<V, Td, 4, 2>(
                a,
                2 * lanes,
                htab.add(i * k),
                k,
                d,
                lanes,
                dst_stride,
                scale,
            );
            i += 4;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn kmix_block_nr<V: Simd, Td: Element, const MR: usize>(
    two_vectors: bool,
    a: *const f32,
    a_stride: usize,
    h: *const f32,
    k: usize,
    dst: *mut Td,
    m: usize,
    scale: f32,
) {
    unsafe {
        if two_vectors {
            kmix_block::<V, Td, MR, 2>(a, a_stride, h, k, dst, m, V::LANES, scale)
        } else {
            kmix_block::<V, Td, MR, 1>(a, a_stride, h, k, dst, m, V::LANES, scale)
        }
    }
}

/// The K mix of one row whose segments are shorter than a vector (m = 1, 2, 4: head_dim
/// 80 = 40 * 2, 112 = 28 * 4, 160 = 40 * 4, ...), vectorized across the K outputs: with
/// the segments transposed (aT, m x K) and H read as columns (`htab_t`, K x kp,
/// htab_t[c][i] = H[i][c], zero past K), out^T = aT * H^T is `kmix_block` with the data as
/// the broadcast operand and the +-1 table as the vector one: out[i][j] = sum over
/// c = 0..K-1, in order from 0, of a[c][j] * H[i][c], the same operations in the same order
/// as the reference, so the same bits.
#[inline(always)]
unsafe fn kmix_row_narrow<V: Simd, Td: Element>(
    w: *mut f32,
    dst: *mut Td,
    k: usize,
    m: usize,
    htab_t: *const f32,
    scale: f32,
    panel: *mut f32,
) {
    let lanes = V::LANES;
    let kp = table_cache::narrow_stride(k);
    // The panel (k * 2 * lanes values) holds aT (m x k) and the results (m x kp): with
    // m <= 4 and lanes >= 8 that is at most 8k + 4 lanes <= 2k lanes.
    debug_assert!(m <= 4 && m * (k + kp) <= k * 2 * lanes);
    unsafe {
        // aT in the panel (k * 2 * lanes >= k * m values); also what makes in place safe.
        for c in 0..k {
            for j in 0..m {
                *panel.add(j * k + c) = *w.add(c * m + j);
            }
        }
        let at = panel.cast_const();
        let o = panel.add(m * k);
        let mut v = 0;
        let nv = kp / lanes;
        // Groups of as many vectors as keep <= 12 accumulators (independent chains: the
        // sum over c is sequential per output), then smaller groups for the rest.
        macro_rules! blocks {
            ($mr:literal; $($nr:literal),+) => {{
                $(
                    while nv - v >= $nr {
                        kmix_block::<V, f32, $mr, $nr>(
                            htab_t.add(v * lanes),
                            kp,
                            at,
                            k,
                            o.add(v * lanes),
                            kp,
                            lanes,
                            scale,
                        );
                        v += $nr;
                    }
                )+
            }};
        }
        match m {
            1 => blocks!(1; 8, 4, 2, 1),
            2 => blocks!(2; 6, 4, 3, 2, 1),
            _ => blocks!(4; 3, 2, 1),
        }
        for i in 0..k {
            for j in 0..m {
                *dst.add(i * m + j) = Td::from_f32(*o.add(j * kp + i));
            }
        }
    }
}

/// MR output rows x NR vectors of columns, accumulated over k = 0..K-1 in order.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn kmix_block<V: Simd, Td: Element, const MR: usize, const NR: usize>(
    a: *const f32,
    a_stride: usize,
    h: *const f32,
    k: usize,
    dst: *mut Td,
    m: usize,
    col_step: usize,
    scale: f32,
) {
    unsafe {
        let zero = V::splat(0.0);
        let mut acc = [[zero; NR]; MR];
        for kk in 0..k {
            let av: [V::V; NR] =
                std::array::from_fn(|c| V::load_f32(a.add(kk * a_stride + c * V::LANES)));
            for (r, row) in acc.iter_mut().enumerate() {
                let hv = V::splat(*h.add(r * k + kk));
                for (c, x) in row.iter_mut().enumerate() {
                    *x = V::add_signed(*x, hv, av[c]);
                }
            }
        }
        let sv = V::splat(scale);
        for (r, row) in acc.iter().enumerate() {
            for (c, x) in row.iter().enumerate() {
                store::<V, Td>(dst.wrapping_add(r * m + c * col_step), V::mul(*x, sv));
            }
        }
    }
}
