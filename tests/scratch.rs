//! The scratch pool. It is process-wide and both tests here assert on its contents, so
//! they hold a lock: nothing else in this binary allocates while one of them runs.

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

use quarot::scratch::{release, retained, Buf, ALIGN, POOL_MAX, POOL_MIN};

#[test]
fn pool_reuses_keeps_at_most_max_and_releases() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    release();
    let mut a = Buf::take(3 << 20).unwrap();
    assert_eq!(a.as_ptr() as usize % ALIGN, 0);
    // SAFETY: inside the buffer.
    unsafe { a.as_mut_ptr().add(5).write(7) };
    let addr = a.as_ptr();
    drop(a);
    assert!(retained() >= 3 << 20);
    // A smaller request takes the pooled buffer, contents and all.
    let b = Buf::take(2 << 20).unwrap();
    assert_eq!(b.as_ptr(), addr);
    // SAFETY: inside the buffer.
    assert_eq!(unsafe { b.as_ptr().add(5).read() }, 7);
    assert_eq!(b.bytes(), 3 << 20);
    drop(b);
    // Small buffers are not kept.
    let before = retained();
    drop(Buf::take(4096).unwrap());
    assert_eq!(retained(), before);
    // At most POOL_MAX buffers.
    let many: Vec<Buf> = (0..POOL_MAX + 3)
        .map(|i| Buf::take(POOL_MIN + i).unwrap())
        .collect();
    drop(many);
    assert!(retained() <= POOL_MAX * (POOL_MIN + POOL_MAX + 3) + (3 << 20));
    assert!(release() > 0);
    assert_eq!(retained(), 0);
    assert_eq!(Buf::take(0).unwrap().bytes(), 0);
}

/// Dense rotations reuse pooled buffers that hold old values (the packed R of a 1024-wide
/// rotation, then a 370-wide one, not a multiple of any register tile width, so edge tiles
/// and padding are involved): a rotation on a dirty pool equals the same rotation on a fresh
/// one, bit for bit, and both match an f64 evaluation.
#[test]
fn rotations_on_reused_scratch_are_unchanged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use quarot::rotate::{rotate_in_channels, Rotation, ROTATE_FLAG_F32_ACCUMULATE};
    let values = |len: usize, seed: u64| -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    };
    for flags in [0, ROTATE_FLAG_F32_ACCUMULATE] {
        // Dirty the pool with big buffers full of non-zero values.
        let big = values(1024 * 1024, 1);
        let mut wb: Vec<f32> = values(64 * 1024, 2).iter().map(|&v| v as f32).collect();
        let dense = Rotation::Dense {
            matrix: &big,
            n: 1024,
        };
        rotate_in_channels(&mut wb, 64, 1024, 1024, &dense, flags).unwrap();
        assert!(retained() >= 1024 * 1024 * 4, "the packed R was kept");

        let (m, r) = (40, 370);
        let rot = values(r * r, 3);
        let w0: Vec<f32> = values(m * r, 4).iter().map(|&v| v as f32).collect();
        let rotation = Rotation::Dense { matrix: &rot, n: r };
        let mut dirty = w0.clone();
        rotate_in_channels(&mut dirty, m, r, r, &rotation, flags).unwrap();
        assert!(release() > 0);
        let mut fresh = w0.clone();
        rotate_in_channels(&mut fresh, m, r, r, &rotation, flags).unwrap();
        assert_eq!(
            dirty.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            fresh.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "flags {flags}"
        );
        for i in 0..m {
            for j in 0..r {
                let want: f64 = (0..r)
                    .map(|p| f64::from(w0[i * r + p]) * rot[p * r + j])
                    .sum();
                let mag: f64 = (0..r)
                    .map(|p| (f64::from(w0[i * r + p]) * rot[p * r + j]).abs())
                    .sum();
                let got = f64::from(fresh[i * r + j]);
                assert!(
                    (got - want).abs() <= 2f64.powi(-23) * want.abs() + 1e-5 * mag,
                    "flags {flags} ({i},{j}): {got} vs {want}"
                );
            }
        }
    }
}
