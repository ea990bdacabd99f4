//! Every available instruction set against a plain f64 triple loop.

use super::*;

fn isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
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

/// Unit roundoff of F.
fn unit<F: Real>() -> f64 {
    if std::mem::size_of::<F>() == 4 {
        f32::EPSILON as f64 / 2.0
    } else {
        f64::EPSILON / 2.0
    }
}

/// One product checked against the reference: A is m x k (lda), B is k x n read as
/// b[i * rs + j * cs], C has leading dimension ldc; C's other elements must stay untouched.
#[allow(clippy::too_many_arguments)]
fn check<F: Real>(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    lda: usize,
    ldc: usize,
    transposed_b: bool,
    blk: Option<Blocking>,
    ws: &mut Workspace<F>,
) {
    let seed = (m * 1_000_003 + k * 1009 + n) as u64;
    let a: Vec<F> = values(m.max(1) * lda, seed)
        .into_iter()
        .map(F::from_f64)
        .collect();
    let (rs, cs) = if transposed_b { (1, k) } else { (n, 1) };
    let b = values(k * n, seed + 7);
    let packed = match blk {
        Some(bl) => PackedB::<F>::with_kc(isa, k, n, &b, rs, cs, bl.kc),
        None => PackedB::<F>::new(isa, k, n, &b, rs, cs),
    }
    .unwrap();
    assert_eq!((packed.k(), packed.n()), (k, n));
    let sentinel = F::from_f64(12345.5);
    let mut c = vec![sentinel; m.max(1) * ldc];
    match blk {
        Some(bl) => gemm_blocked(isa, m, &a, lda, &packed, &mut c, ldc, ws, bl),
        None => gemm(isa, m, &a, lda, &packed, &mut c, ldc, ws),
    }
    .unwrap();
    let u = unit::<F>();
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j].to_f64();
            if j >= n {
                assert_eq!(
                    got, 12345.5,
                    "{isa:?} m{m} k{k} n{n}: C[{i}][{j}] outside n written"
                );
                continue;
            }
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                let x = a[i * lda + p].to_f64();
                let y = F::from_f64(b[p * rs + j * cs]).to_f64();
                want += x * y;
                mag += (x * y).abs();
            }
            let tol = (k as f64 + 2.0) * u * mag + f64::MIN_POSITIVE;
            assert!(
                (got - want).abs() <= tol,
                "{isa:?} {} m{m} k{k} n{n} lda{lda} ldc{ldc} t{transposed_b}: C[{i}][{j}] = {got}, \
                 want {want} (tol {tol})",
                std::any::type_name::<F>()
            );
        }
    }
    for (idx, x) in c.iter().enumerate().skip(m * ldc) {
        assert_eq!(x.to_f64(), 12345.5, "C[{idx}] past the last row written");
    }
}

const DIMS: [usize; 9] = [1, 2, 3, 7, 13, 31, 64, 65, 100];

fn small_shapes<F: Real>() {
    for isa in isas() {
        let mut ws = Workspace::<F>::new();
        for &m in &DIMS {
            for &k in DIMS.iter().chain(&[257]) {
                for &n in &DIMS {
                    check::<F>(isa, m, k, n, k, n, false, None, &mut ws);
                }
            }
        }
    }
}

#[test]
fn small_shapes_f32() {
    small_shapes::<f32>();
}

#[test]
fn small_shapes_f64() {
    small_shapes::<f64>();
}

fn strides_and_transposes<F: Real>() {
    for isa in isas() {
        let mut ws = Workspace::<F>::new();
        for &(m, k, n) in &[
            (1, 1, 1),
            (13, 31, 65),
            (65, 100, 33),
            (31, 257, 100),
            (3, 7, 64),
        ] {
            for t in [false, true] {
                check::<F>(isa, m, k, n, k, n, t, None, &mut ws);
                check::<F>(isa, m, k, n, k + 5, n + 3, t, None, &mut ws);
                check::<F>(isa, m, k, n, 2 * k + 64, n + 17, t, None, &mut ws);
            }
        }
    }
}

