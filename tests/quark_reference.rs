//! The library against the REAL AMD Quark outputs in ../shared/reference (see its README):
//! every `matmul_hadU`, `hadamard_transform` and `hadamard_multiply` case of manifest.json,
//! plus the matmul_hadU entries of errors.json.
//!
//! Mapping (README "How each function was called"):
//! - 0.9 `matmul_hadU(x)`             = flags 0,                scale normalized_scale(n);
//! - 0.13 `matmul_hadU(x)`            = FLAG_TRANSPOSE_K,       scale normalized_scale(n);
//! - 0.13 `matmul_hadU(x, inverse=True)` = flags 0,             scale normalized_scale(n);
//! - 0.9 `hadamard_transform(x)`      = FLAG_PAD_TRUNCATE,      scale 1;
//! - 0.9 `hadamard_multiply(x)`       = FLAG_PAD_TRUNCATE,      scale normalized_scale(n) (unpadded n).
//!
//! Run with `--nocapture` to see the worst observed error ratios.

mod common;

use common::{
    available_isas, expected_k, f64_hadamard_row, f64_pad_truncate_row, f64_to_bf16_bits,
    f64_to_f16_bits, read_reference_f32, read_reference_f64, read_reference_u16, reference_dir,
    reference_k_matrix, ulp_distance_16, TABLE_KS,
};
use half::{bf16, f16};
use quarot::hadamard::hadamard_rows_isa;
use quarot::{
    hadamard_k, hadamard_rows, normalized_scale, Element, Status, FLAG_PAD_TRUNCATE,
    FLAG_TRANSPOSE_K,
};
use serde_json::Value;

/// 2^-24: half an f32 ulp at 1.0.
const U24: f64 = 1.0 / (1u64 << 24) as f64;
/// 2^-18.
const U18: f64 = 1.0 / (1u64 << 18) as f64;

/// The functions this file covers.
const FUNCS: [&str; 3] = ["matmul_hadU", "hadamard_transform", "hadamard_multiply"];

/// Expected numbers of cases (README: matmul_hadU 78, hadamard_transform 9,
/// hadamard_multiply 9), split by what each test checks.
const N_MATMUL_F32: usize = 36; // 0.9: 17, 0.13: 17 + 2 inverse=True
const N_MATMUL_F64: usize = 32;
const N_MATMUL_BF16: usize = 10;
const N_PAD_F32: usize = 10; // 5 transform + 5 multiply (incl. the 2x2x96 ones)
const N_PAD_BF16: usize = 8;

#[derive(Debug)]
struct Case {
    id: String,
    func: String,
    version: String,
    params: Value,
    call: String,
    dtype: String,
    x_file: String,
    y_file: String,
    rows: usize,
    n: usize,
}

impl Case {
    fn is_pad(&self) -> bool {
        self.func != "matmul_hadU"
    }

    /// (flags, scale) of our call that reproduces this Quark call.
    fn flags_scale(&self) -> (u32, f32) {
        let n = self.n;
        match self.func.as_str() {
            "matmul_hadU" => {
                let inverse = self.params.get("inverse").map(|v| v.as_bool().unwrap());
                assert_eq!(
                    inverse == Some(true),
                    self.call.contains("inverse=True"),
                    "{}: params.inverse and the call disagree",
                    self.id
                );
                let flags = match (self.version.as_str(), inverse) {
                    ("0.9", None) => 0,
                    ("0.13", None | Some(false)) => FLAG_TRANSPOSE_K,
                    ("0.13", Some(true)) => 0,
                    other => panic!("{}: unexpected version / inverse {other:?}", self.id),
                };
                (flags, normalized_scale(n))
            }
            "hadamard_transform" => (FLAG_PAD_TRUNCATE, 1.0),
            "hadamard_multiply" => (FLAG_PAD_TRUNCATE, normalized_scale(n)),
            f => panic!("{}: unexpected func {f}", self.id),
        }
    }

