//! Two threads that stay awake: the calling thread and one persistent helper that spins
//! for a short while (2 ms) after each job before it sleeps, as OpenMP's and ggml's workers
//! do (libgomp spins about 1 ms, ggml's pool about 0.1 s).
//!
//! Why not rayon: on this VM waking a sleeping thread on the idle vCPU takes up to
//! milliseconds, and rayon's workers go to sleep microseconds after their work, so a
//! `rayon::join` of two halves often ends with one thread running both (2-thread medians
//! equal to 1-thread ones, minima at half). The 2-thread streaming bound must be the
//! machine's, not the wake-up latency's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it sleeps.
pub const SPIN: Duration = Duration::from_millis(2);

type Job = *const (dyn Fn() + Sync);

struct JobPtr(Job);
// SAFETY: the pointee is Sync and outlives its use (run() waits for the helper to finish
// with it before returning).
unsafe impl Send for JobPtr {}

struct Shared {
    /// Bumped (under `lock`) for each job and for shutdown.
    epoch: AtomicU64,
    /// The epoch the helper has finished.
    done: AtomicU64,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<Option<JobPtr>>,
    wake: Condvar,
}

/// The calling thread plus one spinning helper.
pub struct Duo {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
}

impl Default for Duo {
    fn default() -> Self {
        Duo::new(None)
    }
}

impl Duo {
    /// Start the helper thread, pinned to `helper_cpu` if given (see
    /// [`crate::sysinfo::pin_current_thread`]; the result says whether that worked).
    pub fn new(helper_cpu: Option<usize>) -> Duo {
        Duo::with_pin(helper_cpu).0
    }

    /// As [`Duo::new`], and whether pinning the helper worked.
    pub fn with_pin(helper_cpu: Option<usize>) -> (Duo, Result<(), String>) {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            done: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(None),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let helper = std::thread::Builder::new()
            .name("bench-duo".into())
            .spawn(move || {
                let pinned = helper_cpu.map_or(Ok(()), crate::sysinfo::pin_current_thread);
                let _ = tx.send(pinned);
                helper(&s)
            })
            .expect("spawn the helper thread");
        let pinned = rx
            .recv()
            .unwrap_or_else(|_| Err("helper thread died".into()));
        (
            Duo {
                shared,
                helper: Some(helper),
            },
            pinned,
        )
    }

    /// Run `a` on the calling thread and `b` on the helper, at the same time; return when
    /// both are done (a panic in `b` is re-raised here).
    pub fn run<A: FnOnce(), B: FnOnce() + Send>(&self, a: A, b: B) {
        let cell = Mutex::new(Some(b));
        let job = move || {
            if let Some(b) = cell.lock().unwrap_or_else(|e| e.into_inner()).take() {
                b();
            }
        };
        let dyn_job: &(dyn Fn() + Sync) = &job;
        // SAFETY: erases the lifetime of `job`; the helper only dereferences the pointer
        // for this epoch, and we wait below (even if `a` panics: the guard) until it has
        // finished with it, before `job` goes out of scope.
        let ptr: Job = unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), Job>(dyn_job as *const _)
        };
        let s = &*self.shared;
        let epoch = {
            let mut slot = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(JobPtr(ptr));
            let e = s.epoch.load(Ordering::Relaxed) + 1;
            s.epoch.store(e, Ordering::Release);
            s.wake.notify_one();
            e
        };
        struct Wait<'a>(&'a Shared, u64);
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                // Spin, but yield now and then: if the scheduler put the helper on this
                // thread's CPU, a pure spin would hold it off for a whole time slice.
                let mut spins = 0u32;
                while self.0.done.load(Ordering::Acquire) < self.1 {
                    std::hint::spin_loop();
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(256) {
                        std::thread::yield_now();
                    }
                }
            }
        }
        let guard = Wait(s, epoch);
        a();
        drop(guard);
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("the Duo helper's job panicked");
        }
    }
}

fn helper(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Spin for the next epoch, then sleep on the condvar.
        let t0 = Instant::now();
        let mut spins = 0u32;
        while s.epoch.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(1024) {
                continue;
            }
            // As above: let a thread that shares this CPU run.
            std::thread::yield_now();
            if t0.elapsed() >= SPIN {
                let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                while s.epoch.load(Ordering::Acquire) == seen {
                    g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                break;
            }
        }
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = s.epoch.load(Ordering::Acquire);
        let job = s.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(JobPtr(p)) = job {
            // SAFETY: see Duo::run: the pointee lives until `done` reaches this epoch.
            let f = unsafe { &*p };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                s.panicked.store(true, Ordering::Release);
            }
        }
        s.done.store(seen, Ordering::Release);
    }
}

impl Drop for Duo {
    fn drop(&mut self) {
        let s = &*self.shared;
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.shutdown.store(true, Ordering::Release);
            s.epoch.fetch_add(1, Ordering::AcqRel);
            s.wake.notify_one();
        }
        if let Some(h) = self.helper.take() {
            let _ = h.join();
        }
    }
}
