//! The blocked product: loops over cache blocks, packing of A, and the register-blocked
//! micro-kernel, generic over the vector type ([`Lanes`]) and the register tile
//! (`MR` rows x `NV` vectors of columns).
//!
//! Loop nest (GotoBLAS / BLIS): for each column block of NC columns, for each depth block
//! of KC (B's depth blocks are fixed when B is packed), for each row block of at most MC
//! rows: pack A's block into MR-row micro-panels (it stays in L2), then for each NR-column
//! micro-panel of B (KC x NR) run the micro-kernel down the row block. The first depth
//! block overwrites C, later ones add to it.
//!
//! Prefetching (measured on a Xeon with AVX-512, 48 KiB L1, 2 MiB L2): while a tile is
//! computed, the micro-kernel spreads over its depth loop (one line per 4 depth steps) the
//! prefetch of a slice of the *next* B micro-panel into L2 (B comes from L3 or memory, and
//! all the tiles of the row block share the work), and of the next tile's C rows into L1
//! (C is revisited once per depth block, from L3 or memory). Without them the large products
//! ran about 10 % slower.

use super::simd::Lanes;
use super::Real;

/// The largest register tile (MR * NR elements) of any kernel: the size of the scratch tile
/// that edge tiles are computed into.
pub(super) const MAX_TILE: usize = 1024;

/// Depth steps per unrolled group of the micro-kernel (one prefetch per stream per group).
const UNROLL: usize = 4;

/// One product, in raw pointers (validated by `super::gemm`).
pub(crate) struct Job<F> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A: m x k, row-major with leading dimension `lda`.
    pub a: *const F,
    pub lda: usize,
    /// B packed by `super::PackedB` with depth blocks of `kc`.
    pub b: *const F,
    /// C: m x n, row-major with leading dimension `ldc`.
    pub c: *mut F,
    pub ldc: usize,
    /// Room for min(mc, m rounded up to MR) * min(kc, k) elements, 64-byte aligned.
    pub apack: *mut F,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

/// Rows per row block: at most `mc` (a multiple of MR), and the blocks of `m` rows as even
/// as tiles allow, so no block is a sliver that reuses each B micro-panel only once or twice.
pub(super) fn row_block(m: usize, mc: usize, mr: usize) -> usize {
    let blocks = m.div_ceil(mc);
    m.div_ceil(blocks).div_ceil(mr) * mr
}

