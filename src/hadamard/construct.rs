//! Hadamard matrices of orders QuaRot's table does not have: Paley's two constructions over
//! a finite field GF(q), q a prime power.
//!
//! Everything here is deterministic and specified, so that any implementation following
//! these rules (an engine, a converter, another language) produces the same +-1 matrix:
//!
//! - **Field.** GF(q), q = p^e. Elements are the integers 0..q-1; integer a stands for the
//!   polynomial a_0 + a_1 x + ... + a_{e-1} x^{e-1} with a = a_0 + a_1 p + ... (base-p
//!   digits). Addition and subtraction are digit-wise mod p; multiplication is polynomial
//!   multiplication modulo f(x) = x^e + c_{e-1} x^{e-1} + ... + c_0, the monic irreducible
//!   polynomial of degree e over GF(p) whose code c_0 + c_1 p + ... + c_{e-1} p^{e-1} is the
//!   smallest. For e = 1 this is arithmetic mod p.
//! - **Quadratic character.** chi(0) = 0, chi(a) = 1 if a is a nonzero square, else -1.
//! - **Paley I** (q = 3 mod 4, order K = q + 1). Index 0 is the point at infinity, index
//!   i = 1..q the field element i - 1. H[0][j] = 1 for every j; H[i][0] = -1 for i >= 1;
//!   H[i][i] = 1; H[i][j] = chi((i - 1) - (j - 1)) for i != j >= 1. (H = I + S with S the
//!   skew Paley conference matrix.)
//! - **Paley II** (q = 1 mod 4, order K = 2(q + 1)). C is the symmetric conference matrix
//!   of order q + 1: C[0][0] = 0, C[0][j] = C[j][0] = 1, C[i][j] = chi((i - 1) - (j - 1)) for
//!   i, j >= 1 (so C[i][i] = 0). Each entry c of C becomes the 2 x 2 block
//!   [[1, -1], [-1, -1]] if c = 0, and c * [[1, 1], [1, -1]] otherwise; block (r, s) holds
//!   rows 2r, 2r + 1 and columns 2s, 2s + 1 of H.
//! - **Choice for an order K** (a multiple of 4 not in QuaRot's table): Paley I if K - 1 is
//!   a prime power = 3 mod 4, else Paley II if K / 2 - 1 is a prime power = 1 mod 4, else
//!   no construction.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The largest K built by a construction (a K x K table is K^2 / 8 bytes of bits and
/// 4 K^2 bytes as f32; the mix costs K multiply-adds per element).
pub const MAX_CONSTRUCTED_K: usize = 1024;

/// Which construction gives order `k`, if any (QuaRot's table is not consulted here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Construction {
    /// Paley I over GF(q), q = K - 1.
    PaleyI {
        /// The field's order, a prime power = 3 mod 4.
        q: usize,
    },
    /// Paley II over GF(q), q = K / 2 - 1.
    PaleyII {
        /// The field's order, a prime power = 1 mod 4.
        q: usize,
    },
}

/// The construction used for order `k` (a multiple of 4 and not a power of two, at most
/// [`MAX_CONSTRUCTED_K`]), or `None`. A table lookup after the first call.
pub fn construction(k: usize) -> Option<Construction> {
    if k > MAX_CONSTRUCTED_K {
        return None;
    }
    static ALL: OnceLock<Vec<Option<Construction>>> = OnceLock::new();
    ALL.get_or_init(|| (0..=MAX_CONSTRUCTED_K).map(find_construction).collect())[k]
}

/// The rule of the module docs, for K a multiple of 4 and not a power of two (powers of
/// two are Sylvester's, the K = 1 path).
fn find_construction(k: usize) -> Option<Construction> {
    if k < 4 || !k.is_multiple_of(4) || k.is_power_of_two() {
        return None;
    }
    let q = k - 1;
    if q % 4 == 3 && prime_power(q).is_some() {
        return Some(Construction::PaleyI { q });
    }
    let q = k / 2 - 1;
    if q % 4 == 1 && prime_power(q).is_some() {
        return Some(Construction::PaleyII { q });
    }
    None
}

/// q = p^e with p prime and e >= 1, or `None`.
pub fn prime_power(q: usize) -> Option<(usize, u32)> {
    if q < 2 {
        return None;
    }
    let p = (2..=q)
        .take_while(|d| d * d <= q)
        .find(|d| q.is_multiple_of(*d))
        .unwrap_or(q);
    let mut r = q;
    let mut e = 0;
    while r.is_multiple_of(p) {
        r /= p;
        e += 1;
    }
    (r == 1).then_some((p, e))
}

