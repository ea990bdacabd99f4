//! Helpers shared by the integration tests.
#![allow(dead_code)]

use quarot::Isa;

/// A deterministic pseudo-random row: N(0,1)-ish values with a few large outliers.
pub fn rng_row(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let u: f64 = (0..4).map(|_| next()).sum::<f64>() - 2.0;
            let v = u * 1.7;
            (if i % 61 == 7 { v * 100.0 } else { v }) as f32
        })
        .collect()
}

/// A value no transform produces from our inputs, for the gaps between rows.
pub fn sentinel_f32() -> f32 {
    f32::from_bits(0x7fc0_1234)
}

/// `QUAROT_TEST_REQUIRE_ISA=avx512,avx2` makes the tests fail unless those instruction
/// sets are detected, so CI cannot silently test only the fallback.
pub fn require_isas_from_env(available: &[Isa]) {
    if let Ok(list) = std::env::var("QUAROT_TEST_REQUIRE_ISA") {
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let isa = Isa::ALL
                .into_iter()
                .find(|i| i.name() == name)
                .unwrap_or_else(|| panic!("QUAROT_TEST_REQUIRE_ISA names unknown set {name:?}"));
            assert!(
                available.contains(&isa),
                "QUAROT_TEST_REQUIRE_ISA requires {name}, which is not available here"
            );
        }
    }
}