/// C = A * B for one instruction set and register tile.
///
/// # Safety
/// `V` must be runnable on this CPU; the pointers must describe valid memory as `Job` says;
/// `mc` must be a multiple of MR and `nc` of `NV * V::LANES`; `kc`, `mc`, `nc` non-zero.
#[inline(always)]
pub(super) unsafe fn run<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(job: &Job<F>) {
    let nr = NV * V::LANES;
    debug_assert!(MR * nr <= MAX_TILE);
    debug_assert!(job.kc > 0 && job.mc > 0 && job.nc > 0);
    debug_assert!(job.mc.is_multiple_of(MR) && job.nc.is_multiple_of(nr));
    let (m, n, k) = (job.m, job.n, job.k);
    let n_pad = n.div_ceil(nr) * nr;
    let mcb = row_block(m, job.mc, MR);
    let mut tile = Tile([F::ZERO; MAX_TILE]);
    unsafe {
        let mut jc = 0;
        while jc < n {
            let nc = job.nc.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = job.kc.min(k - pc);
                // Depth block pc starts at pc * n_pad; its panels are kc * nr each.
                let b = job.b.add(pc * n_pad + jc * kc);
                let mut ic = 0;
                while ic < m {
                    let mc = mcb.min(m - ic);
                    pack_a::<F, MR>(mc, kc, job.a.add(ic * job.lda + pc), job.lda, job.apack);
                    let block = Block {
                        mc,
                        nc,
                        kc,
                        a: job.apack,
                        b,
                        // The next row block starts again with this block's first panel.
                        b_after: if ic + mc < m { Some(b) } else { None },
                        c: job.c.add(ic * job.ldc + jc),
                        ldc: job.ldc,
                        accumulate: pc > 0,
                    };
                    macro_block::<F, V, MR, NV>(&block, &mut tile.0);
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    }
}

/// Scratch for one edge tile, aligned like the packed buffers.
#[repr(C, align(64))]
struct Tile<F>([F; MAX_TILE]);

/// Copy rows `0..mc`, columns `0..kc` of A into MR-row micro-panels: panel p holds rows
/// p*MR .. p*MR+MR, stored column by column (MR consecutive values per depth index).
/// Rows past `mc` in the last panel are zero.
#[inline(always)]
unsafe fn pack_a<F: Real, const MR: usize>(
    mc: usize,
    kc: usize,
    a: *const F,
    lda: usize,
    out: *mut F,
) {
    unsafe {
        let mut r0 = 0;
        let mut dst = out;
        while r0 < mc {
            let rows = MR.min(mc - r0);
            if rows == MR {
                for p in 0..kc {
                    let d = dst.add(p * MR);
                    for i in 0..MR {
                        *d.add(i) = *a.add((r0 + i) * lda + p);
                    }
                }
            } else {
                for p in 0..kc {
                    let d = dst.add(p * MR);
                    for i in 0..MR {
                        *d.add(i) = if i < rows {
                            *a.add((r0 + i) * lda + p)
                        } else {
                            F::ZERO
                        };
                    }
                }
            }
            r0 += MR;
            dst = dst.add(MR * kc);
        }
    }
}

/// One packed A block (mc x kc) times one packed B block (kc x nc) into C.
struct Block<F> {
    mc: usize,
    nc: usize,
    kc: usize,
    /// Packed A block.
    a: *const F,
    /// Packed B block: micro-panels of kc x NR.
    b: *const F,
    /// The micro-panel used after this block's last one, if any (to prefetch it).
    b_after: Option<*const F>,
    c: *mut F,
    ldc: usize,
    accumulate: bool,
}

/// Lines to prefetch while one register tile is computed.
#[derive(Clone, Copy)]
struct Prefetch<F> {
    /// `b_lines` consecutive lines from `b` (a slice of the next B micro-panel), into L2.
    b: *const F,
    b_lines: usize,
    /// The first `c_rows` rows (stride `ldc`) of the next tile of C, into L1.
    c: *const F,
    c_rows: usize,
    ldc: usize,
}

#[inline(always)]
unsafe fn macro_block<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(
    blk: &Block<F>,
    tile: &mut [F; MAX_TILE],
) {
    let nr = NV * V::LANES;
    let (mc, nc, kc, ldc) = (blk.mc, blk.nc, blk.kc, blk.ldc);
    let line = 64 / std::mem::size_of::<F>();
    let panel_lines = (kc * nr).div_ceil(line);
    let lines_per_tile = panel_lines.div_ceil(mc.div_ceil(MR));
    unsafe {
        let mut jr = 0;
        while jr < nc {
            let cols = nr.min(nc - jr);
            let bp = blk.b.add(jr * kc);
            let b_next = if jr + nr < nc {
                Some(bp.add(kc * nr))
            } else {
                blk.b_after
            };
            let mut ir = 0;
            while ir < mc {
                let rows = MR.min(mc - ir);
                let ap = blk.a.add(ir * kc);
                let cp = blk.c.add(ir * ldc + jr);
                // Prefetch addresses are only hints: computed with wrapping arithmetic, as
                // the next tile's C rows may lie past the end of C's valid columns.
                let mut pf = Prefetch {
                    b: bp,
                    b_lines: 0,
                    c: cp,
                    c_rows: 0,
                    ldc,
                };
                if let Some(bn) = b_next {
                    let first = (ir / MR) * lines_per_tile;
                    pf.b = bn.wrapping_add(first * line);
                    pf.b_lines = lines_per_tile.min(panel_lines.saturating_sub(first));
                }
                if ir + MR < mc {
                    pf.c = cp.wrapping_add(MR * ldc);
                    pf.c_rows = MR.min(mc - ir - MR);
                } else if jr + nr < nc {
                    pf.c = blk.c.wrapping_add(jr + nr);
                    pf.c_rows = MR.min(mc);
                }
                if rows == MR && cols == nr {
                    micro::<F, V, MR, NV>(kc, ap, bp, cp, ldc, blk.accumulate, pf);
                } else {
                    let t = tile.as_mut_ptr();
                    micro::<F, V, MR, NV>(kc, ap, bp, t, nr, false, pf);
                    for i in 0..rows {
                        for j in 0..cols {
                            let x = *t.add(i * nr + j);
                            let d = cp.add(i * ldc + j);
                            *d = if blk.accumulate { (*d).add(x) } else { x };
                        }
                    }
                }
                ir += MR;
            }
            jr += nr;
        }
    }
}

/// The register tile: C[0..MR][0..NR] (=|+=) sum over p < kc of a[p][i] * b[p][j], where
/// `a` is an MR-row micro-panel and `b` a NR-column micro-panel (NR = NV * LANES). The
/// accumulators stay in registers (MR * NV of them); each depth step loads NV vectors of B
/// and broadcasts MR values of A.
#[inline(always)]
unsafe fn micro<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(
    kc: usize,
    a: *const F,
    b: *const F,
    c: *mut F,
    ldc: usize,
    accumulate: bool,
    pf: Prefetch<F>,
) {
    let nr = NV * V::LANES;
    let line = 64 / std::mem::size_of::<F>();
    let c_lines_per_row = nr.div_ceil(line);
    let c_lines = pf.c_rows * c_lines_per_row;
    unsafe {
        let mut acc = [[V::zero(); NV]; MR];
        let mut a = a;
        let mut b = b;
        let groups = kc / UNROLL;
        for g in 0..groups {
            if g < pf.b_lines {
                V::prefetch_l2(pf.b.wrapping_add(g * line));
            }
            if g < c_lines {
                let (r, l) = (g / c_lines_per_row, g % c_lines_per_row);
                V::prefetch(pf.c.wrapping_add(r * pf.ldc + l * line));
            }
            for u in 0..UNROLL {
                step::<F, V, MR, NV>(&mut acc, a.add(u * MR), b.add(u * nr));
            }
            a = a.add(MR * UNROLL);
            b = b.add(nr * UNROLL);
        }
        for _ in groups * UNROLL..kc {
            step::<F, V, MR, NV>(&mut acc, a, b);
            a = a.add(MR);
            b = b.add(nr);
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                let q = c.add(i * ldc + j * V::LANES);
                let v = if accumulate {
                    V::add(V::load(q), *x)
                } else {
                    *x
                };
                V::store(q, v);
            }
        }
    }
}

/// One depth step: acc[i][j] += a[i] * b[j * LANES ..].
#[inline(always)]
unsafe fn step<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(
    acc: &mut [[V::V; NV]; MR],
    a: *const F,
    b: *const F,
) {
    unsafe {
        let bv: [V::V; NV] = std::array::from_fn(|j| V::load(b.add(j * V::LANES)));
        for (i, row) in acc.iter_mut().enumerate() {
            for (x, bj) in row.iter_mut().zip(bv.iter()) {
                *x = V::fma_bcast(*x, a.add(i), *bj);
            }
        }
    }
}