    /// The f64 definition of our transform for one (exactly widened) input row.
    fn f64_expected(&self, x: &[f64]) -> Vec<f64> {
        let (flags, scale) = self.flags_scale();
        if self.is_pad() {
            f64_pad_truncate_row(x, scale as f64)
        } else {
            let k = self.params["K"].as_u64().unwrap() as usize;
            let hk = reference_k_matrix(k);
            f64_hadamard_row(x, k, &hk, flags & FLAG_TRANSPOSE_K != 0, scale as f64)
        }
    }
}

fn load_manifest() -> Vec<Value> {
    let path = reference_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("manifest.json is not valid JSON");
    v.as_array().expect("manifest.json is a list").clone()
}

fn dtype_size(d: &str) -> usize {
    match d {
        "f64" => 8,
        "f32" => 4,
        "f16" | "bf16" => 2,
        "i8" => 1,
        _ => panic!("unknown dtype {d}"),
    }
}

/// Every manifest case of the three functions, validated (arrays x and y of the same
/// dtype and shape, last dimension n, file sizes matching the shapes).
fn load_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for c in load_manifest() {
        let func = c["func"].as_str().unwrap().to_string();
        if !FUNCS.contains(&func.as_str()) {
            continue;
        }
        let id = c["id"].as_str().unwrap().to_string();
        let arrays = c["arrays"].as_object().unwrap();
        assert_eq!(
            arrays.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["x", "y"],
            "{id}: expected exactly the arrays x and y"
        );
        let (x, y) = (&arrays["x"], &arrays["y"]);
        assert_eq!(x["role"], "input", "{id}");
        assert_eq!(y["role"], "output", "{id}");
        assert_eq!(x["dtype"], y["dtype"], "{id}: x and y dtypes");
        assert_eq!(x["shape"], y["shape"], "{id}: x and y shapes");
        let params = c["params"].clone();
        let dtype = x["dtype"].as_str().unwrap().to_string();
        assert_eq!(
            params["dtype"].as_str(),
            Some(dtype.as_str()),
            "{id}: params.dtype"
        );
        assert_eq!(params["shape"], x["shape"], "{id}: params.shape");
        let shape: Vec<usize> = x["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let n = *shape.last().unwrap();
        assert_eq!(
            params["n"].as_u64(),
            Some(n as u64),
            "{id}: params.n vs shape"
        );
        let rows: usize = shape[..shape.len() - 1].iter().product();
        let case = Case {
            id: id.clone(),
            func,
            version: c["quark_version"].as_str().unwrap().to_string(),
            params,
            call: c["call"].as_str().unwrap().to_string(),
            dtype,
            x_file: x["file"].as_str().unwrap().to_string(),
            y_file: y["file"].as_str().unwrap().to_string(),
            rows,
            n,
        };
        for f in [&case.x_file, &case.y_file] {
            let len = std::fs::metadata(reference_dir().join(f))
                .unwrap_or_else(|e| panic!("{id}: {f}: {e}"))
                .len() as usize;
            assert_eq!(len, rows * n * dtype_size(&case.dtype), "{id}: size of {f}");
        }
        out.push(case);
    }
    out
}

fn cases_where(pred: impl Fn(&Case) -> bool) -> Vec<Case> {
    load_cases().into_iter().filter(|c| pred(c)).collect()
}

