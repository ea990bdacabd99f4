//! The f64 Walsh-Hadamard transform of the weight rotations' Hadamard path, vectorized per
//! instruction set: the first pass does the stages inside a vector and three more across
//! eight vectors while they sit in registers, later passes do three stages each (radix 8),
//! so a 4096-wide row takes three passes over L1 instead of twelve.
//!
//! Every output is a sum of the inputs with signs, in f64; different paths may add in a
//! different order (results then differ by f64 rounding only, far below the one rounding
//! to the weight type that follows).

/// A vector of f64 lanes and the operations the transform needs.
///
/// # Safety
/// Implementations may only be used where their instruction set is available; pointers
/// must be valid for `LANES` values.
pub(crate) trait F64Lanes: Copy {
    const LANES: usize;
    const LOG2_LANES: u32;
    type V: Copy;
    unsafe fn load(p: *const f64) -> Self::V;
    unsafe fn store(p: *mut f64, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// The radix-2 stage between lanes i and i + 2^stage (stage < LOG2_LANES): the lower
    /// lane gets a + b, the upper a - b.
    unsafe fn stage_in_vector(v: Self::V, stage: u32) -> Self::V;
}

/// One f64 at a time (any CPU).
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl F64Lanes for Scalar {
    const LANES: usize = 1;
    const LOG2_LANES: u32 = 0;
    type V = f64;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> f64 {
        // SAFETY: the caller's contract.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: f64) {
        // SAFETY: the caller's contract.
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f64, b: f64) -> f64 {
        a - b
    }
    #[inline(always)]
    unsafe fn stage_in_vector(v: f64, _stage: u32) -> f64 {
        v // LOG2_LANES = 0: never called
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::F64Lanes;
    use core::arch::x86_64::*;

    /// 8 lanes (AVX-512F).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;
    /// 4 lanes (AVX).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// +1 in the lanes that receive a + b, -1 where a - b, per in-vector stage.
    static SIGNS8: [[f64; 8]; 3] = {
        let mut t = [[0.0f64; 8]; 3];
        let mut s = 0;
        while s < 3 {
            let mut i = 0;
            while i < 8 {
                t[s][i] = if i & (1 << s) == 0 { 1.0 } else { -1.0 };
                i += 1;
            }
            s += 1;
        }
        t
    };

    impl F64Lanes for Avx512 {
        const LANES: usize = 8;
        const LOG2_LANES: u32 = 3;
        type V = __m512d;
        #[inline(always)]
        unsafe fn load(p: *const f64) -> __m512d {
            unsafe { _mm512_loadu_pd(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f64, v: __m512d) {
            unsafe { _mm512_storeu_pd(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
            unsafe { _mm512_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512d, b: __m512d) -> __m512d {
            unsafe { _mm512_sub_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn stage_in_vector(v: __m512d, stage: u32) -> __m512d {
            unsafe {
                let partner = match stage {
                    0 => _mm512_permute_pd::<0x55>(v),
                    1 => _mm512_permutex_pd::<0x4E>(v),
                    _ => _mm512_shuffle_f64x2::<0x4E>(v, v),
                };
                let sign = _mm512_loadu_pd(SIGNS8[stage as usize].as_ptr());
                // lower lane: v + partner = a + b; upper lane: partner - v = a - b (exact
                // product by +-1, one rounding).
                _mm512_fmadd_pd(v, sign, partner)
            }
        }
    }

    impl F64Lanes for Avx2 {
        const LANES: usize = 4;
        const LOG2_LANES: u32 = 2;
        type V = __m256d;
        #[inline(always)]
        unsafe fn load(p: *const f64) -> __m256d {
            unsafe { _mm256_loadu_pd(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f64, v: __m256d) {
            unsafe { _mm256_storeu_pd(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_sub_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn stage_in_vector(v: __m256d, stage: u32) -> __m256d {
            unsafe {
                let partner = match stage {
                    0 => _mm256_permute_pd::<0x5>(v),
                    _ => _mm256_permute2f128_pd::<0x01>(v, v),
                };
                let sign = _mm256_loadu_pd(SIGNS8[stage as usize].as_ptr());
                _mm256_fmadd_pd(v, sign, partner)
            }
        }
    }
}

/// Radix-2 butterflies between v[i] and v[i + d] for d = 1, 2, 4: the three stages whose
/// partners are 1, 2 and 4 vectors apart.
#[inline(always)]
unsafe fn butterflies8<V: F64Lanes>(v: &mut [V::V; 8]) {
    for d in [1, 2, 4] {
        for i in 0..8 {
            if i & d == 0 {
                let (a, b) = (v[i], v[i + d]);
                // SAFETY: arithmetic only; the caller's instruction set.
                unsafe {
                    v[i] = V::add(a, b);
                    v[i + d] = V::sub(a, b);
                }
            }
        }
    }
}

/// Unnormalized Walsh-Hadamard transform (Sylvester order) of `x`, whose length is a power
/// of two, in place.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn fwht<V: F64Lanes>(x: &mut [f64]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let l = V::LANES;
    if n < 8 * l {
        fwht_scalar(x);
        return;
    }
    let p = x.as_mut_ptr();
    // SAFETY (all accesses below): indices stay below n: groups of 8 vectors start at
    // multiples of 8 * l <= n, and radix passes touch block + j + t * h < block + 8 * h.
    unsafe {
        // Pass 1: the stages inside a vector, then three across eight adjacent vectors.
        let mut g = 0;
        while g < n {
            let mut v = [V::load(p.add(g)); 8];
            for (t, v) in v.iter_mut().enumerate().skip(1) {
                *v = V::load(p.add(g + t * l));
            }
            for s in 0..V::LOG2_LANES {
                for v in v.iter_mut() {
                    *v = V::stage_in_vector(*v, s);
                }
            }
            butterflies8::<V>(&mut v);
            for (t, v) in v.iter().enumerate() {
                V::store(p.add(g + t * l), *v);
            }
            g += 8 * l;
        }
        // Then radix 8 (three stages per pass) while at least three stages remain, and a
        // last radix-2 or radix-4 pass for the rest.
        let mut h = 8 * l;
        while h < n {
            let left = (n / h).trailing_zeros();
            if left >= 3 {
                let mut block = 0;
                while block < n {
                    let mut j = 0;
                    while j < h {
                        let q = p.add(block + j);
                        let mut v = [V::load(q); 8];
                        for (t, v) in v.iter_mut().enumerate().skip(1) {
                            *v = V::load(q.add(t * h));
                        }
                        butterflies8::<V>(&mut v);
                        for (t, v) in v.iter().enumerate() {
                            V::store(q.add(t * h), *v);
                        }
                        j += l;
                    }
                    block += 8 * h;
                }
                h *= 8;
            } else {
                let stages = left; // 1 or 2
                let span = h << stages;
                let mut block = 0;
                while block < n {
                    let mut j = 0;
                    while j < h {
                        let q = p.add(block + j);
                        if stages == 2 {
                            let (a, b, c, d) = (
                                V::load(q),
                                V::load(q.add(h)),
                                V::load(q.add(2 * h)),
                                V::load(q.add(3 * h)),
                            );
                            let (a, b, c, d) =
                                (V::add(a, b), V::sub(a, b), V::add(c, d), V::sub(c, d));
                            V::store(q, V::add(a, c));
                            V::store(q.add(h), V::add(b, d));
                            V::store(q.add(2 * h), V::sub(a, c));
                            V::store(q.add(3 * h), V::sub(b, d));
                        } else {
                            let (a, b) = (V::load(q), V::load(q.add(h)));
                            V::store(q, V::add(a, b));
                            V::store(q.add(h), V::sub(a, b));
                        }
                        j += l;
                    }
                    block += span;
                }
                h = span;
            }
        }
    }
}

/// The plain radix-2 transform, for rows shorter than eight vectors.
#[inline(always)]
pub(crate) fn fwht_scalar(x: &mut [f64]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (a, b) in a.iter_mut().zip(b.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Isa;

    /// The transform of each instruction set the CPU has, on `x`.
    fn run(isa: Isa, x: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512(x: &mut [f64]) {
            unsafe { fwht::<Avx512>(x) }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(x: &mut [f64]) {
            unsafe { fwht::<Avx2>(x) }
        }
        assert!(isa.is_available());
        // SAFETY: the instruction set is available.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => avx512(x),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => avx2(x),
                _ => fwht::<Scalar>(x),
            }
        }
    }

    /// Integer inputs make every sum exact, so each path must equal the plain radix-2
    /// transform bit for bit (and the definition, sum_j (-1)^popcount(i & j) x_j, for
    /// small n).
    #[test]
    fn every_path_equals_the_radix2_transform() {
        let mut s = 0x1234_5678_9abc_def1u64;
        for log in 0..=14 {
            let n = 1usize << log;
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2001) as f64 - 1000.0
                })
                .collect();
            let mut want = x.clone();
            fwht_scalar(&mut want);
            if n <= 64 {
                for (i, w) in want.iter().enumerate() {
                    let d: f64 = (0..n)
                        .map(|j| {
                            if (i & j).count_ones() % 2 == 0 {
                                x[j]
                            } else {
                                -x[j]
                            }
                        })
                        .sum();
                    assert_eq!(*w, d, "definition, n {n} i {i}");
                }
            }
            for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
                let mut got = x.clone();
                run(isa, &mut got);
                assert_eq!(got, want, "{isa:?} n {n}");
            }
        }
    }
}
