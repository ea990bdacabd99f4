//! Every instruction-set path against the scalar reference, bit for bit, on every
//! supported K and every n = K * 2^m up to 2^16, plus strided rows with sentinels.

mod common;

use common::{rng_row, sentinel_f32};
use half::{bf16, f16};
use quarot::hadamard::reference::hadamard_row_reference;
use quarot::hadamard::{hadamard_rows_into_isa, hadamard_rows_isa, K_ORDER};
use quarot::{normalized_scale, HadamardPlan, Isa, FLAG_PAD_TRUNCATE, FLAG_TRANSPOSE_K};

fn all_widths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=16).map(|e| 1usize << e).collect();
    // QuaRot's K, then some constructed (Paley) K: small, GF(49), large.
    for k in K_ORDER.into_iter().chain([68, 76, 100, 684]) {
        let mut n = k;
        while n <= 1 << 16 {
            v.push(n);
            n *= 2;
        }
    }
    v.sort();
    v.dedup();
    v
}

fn available_isas() -> Vec<Isa> {
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    common::require_isas_from_env(&isas);
    isas
}

#[test]
fn f32_every_width_every_isa_bit_exact_with_reference() {
    let isas = available_isas();
    for n in all_widths() {
        for flags in [0, FLAG_TRANSPOSE_K] {
            let plan = HadamardPlan::new(n, flags).unwrap();
            // Odd row counts: the K mix of m = LANES pairs rows and leaves one.
            let rows = if n <= 256 { 5 } else { 3 };
            let stride = n + 3;
            let scale = normalized_scale(n);
            let mut input = vec![sentinel_f32(); rows * stride];
            for r in 0..rows {
                input[r * stride..r * stride + n].copy_from_slice(&rng_row(n, (n * 7 + r) as u64));
            }
            let mut expect = input.clone();
            for r in 0..rows {
                hadamard_row_reference(&plan, &mut expect[r * stride..r * stride + n], scale);
            }
            for &isa in &isas {
                let mut got = input.clone();
                hadamard_rows_isa(isa, &mut got, rows, n, stride, scale, flags).unwrap();
                for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        e.to_bits(),
                        "n = {n} flags = {flags} isa = {isa:?} index {i}: {g} vs {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn sixteen_bit_types_every_isa_match_reference_rounded_once() {
    let isas = available_isas();
    for n in all_widths().into_iter().filter(|&n| n <= 1 << 14) {
        let plan = HadamardPlan::new(n, 0).unwrap();
        let rows = 3;
        let scale = normalized_scale(n);
        let x: Vec<f32> = (0..rows).flat_map(|r| rng_row(n, (n + r) as u64)).collect();
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let reference = |widened: Vec<f32>| {
            let mut y = widened;
            for r in 0..rows {
                hadamard_row_reference(&plan, &mut y[r * n..(r + 1) * n], scale);
            }
            y
        };
        let yh = reference(xh.iter().map(|v| v.to_f32()).collect());
        let yb = reference(xb.iter().map(|v| v.to_f32()).collect());
        for &isa in &isas {
            let mut gh = xh.clone();
            hadamard_rows_isa(isa, &mut gh, rows, n, n, scale, 0).unwrap();
            let mut gb = xb.clone();
            hadamard_rows_isa(isa, &mut gb, rows, n, n, scale, 0).unwrap();
            let mut g32 = vec![0.0f32; rows * n];
            hadamard_rows_into_isa(isa, &xh, n, &mut g32, n, rows, n, scale, 0).unwrap();
            let mut gb_from_h = vec![bf16::ZERO; rows * n];
            hadamard_rows_into_isa(isa, &xh, n, &mut gb_from_h, n, rows, n, scale, 0).unwrap();
            for i in 0..rows * n {
                assert_eq!(
                    gh[i].to_bits(),
                    f16::from_f32(yh[i]).to_bits(),
                    "f16 n={n} {isa:?} i={i}"
                );
                assert_eq!(
                    gb[i].to_bits(),
                    bf16::from_f32(yb[i]).to_bits(),
                    "bf16 n={n} {isa:?} i={i}"
                );
                assert_eq!(
                    g32[i].to_bits(),
                    yh[i].to_bits(),
                    "f16->f32 n={n} {isa:?} i={i}"
                );
                assert_eq!(
                    gb_from_h[i].to_bits(),
                    bf16::from_f32(yh[i]).to_bits(),
                    "f16->bf16 n={n} {isa:?}"
                );
            }
        }
    }
}

#[test]
fn pad_truncate_every_isa_bit_exact_with_reference() {
    let isas = available_isas();
    for n in (1..=300).chain([1000, 4095, 4097, 11008]) {
        let plan = HadamardPlan::new(n, FLAG_PAD_TRUNCATE).unwrap();
        let rows = 2;
        let scale = normalized_scale(n);
        let x: Vec<f32> = (0..rows)
            .flat_map(|r| rng_row(n, (n + 100 * r) as u64))
            .collect();
        let mut expect = x.clone();
        for r in 0..rows {
            hadamard_row_reference(&plan, &mut expect[r * n..(r + 1) * n], scale);
        }
        for &isa in &isas {
            let mut got = x.clone();
            hadamard_rows_isa(isa, &mut got, rows, n, n, scale, FLAG_PAD_TRUNCATE).unwrap();
            for i in 0..rows * n {
                assert_eq!(
                    got[i].to_bits(),
                    expect[i].to_bits(),
                    "pad n={n} {isa:?} i={i}"
                );
            }
        }
    }
}