/// Our result for every available instruction set, plus the public dispatching entry.
fn run_all_paths<T: Element>(case: &Case, x: &[T]) -> Vec<(String, Vec<T>)> {
    let (flags, scale) = case.flags_scale();
    let mut results = Vec::new();
    for isa in available_isas() {
        let mut data = x.to_vec();
        hadamard_rows_isa(isa, &mut data, case.rows, case.n, case.n, scale, flags)
            .unwrap_or_else(|e| panic!("{}: {isa:?}: {e}", case.id));
        results.push((format!("{isa:?}"), data));
    }
    let mut data = x.to_vec();
    hadamard_rows(&mut data, case.rows, case.n, case.n, scale, flags)
        .unwrap_or_else(|e| panic!("{}: hadamard_rows: {e}", case.id));
    results.push(("hadamard_rows".to_string(), data));
    results
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn bits_to_f64(bits: u16, is_f16: bool) -> f64 {
    if is_f16 {
        f16::from_bits(bits).to_f64()
    } else {
        bf16::from_bits(bits).to_f64()
    }
}

#[test]
fn inventory_of_cases() {
    let cases = load_cases();
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    assert_eq!(
        cases.len(),
        96,
        "matmul_hadU + hadamard_transform + hadamard_multiply cases"
    );
    assert_eq!(count(&|c| c.func == "matmul_hadU"), 78);
    assert_eq!(count(&|c| c.func == "hadamard_transform"), 9);
    assert_eq!(count(&|c| c.func == "hadamard_multiply"), 9);
    assert_eq!(count(&|c| !c.is_pad() && c.dtype == "f32"), N_MATMUL_F32);
    assert_eq!(count(&|c| !c.is_pad() && c.dtype == "f64"), N_MATMUL_F64);
    assert_eq!(count(&|c| !c.is_pad() && c.dtype == "bf16"), N_MATMUL_BF16);
    assert_eq!(count(&|c| c.is_pad() && c.dtype == "f32"), N_PAD_F32);
    assert_eq!(count(&|c| c.is_pad() && c.dtype == "bf16"), N_PAD_BF16);
    // No f16 case exists in the manifest (torch 1.13 CPU cannot run f16 matmul_hadU with
    // K > 1); f16 is covered by the errors.json entries below and by f64_reference.rs.
    assert_eq!(count(&|c| c.dtype == "f16"), 0);
    assert_eq!(count(&|c| c.params.get("inverse").is_some()), 2);
    let ids: std::collections::HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
}

#[test]
fn recorded_k_matches_library() {
    let mut checked = 0;
    for c in load_cases() {
        let n = c.n;
        if c.is_pad() {
            // These record no K (Quark's hadamard_transform does not use one) but record the
            // padded width and whether zero-pad + truncate makes the map non-orthogonal.
            assert!(c.params.get("K").is_none(), "{}", c.id);
            let plan = quarot::HadamardPlan::new(n, FLAG_PAD_TRUNCATE).unwrap();
            assert_eq!(
                c.params["padded_n"].as_u64(),
                Some(plan.padded_len() as u64),
                "{}",
                c.id
            );
            assert_eq!(
                c.params["zero_pad_truncate"].as_bool(),
                Some(!plan.is_orthogonal()),
                "{}",
                c.id
            );
        } else {
            let k = c.params["K"].as_u64().unwrap() as usize;
            assert_eq!(hadamard_k(n), Some(k), "{}: Quark chose K = {k}", c.id);
            assert_eq!(expected_k(n), Some(k), "{}: README rule", c.id);
            assert_eq!(c.params["m"].as_u64(), Some((n / k) as u64), "{}: m", c.id);
            let plan = quarot::HadamardPlan::new(n, 0).unwrap();
            assert_eq!(plan.k(), k, "{}: plan K", c.id);
        }
        checked += 1;
    }
    assert_eq!(checked, 96);
}

#[test]
fn matmul_hadu_f32_matches_quark() {
    let cases = cases_where(|c| c.func == "matmul_hadU" && c.dtype == "f32");
    let mut worst = 0.0f64;
    let mut worst_quark_vs_f64 = 0.0f64;
    let mut checked = 0;
    for c in &cases {
        let x = read_reference_f32(&c.x_file);
        let y = read_reference_f32(&c.y_file);
        let n = c.n;
        for (path, got) in run_all_paths(c, &x) {
            for r in 0..c.rows {
                let q = &y[r * n..(r + 1) * n];
                let g = &got[r * n..(r + 1) * n];
                let m = max_abs(q.iter().map(|&v| v as f64));
                let tol = 4.0 * U24 * m;
                for i in 0..n {
                    let d = (g[i] as f64 - q[i] as f64).abs();
                    assert!(
                        d <= tol,
                        "{} ({path}) row {r} index {i}: ours {} Quark {} |diff| {d:e} > 4*2^-24*{m}",
                        c.id,
                        g[i],
                        q[i]
                    );
                    if m > 0.0 {
                        worst = worst.max(d / (U24 * m));
                    }
                }
            }
        }
        // Sanity of this file's f64 definition (used for the 16-bit cases below): Quark's
        // own f32 output is close to it.
        for r in 0..c.rows {
            let xr: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
            let e = c.f64_expected(&xr);
            let q = &y[r * n..(r + 1) * n];
            let m = max_abs(e.iter().copied());
            for i in 0..n {
                let d = (q[i] as f64 - e[i]).abs();
                assert!(
                    d <= U18 * m,
                    "{} row {r} index {i}: Quark {} vs f64 {}",
                    c.id,
                    q[i],
                    e[i]
                );
                worst_quark_vs_f64 = worst_quark_vs_f64.max(d / (U24 * m));
            }
        }
        checked += 1;
    }
    eprintln!(
        "matmul_hadU f32: {checked} cases, worst |ours-Quark| / (2^-24 max|Quark row|) = {worst:.3} (bar 4); \
         Quark vs f64 definition: {worst_quark_vs_f64:.3} x 2^-24"
    );
    assert_eq!(checked, N_MATMUL_F32);
}

#[test]
fn matmul_hadu_f64_cases_within_f32_accuracy() {
    // The library has no f64 element type, so a Quark f64 case is checked the way the issue
    // asks: x rounded to f32, our f32 transform, compared with Quark's f64 y per row within
    // 2^-18 * max|y row|. (Quark's f64 path divides by the f32 sqrt(n), like our scale.)
    let cases = cases_where(|c| c.func == "matmul_hadU" && c.dtype == "f64");
    let mut worst = 0.0f64;
    let mut checked = 0;
    for c in &cases {
        let x64 = read_reference_f64(&c.x_file);
        let y = read_reference_f64(&c.y_file);
        let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let n = c.n;
        for (path, got) in run_all_paths(c, &x) {
            for r in 0..c.rows {
                let q = &y[r * n..(r + 1) * n];
                let g = &got[r * n..(r + 1) * n];
                let m = max_abs(q.iter().copied());
                for i in 0..n {
                    let d = (g[i] as f64 - q[i]).abs();
                    assert!(
                        d <= U18 * m,
                        "{} ({path}) row {r} index {i}: ours {} Quark {} |diff| {d:e} > 2^-18*{m}",
                        c.id,
                        g[i],
                        q[i]
                    );
                    if m > 0.0 {
                        worst = worst.max(d / (U18 * m));
                    }
                }
            }
        }
        checked += 1;
    }
    eprintln!(
        "matmul_hadU f64: {checked} cases, worst |ours_f32-Quark_f64| / (2^-18 max|y row|) = {worst:.5} (bar 1)"
    );
    assert_eq!(checked, N_MATMUL_F64);
}

/// Checks shared by the 16-bit cases: ours within 1 ulp of the f64 definition rounded once,
/// and within `quark_rel` * max|Quark y| of Quark's output, max over the whole case tensor as
/// in the README (its `max_abs_err_over_max_abs_ref` checks are case-wide too). Per row the
/// bar would not hold: on one row of matmul_hadU_q09_bf16_n4096, |ours - Quark| reaches
/// 1.03e-2 * max|row| while ours is within 1 ulp of the exact value (Quark's per-step bf16
/// rounding is the difference). Returns (max ulp vs f64, max |ours-Quark|/max|Quark y|,
/// max |ours-Quark|/max|Quark row| (reported only), max ulp vs Quark).
fn check_16bit_case<T: Element>(
    c: &Case,
    x_bits: &[u16],
    y_bits: &[u16],
    is_f16: bool,
    quark_rel: f64,
    to_t: fn(u16) -> T,
    bits_of: fn(T) -> u16,
) -> (u32, f64, f64, u32) {
    let n = c.n;
    let m_case = max_abs(y_bits.iter().map(|&b| bits_to_f64(b, is_f16)));
    let round = if is_f16 {
        f64_to_f16_bits
    } else {
        f64_to_bf16_bits
    };
    let x: Vec<T> = x_bits.iter().map(|&b| to_t(b)).collect();
    let expected: Vec<u16> = (0..c.rows)
        .flat_map(|r| {
            let xr: Vec<f64> = x_bits[r * n..(r + 1) * n]
                .iter()
                .map(|&b| bits_to_f64(b, is_f16))
                .collect();
            c.f64_expected(&xr)
                .into_iter()
                .map(round)
                .collect::<Vec<_>>()
        })
        .collect();
    let (mut max_ulp, mut max_rel, mut max_rel_row, mut max_ulp_quark) =
        (0u32, 0.0f64, 0.0f64, 0u32);
    for (path, got) in run_all_paths(c, &x) {
        for r in 0..c.rows {
            let q = &y_bits[r * n..(r + 1) * n];
            let m = max_abs(q.iter().map(|&b| bits_to_f64(b, is_f16)));
            for i in r * n..(r + 1) * n {
                let g = bits_of(got[i]);
                let u = ulp_distance_16(g, expected[i]);
                assert!(
                    u <= 1,
                    "{} ({path}) row {r} index {}: ours {:#06x} ({}) vs f64 rounded once {:#06x} ({}): {u} ulp",
                    c.id,
                    i - r * n,
                    g,
                    bits_to_f64(g, is_f16),
                    expected[i],
                    bits_to_f64(expected[i], is_f16)
                );
                max_ulp = max_ulp.max(u);
                let d = (bits_to_f64(g, is_f16) - bits_to_f64(y_bits[i], is_f16)).abs();
                assert!(
                    d <= quark_rel * m_case,
                    "{} ({path}) row {r} index {}: ours {} Quark {} |diff| {d:e} > {quark_rel}*{m_case}",
                    c.id,
                    i - r * n,
                    bits_to_f64(g, is_f16),
                    bits_to_f64(y_bits[i], is_f16)
                );
                if m_case > 0.0 {
                    max_rel = max_rel.max(d / m_case);
                }
                if m > 0.0 {
                    max_rel_row = max_rel_row.max(d / m);
                }
                max_ulp_quark = max_ulp_quark.max(ulp_distance_16(g, y_bits[i]));
            }
        }
    }
    (max_ulp, max_rel, max_rel_row, max_ulp_quark)
}

#[test]
fn matmul_hadu_bf16_matches_f64_definition_and_quark() {
    // Quark's bf16 path rounds every butterfly step to bf16 (and divides by bf16(sqrt n)),
    // so it is only approximately equal: README tolerance |diff| <= 1e-2 * max|y|. The exact bar is the f64 definition rounded once: within 1 ulp.
    let cases = cases_where(|c| c.func == "matmul_hadU" && c.dtype == "bf16");
    let (mut ulp, mut rel, mut rel_row, mut ulp_q) = (0, 0.0f64, 0.0f64, 0);
    let mut checked = 0;
    for c in &cases {
        let x = read_reference_u16(&c.x_file);
        let y = read_reference_u16(&c.y_file);
        let (u, r, rr, uq) =
            check_16bit_case::<bf16>(c, &x, &y, false, 1e-2, bf16::from_bits, bf16::to_bits);
        ulp = ulp.max(u);
        rel = rel.max(r);
        rel_row = rel_row.max(rr);
        ulp_q = ulp_q.max(uq);
        checked += 1;
    }
    eprintln!(
        "matmul_hadU bf16: {checked} cases, max ulp vs f64 rounded once = {ulp} (bar 1), \
         max |ours-Quark|/max|Quark y| = {rel:.2e} (bar 1e-2; per row {rel_row:.2e}), \
         max ulp vs Quark = {ulp_q}"
    );
    assert_eq!(checked, N_MATMUL_BF16);
}

#[test]
fn pad_truncate_f32_matches_quark() {
    let cases = cases_where(|c| c.is_pad() && c.dtype == "f32");
    let mut worst = 0.0f64;
    let mut checked = 0;
    let mut shaped = 0;
    for c in &cases {
        if c.params["shape"].as_array().unwrap().len() == 3 {
            shaped += 1; // [2, 2, 96]: the leading dimensions are 4 rows
            assert_eq!(c.rows, 4, "{}", c.id);
        }
        let x = read_reference_f32(&c.x_file);
        let y = read_reference_f32(&c.y_file);
        let n = c.n;
        for (path, got) in run_all_paths(c, &x) {
            for r in 0..c.rows {
                let q = &y[r * n..(r + 1) * n];
                let g = &got[r * n..(r + 1) * n];
                let m = max_abs(q.iter().map(|&v| v as f64));
                for i in 0..n {
                    let d = (g[i] as f64 - q[i] as f64).abs();
                    assert!(
                        d <= 16.0 * U24 * m,
                        "{} ({path}) row {r} index {i}: ours {} Quark {} |diff| {d:e} > 16*2^-24*{m}",
                        c.id,
                        g[i],
                        q[i]
                    );
                    if m > 0.0 {
                        worst = worst.max(d / (U24 * m));
                    }
                }
            }
        }
        checked += 1;
    }
    eprintln!(
        "hadamard_transform/multiply f32: {checked} cases, worst |ours-Quark| / (2^-24 max|Quark row|) = {worst:.3} (bar 16)"
    );
    assert_eq!(checked, N_PAD_F32);
    assert_eq!(shaped, 2, "the two 2x2x96 cases");
}

#[test]
fn pad_truncate_bf16_matches_f64_definition_and_quark() {
    let cases = cases_where(|c| c.is_pad() && c.dtype == "bf16");
    let (mut ulp, mut rel, mut rel_row, mut ulp_q) = (0, 0.0f64, 0.0f64, 0);
    let mut checked = 0;
    for c in &cases {
        let x = read_reference_u16(&c.x_file);
        let y = read_reference_u16(&c.y_file);
        let (u, r, rr, uq) =
            check_16bit_case::<bf16>(c, &x, &y, false, 1e-2, bf16::from_bits, bf16::to_bits);
        ulp = ulp.max(u);
        rel = rel.max(r);
        rel_row = rel_row.max(rr);
        ulp_q = ulp_q.max(uq);
        checked += 1;
    }
    // README: hadamard_transform / hadamard_multiply bf16 are f32 math rounded once, like
    // ours, so beyond the 1e-2 bar we require at most 1 bf16 ulp from Quark.
    assert!(
        ulp_q <= 1,
        "hadamard_transform/multiply bf16: {ulp_q} ulp from Quark"
    );
    eprintln!(
        "hadamard_transform/multiply bf16: {checked} cases, max ulp vs f64 rounded once = {ulp} (bar 1), \
         max |ours-Quark|/max|Quark y| = {rel:.2e} (bar 1e-2; per row {rel_row:.2e}), \
         max ulp vs Quark = {ulp_q}"
    );
    assert_eq!(checked, N_PAD_BF16);
}

#[test]
fn errors_json_entries() {
    let path = reference_dir().join("errors.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: Value = serde_json::from_str(&text).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 10, "README: 10 error/edge entries");
    let isas = available_isas();
    let (mut size_checked, mut f16_checked, mut other) = (0, 0, Vec::new());
    for e in entries {
        let id = e["id"].as_str().unwrap();
        if e["func"] != "matmul_hadU" {
            // random_hadamard_matrix / rotate_in_channels2 / get_rotation_matrix: not
            // functions of this library's transform API; nothing to check here.
            other.push(id.to_string());
            continue;
        }
        let n = e["params"]["n"].as_u64().unwrap() as usize;
        let flags = if e["quark_version"] == "0.13" {
            FLAG_TRANSPOSE_K
        } else {
            0
        };
        match e["params"].get("dtype").and_then(Value::as_str) {
            None => {
                // Invalid width (n = 3, 360): Quark raises (AssertionError / ValueError); we
                // must return UnsupportedSize and leave the data as it was.
                assert!(e["raised"].is_string(), "{id}: Quark raised");
                assert_eq!(expected_k(n), None, "{id}: QuaRot's rule has no K");
                if let Some(k) = hadamard_k(n) {
                    // A width Quark cannot rotate that libquarot can (360 = 180 * 2, Paley
                    // II over GF(89)): with a constructed K, never one of QuaRot's.
                    assert!(!TABLE_KS.contains(&k), "{id}: K = {k}");
                    assert!(
                        quarot::hadamard::construct::construction(k).is_some(),
                        "{id}: K = {k}"
                    );
                    size_checked += 1;
                    continue;
                }
                let ones32 = vec![1.0f32; n];
                let mut d = ones32.clone();
                let err = hadamard_rows(&mut d, 1, n, n, normalized_scale(n), flags)
                    .expect_err(&format!("{id}: n = {n} must be rejected"));
                assert_eq!(err.status, Status::UnsupportedSize, "{id}: {err}");
                assert_eq!(d, ones32, "{id}: data changed on error");
                for &isa in &isas {
                    for fl in [0, FLAG_TRANSPOSE_K] {
                        let mut d = ones32.clone();
                        let err = hadamard_rows_isa(isa, &mut d, 1, n, n, 0.5, fl).unwrap_err();
                        assert_eq!(err.status, Status::UnsupportedSize, "{id} {isa:?}");
                        assert_eq!(d, ones32, "{id} {isa:?}: f32 data changed on error");
                        let ones16 = vec![f16::ONE; n];
                        let mut d = ones16.clone();
                        let err = hadamard_rows_isa(isa, &mut d, 1, n, n, 0.5, fl).unwrap_err();
                        assert_eq!(err.status, Status::UnsupportedSize, "{id} {isa:?}");
                        assert_eq!(d, ones16, "{id} {isa:?}: f16 data changed on error");
                        let onesb = vec![bf16::ONE; n];
                        let mut d = onesb.clone();
                        let err = hadamard_rows_isa(isa, &mut d, 1, n, n, 0.5, fl).unwrap_err();
                        assert_eq!(err.status, Status::UnsupportedSize, "{id} {isa:?}");
                        assert_eq!(d, onesb, "{id} {isa:?}: bf16 data changed on error");
                    }
                }
                size_checked += 1;
            }
            Some("f16") => {
                // matmul_hadU(torch.ones(2, n, dtype=float16)): Quark fails for n = 48
                // (torch 1.13 has no f16 addmm on CPU) and returns for n = 64, but stores no
                // output. We support f16 for every valid n: check against the f64
                // definition rounded once (within 1 ulp).
                assert_eq!(
                    e["call"].as_str().unwrap(),
                    format!("matmul_hadU(torch.ones(2,{n},dtype=torch.float16))")
                );
                let k = hadamard_k(n).unwrap();
                let hk = reference_k_matrix(k);
                let scale = normalized_scale(n);
                let want: Vec<u16> = f64_hadamard_row(&vec![1.0; n], k, &hk, false, scale as f64)
                    .into_iter()
                    .map(f64_to_f16_bits)
                    .collect();
                for &isa in &isas {
                    let mut d = vec![f16::ONE; 2 * n];
                    hadamard_rows_isa(isa, &mut d, 2, n, n, scale, flags)
                        .unwrap_or_else(|err| panic!("{id} {isa:?}: {err}"));
                    for (i, g) in d.iter().enumerate() {
                        let u = ulp_distance_16(g.to_bits(), want[i % n]);
                        assert!(
                            u <= 1,
                            "{id} {isa:?} index {i}: {g} vs {}",
                            f16::from_bits(want[i % n])
                        );
                    }
                }
                f16_checked += 1;
            }
            Some(d) => panic!("{id}: unexpected dtype {d}"),
        }
    }
    assert_eq!(
        size_checked, 4,
        "matmul_hadU n = 3 and n = 360, Quark 0.9 and 0.13"
    );
    assert_eq!(f16_checked, 2, "matmul_hadU f16 n = 48 and n = 64");
    assert_eq!(other.len(), 4, "entries for other functions: {other:?}");
}
