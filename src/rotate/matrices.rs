//! Rotation matrices written into a caller's f64 buffer: Hadamard rotations in each of
//! Quark's layouts, torch-compatible random signs, and seeded random orthogonal matrices.

use super::hadamard64::{rotate_row, HadamardRotation};
use crate::error::{Error, Status};
use crate::hadamard::HadamardPlan;

/// Write R = diag(signs) * M_layout * scale (n x n, row-major) into `out` (n * n values).
/// Row i is e_i * R, computed with the same code as the fast rotation path, so rotating
/// with the formed matrix and with [`super::Rotation::Hadamard`] agree.
///
/// Errors: UnsupportedSize for n = 0 or an n with no Hadamard matrix; InvalidArgument for
/// a scale that is not finite and nonzero, signs that are not +-1 (or fewer than n), or
/// `out` shorter than n * n; SizeOverflow if n * n overflows.
pub fn hadamard_matrix(out: &mut [f64], rot: &HadamardRotation<'_>) -> Result<(), Error> {
    let n = rot.n;
    super::check_hadamard(rot, "n")?;
    let need = n
        .checked_mul(n)
        .ok_or_else(|| Error::new(Status::SizeOverflow, format!("n = {n} squared overflows")))?;
    if out.len() < need {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("out has {} values, n * n = {need}", out.len()),
        ));
    }
    let plan = HadamardPlan::new(n, 0)?;
    let k_table: Vec<f64> = crate::hadamard::k_matrix(plan.k())
        .map_or_else(Vec::new, |m| m.into_iter().map(f64::from).collect());
    let mut tmp = vec![0.0; n];
    for (i, row) in out[..need].chunks_exact_mut(n).enumerate() {
        row.fill(0.0);
        row[i] = 1.0;
        rotate_row(rot, &plan, row, &mut tmp, &k_table);
    }
    Ok(())
}

/// The 32-bit Mersenne Twister (MT19937), as `std::mt19937` and torch's CPU generator.
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// Seeded like `std::mt19937(seed)`; torch's `manual_seed(s)` seeds with the low 32
    /// bits of s the same way.
    pub fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.state[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

/// Random +-1 signs: s_i = 2 * (MT19937(seed)() & 1) - 1, which is what
/// `torch.manual_seed(seed); torch.randint(0, 2, (n,)) * 2 - 1` gives on the CPU, so with the
/// signs Quark's `random_hadamard_matrix(n)` is reproduced exactly. Only the low 32 bits of
/// the seed are used (as torch does). Identical on every platform.
pub fn random_signs(out: &mut [i8], seed: u64) {
    let mut mt = Mt19937::new(seed as u32);
    for s in out.iter_mut() {
        *s = if mt.next_u32() & 1 == 1 { 1 } else { -1 };
    }
}

/// A random orthogonal n x n matrix (row-major) from the QR decomposition of a matrix of
/// standard normal values (Marsaglia's polar method on a SplitMix64 stream from `seed`),
/// with the signs fixed so that R has a positive diagonal: Haar-distributed. O(n^3): about
/// a minute at n = 4096. Deterministic for a seed (the normal values use `ln`, so bits can
/// differ between C libraries).
pub fn random_orthogonal(out: &mut [f64], n: usize, seed: u64) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::new(Status::InvalidArgument, "n = 0"));
    }
    let need = n
        .checked_mul(n)
        .ok_or_else(|| Error::new(Status::SizeOverflow, format!("n = {n} squared overflows")))?;
    if out.len() < need {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("out has {} values, n * n = {need}", out.len()),
        ));
    }
    let mut state = seed;
    let mut uniform = move || {
        // SplitMix64, then 53 bits into (-1, 1).
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut spare: Option<f64> = None;
    let mut normal = move || {
        if let Some(v) = spare.take() {
            return v;
        }
        loop {
            let (u, v) = (uniform(), uniform());
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                spare = Some(v * f);
                return u * f;
            }
        }
    };
    // A (column-major in `a`: column j at a[j*n..]) -> Householder QR; Q accumulated in `out`.
    let mut a: Vec<f64> = (0..need).map(|_| normal()).collect();
    let mut diag_sign = vec![1.0f64; n];
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    for j in 0..n {
        let col = &a[j * n..(j + 1) * n];
        let norm = col[j..].iter().map(|v| v * v).sum::<f64>().sqrt();
        let alpha = if col[j] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = col[j..].to_vec();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        // R[j][j] = alpha; H_j = I - 2 v v^T / (v^T v).
        diag_sign[j] = if alpha < 0.0 { -1.0 } else { 1.0 };
        if vnorm2 > 0.0 {
            for c in j + 1..n {
                let colc = &mut a[c * n + j..(c + 1) * n];
                let d: f64 =
                    v.iter().zip(colc.iter()).map(|(x, y)| x * y).sum::<f64>() * 2.0 / vnorm2;
                for (y, x) in colc.iter_mut().zip(&v) {
                    *y -= d * x;
                }
            }
        }
        vs.push(if vnorm2 > 0.0 {
            v.iter().map(|x| x / vnorm2.sqrt()).collect()
        } else {
            Vec::new()
        });
    }
    // Q = H_0 H_1 ... H_{n-1}: apply to the identity from the right, row by row.
    let q = &mut out[..need];
    for i in 0..n {
        let row = &mut q[i * n..(i + 1) * n];
        row.fill(0.0);
        row[i] = 1.0;
        for (j, v) in vs.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let seg = &mut row[j..];
            let d: f64 = seg.iter().zip(v).map(|(x, y)| x * y).sum::<f64>() * 2.0;
            for (x, y) in seg.iter_mut().zip(v) {
                *x -= d * y;
            }
        }
        // Haar: scale column j of Q by sign(R[j][j]).
        for (x, s) in row.iter_mut().zip(&diag_sign) {
            *x *= s;
        }
    }
    Ok(())
}
