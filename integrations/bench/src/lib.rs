//! quarot-bench: libquarot's Hadamard transforms side by side with the CPU peers that can
//! be had on this machine, in one run (the bench is `benches/peers.rs`).
//!
//! This library holds what the bench and its test share:
//! - [`ffht`]: FFHT's C (`fht_float`), built by `build.rs` from the pinned FFHT-unofficial
//!   0.3 sdist when it can be had;
//! - [`fht_cpu`]: the PyPI package `fht-cpu`, driven through a persistent `python3 -c`
//!   child (as `benches/rotate.rs` drives numpy);
//! - [`reference`]: the f64 definition `(H_K ⊗ H_{2^m}) x / sqrt(n)` every result is checked
//!   against, and the tolerance;
//! - [`stream`]: the streaming bound, read-modify-write (or read-convert-write) loops over
//!   the very bytes a transform reads and writes;
//! - [`sysinfo`]: CPU model, caches, load, other processes' CPU share (/proc/stat);
//! - [`duo`]: the calling thread plus one helper that spins briefly between jobs, for the
//!   2-thread streaming bound and the peers' 2-thread row split;
//! - [`Buf`], [`fill`], [`Stats`]: aligned buffers, deterministic data, medians.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod duo;
pub mod ffht;
pub mod fht_cpu;
pub mod reference;
pub mod stream;
pub mod sysinfo;

use quarot::Element;

/// A 64-byte-aligned slice of `len` elements inside an over-allocated Vec.
pub struct Buf<T> {
    v: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Element> Buf<T> {
    /// `len` zeros, 64-byte aligned.
    pub fn new(len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let v = vec![T::ZERO; len + 64 / size];
        let off = (64 - v.as_ptr() as usize % 64) % 64 / size;
        Buf { v, off, len }
    }
}

impl<T> Buf<T> {
    /// The aligned elements.
    pub fn s(&self) -> &[T] {
        &self.v[self.off..self.off + self.len]
    }
    /// The aligned elements, mutable.
    pub fn m(&mut self) -> &mut [T] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// The generator behind [`values`] and [`fill`]: deterministic, roughly Gaussian values
/// (sum of 4 uniforms), sigma = 16 (as `benches/hadamard.rs`).
struct Gauss(u64);

impl Gauss {
    fn new(seed: u64) -> Gauss {
        Gauss(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn uniform(&mut self) -> f32 {
        let s = &mut self.0;
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn next(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() + self.uniform()) * 3f32.sqrt() * 16.0
    }
}

/// Deterministic, roughly Gaussian values, sigma = 16: normal in f32, f16 and bf16 for all
/// but a handful of values, far from overflow after a normalized transform.
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut g = Gauss::new(seed);
    (0..len).map(|_| g.next()).collect()
}

/// Fill `rows` rows of `n` elements, `stride` apart, with the values [`values`] gives for
/// `rows * n` (written in place, no temporary); the gaps stay as they are.
pub fn fill<T: Element>(x: &mut [T], rows: usize, n: usize, stride: usize, seed: u64) {
    let mut g = Gauss::new(seed);
    for r in 0..rows {
        for d in &mut x[r * stride..][..n] {
            *d = T::from_f32(g.next());
        }
    }
}

/// Reusable, 64-byte-aligned memory for the bench's buffers: fresh memory costs a page
/// fault per 4 KiB page on first touch (about 1.4 s per 256 MiB on this VM), which a run
/// of many large cases would otherwise pay again and again. The contents are whatever the
/// previous user left (every element type here is valid for any bit pattern).
#[derive(Default)]
pub struct Arena(Vec<u64>);

impl Arena {
    /// `len` elements of `T`, 64-byte aligned (growing the arena if needed).
    pub fn slice<T: Element>(&mut self, len: usize) -> &mut [T] {
        let bytes = len * std::mem::size_of::<T>();
        let words = bytes.div_ceil(8) + 8;
        if self.0.len() < words {
            self.0 = Vec::new();
            self.0.resize(words, 0);
        }
        let p = self.0.as_mut_ptr().cast::<u8>();
        let off = (64 - p as usize % 64) % 64;
        // SAFETY: off + bytes <= 8 * words bytes are inside the Vec; the alignment of the
        // result is 64 >= align_of::<T>(); f32, f16 and bf16 are valid for any bits.
        unsafe { std::slice::from_raw_parts_mut(p.add(off).cast::<T>(), len) }
    }
}

/// (non-finite count, subnormal count) of the rows, in the element's own format.
pub fn scan<T: Element>(x: &[T], rows: usize, n: usize, stride: usize) -> (usize, usize) {
    let (mut bad, mut sub) = (0usize, 0usize);
    for r in 0..rows {
        for &v in &x[r * stride..][..n] {
            let f = v.to_f32();
            if !f.is_finite() {
                bad += 1;
                continue;
            }
            let subnormal = match T::DTYPE {
                quarot::DType::F16 => {
                    let h = half::f16::from_f32(f);
                    h != half::f16::ZERO && !h.is_normal()
                }
                // bf16 widens exactly to an f32 of the same class.
                _ => f.is_subnormal(),
            };
            sub += usize::from(subnormal);
        }
    }
    (bad, sub)
}

/// `x` viewed as f32 (panics unless `T` is f32).
pub fn as_f32<T: Element>(x: &[T]) -> &[f32] {
    assert!(T::DTYPE == quarot::DType::F32, "not f32 data");
    // SAFETY: T is f32.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// `x` viewed as f32, mutable (panics unless `T` is f32).
pub fn as_f32_mut<T: Element>(x: &mut [T]) -> &mut [f32] {
    assert!(T::DTYPE == quarot::DType::F32, "not f32 data");
    // SAFETY: T is f32.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// 16-bit elements viewed as their bit patterns (panics for f32).
pub fn as_bits<T: Element>(x: &[T]) -> &[u16] {
    assert!(T::DTYPE != quarot::DType::F32, "not 16-bit data");
    // SAFETY: half::f16 and half::bf16 are #[repr(transparent)] over u16.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// 16-bit elements viewed as their bit patterns, mutable (panics for f32).
pub fn as_bits_mut<T: Element>(x: &mut [T]) -> &mut [u16] {
    assert!(T::DTYPE != quarot::DType::F32, "not 16-bit data");
    // SAFETY: as in as_bits.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// Row `r` (`n` elements at `r * stride`) widened exactly to f64.
pub fn row_f64<T: Element>(x: &[T], r: usize, n: usize, stride: usize) -> Vec<f64> {
    x[r * stride..][..n]
        .iter()
        .map(|v| f64::from(v.to_f32()))
        .collect()
}

/// Median and minimum of a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Median (mean of the two middle values for an even count).
    pub med: f64,
    /// Minimum.
    pub min: f64,
    /// Sample size.
    pub n: usize,
}

impl Stats {
    /// Statistics of `v` (all zero if empty).
    pub fn of(v: &[f64]) -> Stats {
        if v.is_empty() {
            return Stats::default();
        }
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let h = v.len() / 2;
        Stats {
            med: if v.len() % 2 == 1 {
                v[h]
            } else {
                (v[h - 1] + v[h]) / 2.0
            },
            min: v[0],
            n: v.len(),
        }
    }
}