/// GF(p^e) with the element encoding and modulus described in the module docs.
struct Field {
    p: usize,
    e: usize,
    /// Low coefficients c_0..c_{e-1} of the monic modulus.
    modulus: Vec<usize>,
}

impl Field {
    fn new(p: usize, e: u32) -> Field {
        let e = e as usize;
        let modulus = if e == 1 {
            vec![0]
        } else {
            // The smallest code whose polynomial has no factor of degree 1..=e/2.
            let q = p.pow(e as u32);
            (0..q)
                .map(|code| digits(code, p, e))
                .find(|c| is_irreducible(p, c))
                .expect("an irreducible polynomial of every degree exists")
        };
        Field { p, e, modulus }
    }

    fn sub(&self, a: usize, b: usize) -> usize {
        if self.e == 1 {
            return (a + self.p - b) % self.p;
        }
        let (da, db) = (digits(a, self.p, self.e), digits(b, self.p, self.e));
        let d: Vec<usize> = da
            .iter()
            .zip(&db)
            .map(|(x, y)| (x + self.p - y) % self.p)
            .collect();
        code(&d, self.p)
    }

    fn mul(&self, a: usize, b: usize) -> usize {
        if self.e == 1 {
            return a * b % self.p;
        }
        let prod = poly_mul(
            &digits(a, self.p, self.e),
            &digits(b, self.p, self.e),
            self.p,
        );
        code(&reduce(prod, &self.modulus, self.p), self.p)
    }

    /// chi(a) for every element a, as a table indexed by the element's code.
    fn quadratic_character(&self) -> Vec<i8> {
        let q = self.p.pow(self.e as u32);
        let mut chi = vec![-1i8; q];
        chi[0] = 0;
        for a in 1..q {
            chi[self.mul(a, a)] = 1;
        }
        chi
    }
}

/// Base-p digits of `x`, `e` of them, least significant first.
fn digits(mut x: usize, p: usize, e: usize) -> Vec<usize> {
    (0..e)
        .map(|_| {
            let d = x % p;
            x /= p;
            d
        })
        .collect()
}

fn code(d: &[usize], p: usize) -> usize {
    d.iter().rev().fold(0, |acc, &x| acc * p + x)
}

fn poly_mul(a: &[usize], b: &[usize], p: usize) -> Vec<usize> {
    let mut out = vec![0; a.len() + b.len() - 1];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            out[i + j] = (out[i + j] + x * y) % p;
        }
    }
    out
}

/// `poly` modulo the monic polynomial x^e + low(x) (low = c_0..c_{e-1}); e digits back.
fn reduce(mut poly: Vec<usize>, low: &[usize], p: usize) -> Vec<usize> {
    let e = low.len();
    while poly.len() > e {
        let top = poly.pop().expect("longer than e");
        let shift = poly.len() - e;
        // x^(shift + e) = -x^shift * low(x)
        for (i, &c) in low.iter().enumerate() {
            poly[shift + i] = (poly[shift + i] + (p - c) * top) % p;
        }
    }
    poly.resize(e, 0);
    poly
}

/// Whether the monic x^e + low(x) over GF(p) is irreducible: no monic factor of degree
/// 1..=e/2 divides it (trial division by every monic polynomial of those degrees).
fn is_irreducible(p: usize, low: &[usize]) -> bool {
    let e = low.len();
    let mut f = low.to_vec();
    f.push(1);
    for d in 1..=e / 2 {
        for c in 0..p.pow(d as u32) {
            let mut g = digits(c, p, d);
            g.push(1);
            if poly_rem(&f, &g, p).iter().all(|&x| x == 0) {
                return false;
            }
        }
    }
    true
}

/// Remainder of f by the monic g over GF(p).
fn poly_rem(f: &[usize], g: &[usize], p: usize) -> Vec<usize> {
    let mut r = f.to_vec();
    let dg = g.len() - 1;
    while r.len() > dg {
        let top = r.pop().expect("longer than deg g");
        let shift = r.len() - dg;
        for i in 0..dg {
            r[shift + i] = (r[shift + i] + (p - g[i]) * top) % p;
        }
    }
    r
}

