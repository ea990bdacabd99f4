//! The blocked product: loops over cache blocks, packing of A, and the register-blocked
//! micro-kernel, generic over the vector type ([`Lanes`]) and the register tile
//! (`MR` rows x `NV` vectors of columns).
//!
//! Loop nest (GotoBLAS / BLIS): for each column block of NC columns, for each depth block
//! of KC (B's depth blocks are fixed when B is packed), for each row block of MC rows:
//! pack A's MC x KC block into MR-row micro-panels (it stays in L2), then for each NR-column
//! micro-panel of B (KC x NR, stays in L1) run the micro-kernel down the row block.
//! The first depth block overwrites C, later ones add to it.

use super::simd::Lanes;
use super::Real;

/// The largest register tile (MR * NR elements) of any kernel: the size of the scratch tile
/// that edge tiles are computed into.
pub(super) const MAX_TILE: usize = 1024;

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
    /// Room for ceil(min(m, mc) / MR) * MR * kc elements, 64-byte aligned.
    pub apack: *mut F,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

/// C = A * B for one instruction set and register tile.
///
/// # Safety
/// `V` must be runnable on this CPU; the pointers must describe valid memory as `Job` says;
/// `nc` must be a multiple of `NV * V::LANES` and `kc`, `mc`, `nc` non-zero.
#[inline(always)]
pub(super) unsafe fn run<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(job: &Job<F>) {
    let nr = NV * V::LANES;
    debug_assert!(MR * nr <= MAX_TILE);
    debug_assert!(job.kc > 0 && job.mc > 0 && job.nc > 0 && job.nc.is_multiple_of(nr));
    let (m, n, k) = (job.m, job.n, job.k);
    let n_pad = n.div_ceil(nr) * nr;
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
                    let mc = job.mc.min(m - ic);
                    pack_a::<F, MR>(mc, kc, job.a.add(ic * job.lda + pc), job.lda, job.apack);
                    let c = job.c.add(ic * job.ldc + jc);
                    macro_block::<F, V, MR, NV>(
                        mc,
                        nc,
                        kc,
                        job.apack,
                        b,
                        c,
                        job.ldc,
                        pc > 0,
                        &mut tile.0,
                    );
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
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn macro_block<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(
    mc: usize,
    nc: usize,
    kc: usize,
    apack: *const F,
    b: *const F,
    c: *mut F,
    ldc: usize,
    accumulate: bool,
    tile: &mut [F; MAX_TILE],
) {
    let nr = NV * V::LANES;
    unsafe {
        // While a B micro-panel is in use, the next one (from L3 or memory) is prefetched
        // into L2, a slice per register tile.
        let line = 64 / std::mem::size_of::<F>();
        let panel_lines = (kc * nr).div_ceil(line);
        let tiles = mc.div_ceil(MR);
        let lines_per_tile = panel_lines.div_ceil(tiles);
        let mut jr = 0;
        while jr < nc {
            let cols = nr.min(nc - jr);
            let bp = b.add(jr * kc);
            let next = if jr + nr < nc {
                Some(bp.add(kc * nr))
            } else {
                None
            };
            let mut ir = 0;
            while ir < mc {
                let rows = MR.min(mc - ir);
                let ap = apack.add(ir * kc);
                let cp = c.add(ir * ldc + jr);
                if let Some(bn) = next {
                    let first = (ir / MR) * lines_per_tile;
                    let last = (first + lines_per_tile).min(panel_lines);
                    for l in first..last {
                        V::prefetch_l2(bn.add(l * line));
                    }
                }
                if rows == MR && cols == nr {
                    micro::<F, V, MR, NV>(kc, ap, bp, cp, ldc, accumulate);
                } else {
                    let t = tile.as_mut_ptr();
                    micro::<F, V, MR, NV>(kc, ap, bp, t, nr, false);
                    for i in 0..rows {
                        for j in 0..cols {
                            let x = *t.add(i * nr + j);
                            let d = cp.add(i * ldc + j);
                            *d = if accumulate { (*d).add(x) } else { x };
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
/// `a` is an MR-row micro-panel and `b` a NR-column micro-panel (NR = NV * LANES).
#[inline(always)]
unsafe fn micro<F: Real, V: Lanes<F>, const MR: usize, const NV: usize>(
    kc: usize,
    a: *const F,
    b: *const F,
    c: *mut F,
    ldc: usize,
    accumulate: bool,
) {
    let nr = NV * V::LANES;
    unsafe {
        if accumulate {
            // C comes from L3 or memory (each depth block revisits it): start the loads now,
            // so they have the whole depth loop to arrive.
            let line = 64 / std::mem::size_of::<F>();
            for i in 0..MR {
                let row = c.add(i * ldc);
                let mut j = 0;
                while j < nr {
                    V::prefetch(row.add(j));
                    j += line;
                }
                V::prefetch(row.add(nr - 1));
            }
        }
        let mut acc = [[V::zero(); NV]; MR];
        let mut a = a;
        let mut b = b;
        for _ in 0..kc {
            let bv: [V::V; NV] = std::array::from_fn(|j| V::load(b.add(j * V::LANES)));
            for (i, row) in acc.iter_mut().enumerate() {
                for (x, bj) in row.iter_mut().zip(bv.iter()) {
                    *x = V::fma_bcast(*x, a.add(i), *bj);
                }
            }
            a = a.add(MR);
            b = b.add(nr);
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                let p = c.add(i * ldc + j * V::LANES);
                let v = if accumulate {
                    V::add(V::load(p), *x)
                } else {
                    *x
                };
                V::store(p, v);
            }
        }
    }
}
