//! Edge numerics of the transforms and the quantizer, in every element type, on every
//! instruction set (README "Numerics"): overflow gives a signed infinity (never a wrapped
//! or garbage value), subnormals are kept (no flush to zero), NaN and Inf propagate, and the
//! quantizer's documented behaviour for NaN and Inf.

mod common;

use common::available_isas;
use half::{bf16, f16};
use quarot::hadamard::{hadamard_rows_into_isa, hadamard_rows_isa};
use quarot::online::{quantize_rows, QuantConfig, RealOut};
use quarot::Element;

const N: usize = 64;

/// A row whose only nonzero value is `v` at index 0: y = scale * H x has y[j] = scale * v
/// for every j (first column of H all ones), exactly.
fn impulse<T: Element>(v: T) -> Vec<T> {
    let mut x = vec![T::ZERO; N];
    x[0] = v;
    x
}

#[test]
fn f16_and_bf16_overflow_gives_infinity() {
    for isa in available_isas() {
        // f16: 64 * 65504 overflows; y[0] = sum = +inf, the other outputs are exact zeros.
        let mut h = vec![f16::MAX; N];
        hadamard_rows_isa(isa, &mut h, 1, N, N, 1.0, 0).expect("f16");
        assert_eq!(h[0], f16::INFINITY, "{isa:?}");
        assert!(h[1..].iter().all(|v| v.to_f32() == 0.0), "{isa:?}: {h:?}");
        // Negative: -inf.
        let mut h = vec![f16::MIN; N];
        hadamard_rows_isa(isa, &mut h, 1, N, N, 1.0, 0).expect("f16");
        assert_eq!(h[0], f16::NEG_INFINITY, "{isa:?}");
        // f32 in, f16 out, a value beyond f16's range: +inf, not a wrapped bit pattern.
        let x = impulse(1.0e6f32);
        let mut y = vec![f16::ZERO; N];
        hadamard_rows_into_isa(isa, &x, N, &mut y, N, 1, N, 1.0, 0).expect("f32 -> f16");
        assert!(y.iter().all(|v| *v == f16::INFINITY), "{isa:?}: {y:?}");
        // Just below the rounding threshold stays finite: 65504 * 1 is f16::MAX.
        let x = impulse(65504.0f32);
        hadamard_rows_into_isa(isa, &x, N, &mut y, N, 1, N, 1.0, 0).expect("f32 -> f16");
        assert!(y.iter().all(|v| *v == f16::MAX), "{isa:?}");
        // bf16 and f32: 3e38 + 3e38 overflows f32 itself inside the butterflies: y[0] = +inf;
        // later stages then meet inf - inf = NaN in some outputs, and the rest are exact
        // zeros (x - x); no finite garbage.
        let mut b = vec![bf16::from_f32(3.0e38); N];
        hadamard_rows_isa(isa, &mut b, 1, N, N, 1.0, 0).expect("bf16");
        assert_eq!(b[0], bf16::INFINITY, "{isa:?}");
        assert!(
            b[1..].iter().all(|v| v.to_f32() == 0.0 || v.is_nan()),
            "{isa:?}: {b:?}"
        );
        let mut f = vec![3.0e38f32; N];
        hadamard_rows_isa(isa, &mut f, 1, N, N, 1.0, 0).expect("f32");
        assert_eq!(f[0], f32::INFINITY, "{isa:?}");
        assert!(
            f[1..].iter().all(|v| *v == 0.0 || v.is_nan()),
            "{isa:?}: {f:?}"
        );
        assert!(f.iter().any(|v| v.is_nan()), "{isa:?}");
        // An overflow in the final scaling only: f32::MAX * 2 in every output is +inf.
        let mut f = impulse(f32::MAX);
        hadamard_rows_isa(isa, &mut f, 1, N, N, 2.0, 0).expect("f32");
        assert!(f.iter().all(|v| *v == f32::INFINITY), "{isa:?}: {f:?}");
    }
}