#[test]
fn strides_and_transposes_f32() {
    strides_and_transposes::<f32>();
}

#[test]
fn strides_and_transposes_f64() {
    strides_and_transposes::<f64>();
}

/// Shapes past every default cache block (several KC blocks, MC blocks, edge tiles).
fn large_shapes<F: Real>() {
    for isa in isas() {
        let mut ws = Workspace::<F>::new();
        for &(m, k, n) in &[(1000, 600, 70), (67, 1030, 200), (530, 300, 257)] {
            check::<F>(isa, m, k, n, k, n, false, None, &mut ws);
        }
        check::<F>(isa, 45, 513, 1000, 520, 1001, true, None, &mut ws);
    }
}

#[test]
fn large_shapes_f32() {
    large_shapes::<f32>();
}

#[test]
fn large_shapes_f64() {
    large_shapes::<f64>();
}

/// Tiny cache blocks, so every loop (NC, KC, MC, NR, MR) runs several times with edges.
fn tiny_blocks<F: Real>() {
    for isa in isas() {
        let base = F::blocking(isa);
        let mut ws = Workspace::<F>::new();
        for (kc, mcs, ncs) in [(1, 1, 1), (5, 2, 1), (7, 3, 2), (64, 1, 3)] {
            let blk = Blocking {
                kc,
                mc: mcs * base.mr,
                nc: ncs * base.nr,
                ..base
            };
            for &(m, k, n) in &[
                (1, 1, 1),
                (2 * base.mr + 1, 37, 3 * base.nr + 5),
                (40, 130, 70),
            ] {
                check::<F>(isa, m, k, n, k + 1, n + 2, false, Some(blk), &mut ws);
                check::<F>(isa, m, k, n, k, n, true, Some(blk), &mut ws);
            }
        }
    }
}

#[test]
fn tiny_blocks_f32() {
    tiny_blocks::<f32>();
}

#[test]
fn tiny_blocks_f64() {
    tiny_blocks::<f64>();
}

#[test]
fn degenerate_sizes() {
    for isa in isas() {
        let mut ws = Workspace::<f64>::new();
        // k = 0: C = 0 in the m x n block only.
        let b = PackedB::<f64>::new(isa, 0, 5, &[], 5, 1).unwrap();
        let mut c = vec![7.0; 3 * 6];
        gemm(isa, 3, &[], 0, &b, &mut c, 6, &mut ws).unwrap();
        for (i, x) in c.iter().enumerate() {
            assert_eq!(*x, if i % 6 < 5 { 0.0 } else { 7.0 });
        }
        // m = 0 and n = 0: nothing to do, nothing read.
        let b = PackedB::<f64>::new(isa, 4, 0, &[], 0, 1).unwrap();
        gemm(isa, 3, &[1.0; 12], 4, &b, &mut [], 0, &mut ws).unwrap();
        let b = PackedB::<f64>::new(isa, 2, 2, &[1.0; 4], 2, 1).unwrap();
        gemm(isa, 0, &[], 2, &b, &mut [], 2, &mut ws).unwrap();
    }
}

#[test]
fn workspace_is_reused_across_types_of_calls() {
    // One workspace for a large and then a small product (and back): no stale state.
    for isa in isas() {
        let mut ws = Workspace::<f32>::new();
        check::<f32>(isa, 300, 300, 40, 300, 40, false, None, &mut ws);
        check::<f32>(isa, 3, 5, 7, 5, 7, false, None, &mut ws);
        check::<f32>(isa, 300, 300, 40, 300, 40, true, None, &mut ws);
    }
}

#[test]
#[should_panic(expected = "another instruction set")]
fn packed_for_another_isa_panics() {
    let b = PackedB::<f32>::new(Isa::Scalar, 2, 2, &[1.0; 4], 2, 1).unwrap();
    let other = if Isa::Avx2.is_available() {
        Isa::Avx2
    } else {
        panic!("another instruction set")
    };
    let mut c = [0.0f32; 4];
    let _ = gemm(other, 2, &[1.0; 4], 2, &b, &mut c, 2, &mut Workspace::new());
}

