//! The embedded H_K tables against the reference files (Quark's `_get_hadamard_K()` matrices
//! and SpinQuant's `get_had44()`), bit for bit, plus the Hadamard property H H^T = K I.

mod common;

use common::{k_matrix_file, read_reference_i8, reference_dir, TABLE_KS};
use quarot::hadamard::k_matrix;

#[test]
fn embedded_tables_equal_reference_files_bit_for_bit() {
    let mut checked = 0;
    for k in TABLE_KS {
        let file = k_matrix_file(k);
        let want = read_reference_i8(&file);
        assert_eq!(want.len(), k * k, "{file} should hold {k}x{k} bytes");
        let got = k_matrix(k).unwrap_or_else(|| panic!("k_matrix({k}) is None"));
        assert_eq!(got.len(), k * k, "k_matrix({k}) length");
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "K = {k}: entry ({}, {}) is {g} in the library, {w} in {file}",
                t / k,
                t % k
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn tables_are_hadamard_matrices() {
    for k in TABLE_KS {
        let h = k_matrix(k).unwrap();
        assert!(
            h.iter().all(|&v| v == 1 || v == -1),
            "K = {k}: entries must be +-1"
        );
        for i in 0..k {
            for j in 0..k {
                let dot: i32 = (0..k)
                    .map(|c| h[i * k + c] as i32 * h[j * k + c] as i32)
                    .sum();
                let want = if i == j { k as i32 } else { 0 };
                assert_eq!(
                    dot, want,
                    "K = {k}: (H H^T)[{i}][{j}] = {dot}, expected {want}"
                );
            }
        }
        // Also H^T H = K I (columns orthogonal), which the transposed flag relies on.
        for i in 0..k {
            for j in 0..k {
                let dot: i32 = (0..k)
                    .map(|c| h[c * k + i] as i32 * h[c * k + j] as i32)
                    .sum();
                let want = if i == j { k as i32 } else { 0 };
                assert_eq!(
                    dot, want,
                    "K = {k}: (H^T H)[{i}][{j}] = {dot}, expected {want}"
                );
            }
        }
    }
}

#[test]
fn only_28_and_36_are_symmetric() {
    // The README: "only had28 and had36 are symmetric" - this is what makes Quark 0.9 and
    // 0.13 matmul_hadU agree for K in {1, 28, 36} and differ for every other K.
    for k in TABLE_KS {
        let h = k_matrix(k).unwrap();
        let symmetric = (0..k).all(|i| (0..k).all(|j| h[i * k + j] == h[j * k + i]));
        assert_eq!(
            symmetric,
            k == 28 || k == 36,
            "K = {k}: symmetric = {symmetric}"
        );
    }
}

#[test]
fn no_matrix_for_other_sizes() {
    // Outside the table only the Paley orders have a matrix (tests/constructions.rs checks
    // those); every other K, powers of two included, has none.
    for k in 0..=1100 {
        if !TABLE_KS.contains(&k) {
            assert_eq!(
                k_matrix(k).is_some(),
                quarot::hadamard::construct::construction(k).is_some(),
                "k_matrix({k})"
            );
        }
    }
    for k in [0, 1, 2, 4, 8, 16, 64, 6, 10, 92, 1028] {
        assert!(k_matrix(k).is_none(), "k_matrix({k}) should be None");
    }
}

#[test]
fn manifest_kron_hadamard_cases_name_the_same_files() {
    // The manifest's kron_hadamard cases are the K matrices; make sure every one of them is
    // a file the tests above compared (so a renamed file cannot go unchecked).
    let text = std::fs::read_to_string(reference_dir().join("manifest.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut seen = Vec::new();
    for case in cases.as_array().unwrap() {
        if case["func"] != "kron_hadamard" {
            continue;
        }
        let k = case["params"]["K"].as_u64().unwrap() as usize;
        let arrays = case["arrays"].as_object().unwrap();
        assert_eq!(arrays.len(), 1, "{}: one array expected", case["id"]);
        let arr = arrays.values().next().unwrap();
        assert_eq!(
            arr["file"].as_str().unwrap(),
            k_matrix_file(k),
            "{}",
            case["id"]
        );
        assert_eq!(arr["dtype"], "i8");
        assert_eq!(arr["shape"], serde_json::json!([k, k]));
        seen.push(k);
    }
    seen.sort();
    let mut want = TABLE_KS.to_vec();
    want.sort();
    assert_eq!(seen, want, "kron_hadamard cases in the manifest");
}
