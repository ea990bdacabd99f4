//! Large scratch buffers, kept between calls.
//!
//! A dense rotation needs about r * r * 8 bytes for the packed rotation matrix (128 MiB at
//! r = 4096 in f64 mode) and a few MiB of row panels per thread. Freshly mapped memory costs
//! one page fault per 4 KiB on first touch, which measured about 1.4 us each here: 47 ms for
//! 128 MiB, more than packing the matrix into it. So, as OpenBLAS keeps its buffer pool and
//! MKL its buffers (until `mkl_free_buffers`), buffers of at least [`POOL_MIN`] bytes go back
//! to a process-wide pool when dropped and are handed out again by [`Buf::take`]; [`release`]
//! (`quarot_release_scratch` in C) frees them. At most [`POOL_MAX`] buffers are kept (the
//! oldest returned is freed first).
//!
//! A buffer's contents are unspecified when taken (zeros when new, old values when reused),
//! but always initialized bytes.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Buffers smaller than this are freed, not kept.
pub const POOL_MIN: usize = 1 << 20;
/// At most this many buffers are kept.
pub const POOL_MAX: usize = 8;
/// Alignment of every buffer (a cache line; also what AVX-512 loads like).
pub const ALIGN: usize = 64;

/// An owned, 64-byte-aligned block of `bytes` bytes.
pub struct Buf {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: an owned block of plain bytes, like Vec<u8>.
unsafe impl Send for Buf {}
// SAFETY: shared references only read.
unsafe impl Sync for Buf {}

struct Pool(Vec<Buf>);

static POOL: Mutex<Pool> = Mutex::new(Pool(Vec::new()));

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // The pool holds no invariant a panic could break.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

impl Buf {
    /// An empty buffer (no allocation).
    pub const fn empty() -> Buf {
        Buf {
            ptr: NonNull::<[u8; ALIGN]>::dangling().cast(),
            bytes: 0,
        }
    }

    /// A buffer of at least `bytes` bytes: the smallest pooled one that is big enough, else
    /// a new zeroed one. `None` when the allocation fails (never an abort).
    pub fn take(bytes: usize) -> Option<Buf> {
        if bytes == 0 {
            return Some(Buf::empty());
        }
        if bytes >= POOL_MIN {
            let mut p = pool();
            let best =
                p.0.iter()
                    .enumerate()
                    .filter(|(_, b)| b.bytes >= bytes)
                    .min_by_key(|(_, b)| b.bytes)
                    .map(|(i, _)| i);
            if let Some(i) = best {
                return Some(p.0.remove(i));
            }
        }
        let layout = Layout::from_size_align(bytes, ALIGN).ok()?;
        // SAFETY: nonzero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(raw).map(|ptr| Buf { ptr, bytes })
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The start (64-byte aligned; dangling when empty).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The start, for writing.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        if self.bytes >= POOL_MIN {
            let me = std::mem::replace(self, Buf::empty());
            let evicted = {
                let mut p = pool();
                p.0.push(me);
                if p.0.len() > POOL_MAX {
                    Some(p.0.remove(0))
                } else {
                    None
                }
            };
            if let Some(mut old) = evicted {
                old.free();
            }
            return;
        }
        self.free();
    }
}

impl Buf {
    fn free(&mut self) {
        if self.bytes > 0 {
            let layout = Layout::from_size_align(self.bytes, ALIGN).expect("valid at allocation");
            // SAFETY: allocated by `take` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
            self.bytes = 0;
        }
    }
}

/// Free every pooled buffer; returns the bytes freed.
pub fn release() -> usize {
    let all = std::mem::take(&mut pool().0);
    let mut freed = 0;
    for mut b in all {
        freed += b.bytes;
        b.free();
    }
    freed
}

/// Bytes currently kept in the pool.
pub fn retained() -> usize {
    pool().0.iter().map(|b| b.bytes).sum()
}
