//! Per-token (per-row) round-to-nearest activation quantization, as QuaRot's `ActQuantizer`
//! (`fake_quant/quant_utils.py`) does it, optionally per group of `group_size` consecutive
//! values of a row, with a clip ratio.
//!
//! For each group g (the whole row when group_size = 0), in f32:
//! - xmin = min(min(g), 0) * clip, xmax = max(max(g), 0) * clip;
//! - symmetric: maxq = 2^(bits-1) - 1, amax = max(-xmin, xmax); scale = amax / maxq, or 1
//!   when amax = 0; zero = 0; code = clamp(round(x / scale), -(maxq + 1), maxq);
//! - asymmetric: maxq = 2^bits - 1; if xmin = xmax = 0 then xmin = -1, xmax = 1;
//!   scale = (xmax - xmin) / maxq; zero = round(-xmin / scale);
//!   code = clamp(round(x / scale) + zero, 0, maxq);
//! - round is round-half-to-even (torch.round); the value represented is
//!   scale * (code - zero).
//!
//! Real quantization stores int8 codes: the symmetric codes as they are, the asymmetric ones
//! shifted by -2^(bits-1) (and the zero point with them), so that for both
//! x ~ scale * (code - zero) with code in [-2^(bits-1), 2^(bits-1) - 1].

use crate::error::{Error, Status};

/// What a handle does between the rotation and the wrapped op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantConfig {
    /// 2..=8.
    pub bits: u32,
    /// Symmetric (zero = 0) or asymmetric (min/max) ranges.
    pub symmetric: bool,
    /// Values per group along the row; 0 = one group per row. Must divide the width.
    pub group_size: usize,
    /// Multiplies the range before the scale is computed; in (0, 1].
    pub clip_ratio: f32,
}