#[test]
fn subnormals_are_kept() {
    for isa in available_isas() {
        // f32: the smallest subnormal and a larger one go through exactly.
        for v in [f32::from_bits(1), 1.0e-40f32] {
            let mut x = impulse(v);
            hadamard_rows_isa(isa, &mut x, 1, N, N, 1.0, 0).expect("f32");
            assert!(
                x.iter().all(|y| y.to_bits() == v.to_bits()),
                "{isa:?} {v:e}: {x:?}"
            );
        }
        // f16 subnormal (2^-24) in and out.
        let v = f16::from_bits(1);
        let mut h = impulse(v);
        hadamard_rows_isa(isa, &mut h, 1, N, N, 1.0, 0).expect("f16");
        assert!(h.iter().all(|y| y.to_bits() == 1), "{isa:?}: {h:?}");
        // bf16 subnormal.
        let v = bf16::from_bits(1);
        let mut b = impulse(v);
        hadamard_rows_isa(isa, &mut b, 1, N, N, 1.0, 0).expect("bf16");
        assert!(b.iter().all(|y| y.to_bits() == 1), "{isa:?}: {b:?}");
        // Normalized scale on a normal value that lands in the subnormal range: 2^-140 / 8.
        let mut x = impulse(2.0f32.powi(-140));
        hadamard_rows_isa(isa, &mut x, 1, N, N, 0.125, 0).expect("f32");
        assert!(x.iter().all(|y| *y == 2.0f32.powi(-143)), "{isa:?}: {x:?}");
    }
}

#[test]
fn nan_and_inf_propagate_in_every_type() {
    for isa in available_isas() {
        // One NaN reaches every output (every H entry is nonzero).
        let mut f = impulse(f32::NAN);
        hadamard_rows_isa(isa, &mut f, 1, N, N, 0.125, 0).expect("f32");
        assert!(f.iter().all(|v| v.is_nan()), "{isa:?}");
        let mut h = impulse(f16::NAN);
        hadamard_rows_isa(isa, &mut h, 1, N, N, 0.125, 0).expect("f16");
        assert!(h.iter().all(|v| v.is_nan()), "{isa:?}");
        let mut b = impulse(bf16::NAN);
        hadamard_rows_isa(isa, &mut b, 1, N, N, 0.125, 0).expect("bf16");
        assert!(b.iter().all(|v| v.is_nan()), "{isa:?}");
        // One +inf: +-inf everywhere, with H's signs (first column all +1: all +inf).
        let mut f = impulse(f32::INFINITY);
        hadamard_rows_isa(isa, &mut f, 1, N, N, 0.125, 0).expect("f32");
        assert!(f.iter().all(|v| *v == f32::INFINITY), "{isa:?}");
        // +inf and -inf in one row: inf - inf = NaN where they meet.
        let mut f = impulse(f32::INFINITY);
        f[1] = f32::NEG_INFINITY;
        hadamard_rows_isa(isa, &mut f, 1, N, N, 1.0, 0).expect("f32");
        assert!(f.iter().all(|v| v.is_nan() || v.is_infinite()), "{isa:?}");
        assert!(f.iter().any(|v| v.is_nan()), "{isa:?}");
    }
}

#[test]
fn quantizer_on_nan_and_inf() {
    let cfg = QuantConfig {
        bits: 4,
        symmetric: true,
        group_size: 0,
        clip_ratio: 1.0,
    };
    // NaN is left out of the range: the other values quantize as without it; the NaN stays
    // NaN (fake) and gets code 0 (real).
    let mut x: Vec<f32> = (0..N).map(|i| i as f32 - 20.0).collect();
    let mut plain = x.clone();
    plain[5] = 0.0;
    x[5] = f32::NAN;
    quantize_rows(&mut plain, 1, N, N, &cfg, None).expect("fake");
    let mut fake = x.clone();
    quantize_rows(&mut fake, 1, N, N, &cfg, None).expect("fake");
    assert!(fake[5].is_nan());
    for i in (0..N).filter(|&i| i != 5) {
        assert_eq!(fake[i].to_bits(), plain[i].to_bits(), "{i}");
    }
    let (mut codes, mut scales, mut zeros) = (vec![0i8; N], vec![0f32; 1], vec![0f32; 1]);
    let real = RealOut {
        codes: &mut codes,
        scales: &mut scales,
        zeros: &mut zeros,
    };
    quantize_rows(&mut x, 1, N, N, &cfg, Some(real)).expect("real");
    assert_eq!(codes[5], 0);
    assert_eq!(scales[0], 43.0 / 7.0);
    // Inf makes the group's scale infinite: the whole group dequantizes to NaN, as QuaRot's
    // torch quantizer does (x / inf = 0, 0 * inf = NaN); documented in the README.
    let mut x: Vec<f32> = (0..N).map(|i| i as f32).collect();
    x[3] = f32::INFINITY;
    quantize_rows(&mut x, 1, N, N, &cfg, None).expect("fake");
    assert!(x.iter().all(|v| v.is_nan()), "{x:?}");
    // 16-bit rows: f16 values near the top of the range stay finite after fake quantization.
    let mut h: Vec<f16> = (0..N)
        .map(|i| f16::from_f32(65504.0 - i as f32 * 512.0))
        .collect();
    quantize_rows(&mut h, 1, N, N, &cfg, None).expect("f16");
    assert!(h.iter().all(|v| v.is_finite()), "{h:?}");
}