/// Build the K x K matrix of `c` as +-1, row-major.
fn build(c: Construction) -> Vec<i8> {
    match c {
        Construction::PaleyI { q } => {
            let (p, e) = prime_power(q).expect("checked by construction()");
            let f = Field::new(p, e);
            let chi = f.quadratic_character();
            let k = q + 1;
            let mut h = vec![0i8; k * k];
            for i in 0..k {
                for j in 0..k {
                    h[i * k + j] = match (i, j) {
                        (0, _) => 1,
                        (_, 0) => -1,
                        _ if i == j => 1,
                        _ => chi[f.sub(i - 1, j - 1)],
                    };
                }
            }
            h
        }
        Construction::PaleyII { q } => {
            let (p, e) = prime_power(q).expect("checked by construction()");
            let f = Field::new(p, e);
            let chi = f.quadratic_character();
            let c_order = q + 1;
            let conf = |r: usize, s: usize| -> i8 {
                match (r, s) {
                    (0, 0) => 0,
                    (0, _) | (_, 0) => 1,
                    _ => chi[f.sub(r - 1, s - 1)],
                }
            };
            let k = 2 * c_order;
            let mut h = vec![0i8; k * k];
            for r in 0..c_order {
                for s in 0..c_order {
                    let c = conf(r, s);
                    let block: [[i8; 2]; 2] = if c == 0 {
                        [[1, -1], [-1, -1]]
                    } else {
                        [[c, c], [c, -c]]
                    };
                    for (a, row) in block.iter().enumerate() {
                        for (b, &v) in row.iter().enumerate() {
                            h[(2 * r + a) * k + 2 * s + b] = v;
                        }
                    }
                }
            }
            h
        }
    }
}

/// The constructed H_K as bit words in the layout of the built-in tables (row-major,
/// ceil(K / 64) u64 per row, bit c % 64 of word c / 64 set for -1), built on first use and
/// kept for the life of the process; `None` if no construction gives order `k`.
pub(crate) fn constructed_words(k: usize) -> Option<&'static [u64]> {
    let c = construction(k)?;
    static CACHE: OnceLock<Mutex<HashMap<usize, &'static [u64]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means a panic while inserting a finished entry: still valid.
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(w) = map.get(&k) {
        return Some(w);
    }
    let h = build(c);
    let wpr = k.div_ceil(64);
    let mut words = vec![0u64; k * wpr];
    for i in 0..k {
        for j in 0..k {
            if h[i * k + j] < 0 {
                words[i * wpr + j / 64] |= 1 << (j % 64);
            }
        }
    }
    let words: &'static [u64] = Box::leak(words.into_boxed_slice());
    map.insert(k, words);
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_powers() {
        let pp: Vec<usize> = (0..50).filter(|&q| prime_power(q).is_some()).collect();
        assert_eq!(
            pp,
            [2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17, 19, 23, 25, 27, 29, 31, 32, 37, 41, 43, 47, 49]
        );
        assert_eq!(prime_power(49), Some((7, 2)));
        assert_eq!(prime_power(243), Some((3, 5)));
        assert_eq!(prime_power(1), None);
        assert_eq!(prime_power(12), None);
    }

    #[test]
    fn field_is_a_field() {
        // Every nonzero element has an inverse and multiplication distributes, in GF(9),
        // GF(25), GF(27), GF(49), GF(121), GF(243).
        for (p, e) in [(3, 2), (5, 2), (3, 3), (7, 2), (11, 2), (3, 5)] {
            let f = Field::new(p, e);
            let q = p.pow(e);
            for a in 1..q {
                assert!(
                    (1..q).any(|b| f.mul(a, b) == 1),
                    "GF({q}): {a} has no inverse"
                );
            }
            for a in (0..q).step_by(q / 7 + 1) {
                for b in (0..q).step_by(q / 5 + 1) {
                    for c in 0..q {
                        let add = |x: usize, y: usize| f.sub(x, f.sub(0, y));
                        assert_eq!(f.mul(a, add(b, c)), add(f.mul(a, b), f.mul(a, c)));
                    }
                }
            }
            // Exactly (q - 1) / 2 nonzero squares.
            let chi = f.quadratic_character();
            assert_eq!(chi.iter().filter(|&&c| c == 1).count(), (q - 1) / 2);
        }
    }

    #[test]
    fn smallest_irreducible_moduli() {
        // GF(4): x^2 + x + 1 (code 1 + 1 * 2 = 3); GF(9): x^2 + 1 (code 1); GF(49): x^2 + 1
        // is reducible mod 7? -1 is not a square mod 7 (7 = 3 mod 4), so x^2 + 1 (code 1).
        assert_eq!(Field::new(2, 2).modulus, [1, 1]);
        assert_eq!(Field::new(3, 2).modulus, [1, 0]);
        assert_eq!(Field::new(7, 2).modulus, [1, 0]);
        // GF(25): -1 is a square mod 5, x^2 + 1 reducible; x^2 + 2 (2 is not a square).
        assert_eq!(Field::new(5, 2).modulus, [2, 0]);
    }
}