#[test]
fn unavailable_isa_is_an_error() {
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_available()) {
        let e = PackedB::<f32>::new(isa, 2, 2, &[1.0; 4], 2, 1)
            .err()
            .unwrap();
        assert_eq!(e.status, Status::IsaUnavailable);
    }
}

#[test]
fn huge_sizes_are_errors_not_aborts() {
    let e = PackedB::<f64>::new(Isa::Scalar, usize::MAX / 2, 64, &[0.0], 0, 0)
        .err()
        .unwrap();
    assert!(
        matches!(e.status, Status::SizeOverflow | Status::OutOfMemory),
        "{e}"
    );
    let e = PackedB::<f64>::new(Isa::Scalar, 1 << 40, 64, &[0.0], 0, 0)
        .err()
        .unwrap();
    assert_eq!(e.status, Status::OutOfMemory, "{e}");
}

#[test]
fn conversions() {
    assert_eq!(f32::from_f64(0.1), 0.1f32);
    assert_eq!(f32::from_f64(1.0 + 2f64.powi(-24)), 1.0f32); // tie to even
    assert_eq!(f64::from_f64(0.1), 0.1);
    assert_eq!(0.5f32.to_f64(), 0.5);
}

#[test]
fn row_blocks_are_even_and_bounded() {
    use super::kernel::row_block;
    for mr in [4, 6, 14] {
        for mc in [mr, 2 * mr, 9 * mr, 12 * mr] {
            for m in 1..600 {
                let b = row_block(m, mc, mr);
                assert!(
                    b.is_multiple_of(mr) && b <= mc && b > 0,
                    "m {m} mc {mc} mr {mr}: {b}"
                );
                // As many blocks as the plain split, the last one not much shorter.
                assert_eq!(m.div_ceil(b), m.div_ceil(mc), "m {m} mc {mc} mr {mr}: {b}");
            }
        }
    }
    assert_eq!(row_block(252, 126, 14), 126);
    assert_eq!(row_block(252, 112, 14), 84);
}

/// Packing split over threads, in uneven ranges, gives exactly the single-call packing,
/// and reports a non-finite value wherever it is (strided sources too).
#[test]
fn split_packing_matches_and_checks_finiteness() {
    for isa in isas() {
        for &(k, n, transposed) in &[(1500, 70, false), (37, 1030, true), (1, 1, false)] {
            let (rs, cs) = if transposed { (1, k) } else { (n, 1) };
            let mut b = values(k * n, (k * n) as u64);
            let whole = PackedB::<f32>::new(isa, k, n, &b, rs, cs).unwrap();
            let cuts = [0, k / 3, k / 3 + 1, k];
            let run = |work: &(dyn Fn(usize, usize) + Sync)| {
                std::thread::scope(|s| {
                    for w in cuts.windows(2) {
                        s.spawn(move || work(w[0], w[1] - w[0]));
                    }
                })
            };
            // SAFETY: the ranges are disjoint and cover 0..k.
            let (split, finite) =
                unsafe { PackedB::<f32>::new_split(isa, k, n, &b, rs, cs, run) }.unwrap();
            assert!(finite);
            assert_eq!(
                whole.data.as_slice(),
                split.data.as_slice(),
                "{isa:?} {k}x{n}"
            );
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let at = (k - 1) * rs + (n - 1) * cs; // the last element read
                let keep = b[at];
                b[at] = bad;
                // SAFETY: as above.
                let (_, finite) =
                    unsafe { PackedB::<f64>::new_split(isa, k, n, &b, rs, cs, run) }.unwrap();
                assert!(!finite, "{isa:?} {k}x{n}: {bad} not seen");
                b[at] = keep;
            }
        }
    }
}