impl QuantConfig {
    /// Check the configuration for rows of width `n`.
    pub fn validate(&self, n: usize) -> Result<(), Error> {
        if !(2..=8).contains(&self.bits) {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("quantization bits = {} (supported: 2..8)", self.bits),
            ));
        }
        if !(self.clip_ratio > 0.0 && self.clip_ratio <= 1.0) {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("clip_ratio = {} is not in (0, 1]", self.clip_ratio),
            ));
        }
        if self.group_size != 0 && (self.group_size > n || !n.is_multiple_of(self.group_size)) {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "group_size = {} does not divide the width {n}",
                    self.group_size
                ),
            ));
        }
        Ok(())
    }

    /// Values per group for rows of width `n`.
    pub fn group(&self, n: usize) -> usize {
        if self.group_size == 0 {
            n
        } else {
            self.group_size
        }
    }

    /// Scale and zero point of one group, and the code range [lo, hi] in the unshifted
    /// form (symmetric: [-(maxq + 1), maxq]; asymmetric: [0, maxq]).
    #[inline]
    fn params(&self, g: &[f32]) -> (f32, f32, f32, f32) {
        let (mut lo, mut hi) = (0.0f32, 0.0f32);
        for &v in g {
            // NaN compares false and is skipped (it quantizes to NaN below).
            if v < lo {
                lo = v;
            }
            if v > hi {
                hi = v;
            }
        }
        let xmin = lo * self.clip_ratio;
        let xmax = hi * self.clip_ratio;
        if self.symmetric {
            let maxq = ((1u32 << (self.bits - 1)) - 1) as f32;
            let amax = (-xmin).max(xmax);
            let scale = if amax == 0.0 { 1.0 } else { amax / maxq };
            (scale, 0.0, -(maxq + 1.0), maxq)
        } else {
            let maxq = ((1u32 << self.bits) - 1) as f32;
            let (xmin, xmax) = if xmin == 0.0 && xmax == 0.0 {
                (-1.0, 1.0)
            } else {
                (xmin, xmax)
            };
            let scale = (xmax - xmin) / maxq;
            let zero = (-xmin / scale).round_ties_even();
            (scale, zero, 0.0, maxq)
        }
    }

    /// Quantize and dequantize `row` in place (fake quantization).
    pub fn fake_quantize(&self, row: &mut [f32]) {
        let gs = self.group(row.len());
        for g in row.chunks_exact_mut(gs) {
            let (scale, zero, lo, hi) = self.params(g);
            for v in g.iter_mut() {
                let q = ((*v / scale).round_ties_even() + zero).clamp(lo, hi);
                *v = scale * (q - zero);
            }
        }
    }

    /// Quantize `row` into int8 `codes` (same length) and one scale and zero point per
    /// group (`scales.len() == zeros.len() == row.len() / group`); see the module docs for
    /// the shifted asymmetric form. A NaN input gives code 0.
    pub fn quantize(&self, row: &[f32], codes: &mut [i8], scales: &mut [f32], zeros: &mut [f32]) {
        let gs = self.group(row.len());
        let shift = if self.symmetric {
            0.0
        } else {
            (1u32 << (self.bits - 1)) as f32
        };
        for (((g, c), s), z) in row
            .chunks_exact(gs)
            .zip(codes.chunks_exact_mut(gs))
            .zip(scales.iter_mut())
            .zip(zeros.iter_mut())
        {
            let (scale, zero, lo, hi) = self.params(g);
            *s = scale;
            *z = zero - shift;
            for (&v, c) in g.iter().zip(c.iter_mut()) {
                let q = ((v / scale).round_ties_even() + zero).clamp(lo, hi) - shift;
                // q is an integer in [-128, 127] (NaN casts to 0).
                *c = q as i8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bits: u32, symmetric: bool, group_size: usize, clip: f32) -> QuantConfig {
        QuantConfig {
            bits,
            symmetric,
            group_size,
            clip_ratio: clip,
        }
    }

    #[test]
    fn formulas_on_a_small_row() {
        // Symmetric 4 bits: amax 7 -> scale 1, codes are the rounded values.
        let mut row = [7.0f32, -3.4, 2.5, 0.49];
        cfg(4, true, 0, 1.0).fake_quantize(&mut row);
        assert_eq!(row, [7.0, -3.0, 2.0, 0.0]); // 2.5 rounds to even
                                                // -8 is the lowest code: -7 stays -7, not clipped.
        let mut row = [-7.0f32, 3.5, 1.0, 0.0];
        cfg(4, true, 0, 1.0).fake_quantize(&mut row);
        assert_eq!(row, [-7.0, 4.0, 1.0, 0.0]);
        // Asymmetric 2 bits on [0, 3]: scale 1, zero 0, codes 0..3.
        let mut row = [0.0f32, 1.4, 2.6, 3.0];
        cfg(2, false, 0, 1.0).fake_quantize(&mut row);
        assert_eq!(row, [0.0, 1.0, 3.0, 3.0]);
        // All zeros: symmetric scale 1, asymmetric range [-1, 1]: zeros stay zeros.
        for sym in [true, false] {
            let mut row = [0.0f32; 8];
            cfg(3, sym, 0, 1.0).fake_quantize(&mut row);
            assert_eq!(row, [0.0; 8]);
        }
        // Clip: 8-bit symmetric with clip 0.5 on [-254, 127]: amax 127 -> scale 1; -254
        // clamps to -128.
        let mut row = [-254.0f32, 127.0, 5.0, 0.0];
        cfg(8, true, 0, 0.5).fake_quantize(&mut row);
        assert_eq!(row, [-128.0, 127.0, 5.0, 0.0]);
    }

    #[test]
    fn real_codes_dequantize_to_the_fake_values() {
        let mut s = 12345u32;
        let row: Vec<f32> = (0..64)
            .map(|i| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let v = (s >> 8) as f32 / (1 << 24) as f32 - 0.3;
                if i == 5 {
                    v * 40.0 // an outlier
                } else {
                    v
                }
            })
            .collect();
        for bits in 2..=8 {
            for sym in [true, false] {
                for gs in [0, 16, 64] {
                    let c = cfg(bits, sym, gs, 0.9);
                    c.validate(64).unwrap();
                    let mut fake = row.clone();
                    c.fake_quantize(&mut fake);
                    let groups = 64 / c.group(64);
                    let mut codes = vec![0i8; 64];
                    let (mut sc, mut zs) = (vec![0f32; groups], vec![0f32; groups]);
                    c.quantize(&row, &mut codes, &mut sc, &mut zs);
                    let half = 1i32 << (bits - 1);
                    for (i, &code) in codes.iter().enumerate() {
                        let g = i / c.group(64);
                        assert!((-half..half).contains(&i32::from(code)), "{bits} {sym}");
                        let back = sc[g] * (f32::from(code) - zs[g]);
                        assert_eq!(back, fake[i], "bits {bits} sym {sym} gs {gs} i {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_configs_are_rejected() {
        for c in [
            cfg(1, true, 0, 1.0),
            cfg(9, true, 0, 1.0),
            cfg(4, true, 0, 0.0),
            cfg(4, true, 0, 1.5),
            cfg(4, true, 0, f32::NAN),
            cfg(4, true, 48, 1.0),
            cfg(4, true, 128, 1.0),
        ] {
            assert_eq!(c.validate(64).unwrap_err().status, Status::InvalidArgument);
        }
    }
}
