//! H_K as f32 tables for the kernels, built once per process and shared by every thread.
//!
//! Expanding a K x K table from its bit words costs about as much as transforming one row
//! of width 64 * K (K = 172: 29 584 entries), so building it on every call made a decode
//! call (one row) several times slower than the transform itself. Tables are built on
//! first use, kept for the life of the process (at most two orientations x two layouts per
//! K, 2 K^2 + 2 K (K + 15) floats per K: 0.46 MiB for K = 172) and found again through a
//! small per-thread list, so steady-state calls take no lock.

use super::HadamardPlan;
use crate::error::{Error, Status};
use std::cell::RefCell;
use std::sync::Mutex;

/// Which table: K, H_K^T instead of H_K, and the layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TableKey {
    pub k: usize,
    pub transposed: bool,
    /// false: row-major K x K, t[i * K + j] = H[i][j] (of the oriented matrix).
    /// true: its transpose with rows padded with zeros to `narrow_stride(K)` values,
    /// t[c * kp + i] = H[i][c], for the across-outputs mix of narrow segments.
    pub narrow: bool,
}

/// Row length of the narrow layout: K rounded up to a multiple of 16 (so it is a whole
/// number of vectors for 8- and 16-lane paths alike).
pub(crate) fn narrow_stride(k: usize) -> usize {
    k.next_multiple_of(16)
}

static ALL: Mutex<Vec<(TableKey, &'static [f32])>> = Mutex::new(Vec::new());

thread_local! {
    static SEEN: RefCell<Vec<(TableKey, &'static [f32])>> = const { RefCell::new(Vec::new()) };
}

/// The table for `plan` (K > 1) in the given layout.
pub(crate) fn table(plan: &HadamardPlan, narrow: bool) -> Result<&'static [f32], Error> {
    let key = TableKey {
        k: plan.k(),
        transposed: plan.transposed(),
        narrow,
    };
    if let Some(t) = SEEN.with(|s| s.borrow().iter().find(|e| e.0 == key).map(|e| e.1)) {
        return Ok(t);
    }
    let t = {
        // A poisoned lock only means another thread panicked while pushing: the list is
        // still a valid list of finished tables.
        let mut all = ALL.lock().unwrap_or_else(|p| p.into_inner());
        match all.iter().find(|e| e.0 == key) {
            Some(e) => e.1,
            None => {
                let t: &'static [f32] = Box::leak(build(plan, narrow)?.into_boxed_slice());
                all.push((key, t));
                t
            }
        }
    };
    SEEN.with(|s| s.borrow_mut().push((key, t)));
    Ok(t)
}

fn build(plan: &HadamardPlan, narrow: bool) -> Result<Vec<f32>, Error> {
    let k = plan.k();
    let oom = || {
        Error::new(
            Status::OutOfMemory,
            format!("could not allocate the K = {k} table"),
        )
    };
    let mut h = Vec::new();
    h.try_reserve_exact(k * k).map_err(|_| oom())?;
    h.resize(k * k, 0.0f32);
    plan.expand_k_table(&mut h);
    if !narrow {
        return Ok(h);
    }
    let kp = narrow_stride(k);
    let mut t = Vec::new();
    t.try_reserve_exact(k * kp).map_err(|_| oom())?;
    t.resize(k * kp, 0.0f32);
    for c in 0..k {
        for i in 0..k {
            t[c * kp + i] = h[i * k + c];
        }
    }
    Ok(t)
}
