//! Weight rotation against the REAL AMD Quark outputs in ../shared/reference (see its
//! README, sections rotate_in_channels2 / rotate_out_channels2, get_rotation_matrix and
//! random_hadamard_matrix):
//!
//! - every `rotate_in_channels2` / `rotate_out_channels2` case of manifest.json (full,
//!   blockwise, GQA v_proj / o_proj, with and without bias) through the public Rust API
//!   (`quarot::rotate::rotate_in_channels` / `rotate_out_channels`, dense R, default = f64
//!   mode): at least 99.9% of the elements bit-identical to Quark and every element within
//!   1 ulp (ordered integers of the dtype), per dtype, for the weights and for weights and
//!   biases together; the same bits again with `FLAG_PARALLEL`; the Hadamard ("had") cases
//!   also through `Rotation::Hadamard` (layout KronPow2K, scale 1/sqrt(r)) with the same bar.
//!   Quark's f16/bf16 results are f64 -> f32 -> f16/bf16 (two roundings) while ours are
//!   rounded once, hence the 1-ulp allowance; every such difference is classified.
//! - The f64-weight cases: the library has no f64 element type, so Quark's f64 output is
//!   checked against our own f64 evaluation of the documented formula (sequential f64 dot
//!   products, as reference BLAS), which must match it bit for bit; in addition the library
//!   rotates the f32-rounded weights and must land within the error bound that rounding
//!   implies. They are counted with the other cases.
//! - `get_rotation_matrix(n, random=False)` == `matrices::hadamard_matrix` with layout
//!   KronPow2K and scale 1/sqrt(n) (f64), within 1e-15.
//! - `random_hadamard_matrix(n)` (0.9: layout MatmulHadU; 0.13: MatmulHadUTransposed) ==
//!   `hadamard_matrix` with the stored signs and scale `quark_hadamard_scale(n)`, within
//!   1e-15; `matrices::random_signs(seed)` reproduces torch's stored signs exactly.
//!
//! The rotation functions use the process's active instruction set (`QUAROT_ISA`); the test
//! `quark_cases_on_every_isa` re-runs the comparison in a child process per other available
//! set. Run with `--nocapture` to see the statistics.

mod common;

use common::{
    available_isas, f64_to_bf16_bits, f64_to_f16_bits, load_reference_manifest, read_reference_f32,
    read_reference_f64, read_reference_i8, read_reference_u16, reference_dir, ulp_distance_16,
    ulp_distance_f32,
};
use half::{bf16, f16};
use quarot::rotate::matrices::{hadamard_matrix, random_signs};
use quarot::rotate::{
    quark_hadamard_scale, rotate_in_channels, rotate_out_channels, HadamardLayout,
    HadamardRotation, Rotation,
};
use quarot::{Element, Isa, Status, FLAG_PARALLEL};
use serde_json::Value;
use std::collections::BTreeMap;

/// Number of rotate_in_channels2 + rotate_out_channels2 cases (README: 20 + 24).
const N_ROTATE_CASES: usize = 44;
const N_ROTATE_IN: usize = 20;
const N_ROTATE_OUT: usize = 24;
/// Per weight dtype: f32 9 + 4 GQA, bf16 9 + 4 GQA, f16 9, f64 9.
const N_PER_DTYPE: [(&str, usize); 4] = [("f32", 13), ("bf16", 13), ("f16", 9), ("f64", 9)];
/// Cases with a bias (rotate_out only): 4 per dtype + 2 GQA v_proj.
const N_WITH_BIAS: usize = 18;
/// Cases whose R is Quark's `get_rotation_matrix(r, random=False)` ("had").
const N_HAD: usize = 20;

/// The fraction of elements that must be bit-identical to Quark.
const MIN_IDENTICAL: f64 = 0.999;

/// Environment variable a child process of `quark_cases_on_every_isa` gets: the name of
/// the instruction set it must be running on.
const CHILD_ISA_ENV: &str = "QUAROT_ROTATE_REFERENCE_EXPECT_ISA";

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RotCase {
    id: String,
    /// rotate_out_channels2 (else rotate_in_channels2).
    out_channels: bool,
    dtype: String,
    out_features: usize,
    in_features: usize,
    /// r = R.shape[0].
    r: usize,
    /// "had" (get_rotation_matrix(r, random=False)) or "orth".
    kind: String,
    weight_file: String,
    rotation_file: String,
    bias_file: Option<String>,
    weight_out_file: String,
    bias_out_file: Option<String>,
}

fn shape_of(a: &Value) -> Vec<usize> {
    a["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
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

/// Check that a referenced file exists with the size its dtype and shape imply.
fn check_file(id: &str, a: &Value) {
    let file = a["file"].as_str().unwrap();
    let n: usize = shape_of(a).iter().product();
    let len = std::fs::metadata(reference_dir().join(file))
        .unwrap_or_else(|e| panic!("{id}: {file}: {e}"))
        .len() as usize;
    assert_eq!(
        len,
        n * dtype_size(a["dtype"].as_str().unwrap()),
        "{id}: size of {file}"
    );
}

/// Every rotate_in_channels2 / rotate_out_channels2 case, validated against its params.
fn load_rotate_cases() -> Vec<RotCase> {
    let mut out = Vec::new();
    for c in load_reference_manifest() {
        let func = c["func"].as_str().unwrap();
        let out_channels = match func {
            "rotate_in_channels2" => false,
            "rotate_out_channels2" => true,
            _ => continue,
        };
        let id = c["id"].as_str().unwrap().to_string();
        assert_eq!(c["quark_version"], "0.9", "{id}");
        let p = &c["params"];
        let arrays = c["arrays"].as_object().unwrap();
        let has_bias = p["bias"].as_bool().unwrap();
        let mut names: Vec<&str> = arrays.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = vec!["rotation", "weight", "weight_out"];
        if has_bias {
            assert!(out_channels, "{id}: only rotate_out_channels2 takes a bias");
            want.extend(["bias", "bias_out"]);
        }
        want.sort_unstable();
        assert_eq!(names, want, "{id}: arrays");
        let dtype = p["weight_dtype"].as_str().unwrap().to_string();
        let wshape = shape_of(&arrays["weight"]);
        assert_eq!(
            serde_json::to_value(&wshape).unwrap(),
            p["weight_shape"],
            "{id}"
        );
        let (out_features, in_features) = (wshape[0], wshape[1]);
        let r = p["rotation_size"].as_u64().unwrap() as usize;
        assert_eq!(shape_of(&arrays["rotation"]), vec![r, r], "{id}: R shape");
        assert_eq!(arrays["rotation"]["dtype"], "f64", "{id}: R dtype");
        let dim = if out_channels {
            out_features
        } else {
            in_features
        };
        assert_eq!(dim % r, 0, "{id}: r divides the rotated dimension");
        assert_eq!(
            p["n_blocks"].as_u64(),
            Some((dim / r) as u64),
            "{id}: n_blocks"
        );
        assert_eq!(
            p["blockwise"].as_bool(),
            Some(dim / r > 1),
            "{id}: blockwise"
        );
        for (name, a) in arrays {
            check_file(&id, a);
            let role = a["role"].as_str().unwrap();
            let expect_role = if name.ends_with("_out") {
                "output"
            } else {
                "input"
            };
            assert_eq!(role, expect_role, "{id}: role of {name}");
            if name != "rotation" {
                assert_eq!(a["dtype"].as_str(), Some(dtype.as_str()), "{id}: {name}");
            }
        }
        assert_eq!(shape_of(&arrays["weight_out"]), wshape, "{id}");
        if has_bias {
            assert_eq!(shape_of(&arrays["bias"]), vec![out_features], "{id}");
            assert_eq!(shape_of(&arrays["bias_out"]), vec![out_features], "{id}");
        }
        let file = |name: &str| arrays[name]["file"].as_str().unwrap().to_string();
        out.push(RotCase {
            id: id.clone(),
            out_channels,
            dtype,
            out_features,
            in_features,
            r,
            kind: p["rotation"].as_str().unwrap().to_string(),
            weight_file: file("weight"),
            rotation_file: file("rotation"),
            bias_file: has_bias.then(|| file("bias")),
            weight_out_file: file("weight_out"),
            bias_out_file: has_bias.then(|| file("bias_out")),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------

/// What the comparison needs of f32 / f16 / bf16.
trait TestElem: Element + PartialEq + std::fmt::Debug {
    const NAME: &'static str;
    fn load(file: &str) -> Vec<Self>;
    fn bits(self) -> u32;
    fn ulps(a: Self, b: Self) -> u64;
    fn to_f64(self) -> f64;
    /// The correctly rounded value of an f64 (one rounding, nearest even).
    fn round_once(v: f64) -> Self;
    /// torch's `.to(dtype)` of an f64 tensor: f64 -> f32 -> dtype.
    fn round_like_torch(v: f64) -> Self;
}

impl TestElem for f32 {
    const NAME: &'static str = "f32";
    fn load(file: &str) -> Vec<Self> {
        read_reference_f32(file)
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn ulps(a: Self, b: Self) -> u64 {
        ulp_distance_f32(a, b)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn round_once(v: f64) -> Self {
        v as f32
    }
    fn round_like_torch(v: f64) -> Self {
        v as f32
    }
}

impl TestElem for f16 {
    const NAME: &'static str = "f16";
    fn load(file: &str) -> Vec<Self> {
        read_reference_u16(file)
            .into_iter()
            .map(f16::from_bits)
            .collect()
    }
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
    fn ulps(a: Self, b: Self) -> u64 {
        u64::from(ulp_distance_16(a.to_bits(), b.to_bits()))
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn round_once(v: f64) -> Self {
        f16::from_bits(f64_to_f16_bits(v))
    }
    fn round_like_torch(v: f64) -> Self {
        f16::from_f32(v as f32)
    }
}

impl TestElem for bf16 {
    const NAME: &'static str = "bf16";
    fn load(file: &str) -> Vec<Self> {
        read_reference_u16(file)
            .into_iter()
            .map(bf16::from_bits)
            .collect()
    }
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
    fn ulps(a: Self, b: Self) -> u64 {
        u64::from(ulp_distance_16(a.to_bits(), b.to_bits()))
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn round_once(v: f64) -> Self {
        bf16::from_bits(f64_to_bf16_bits(v))
    }
    fn round_like_torch(v: f64) -> Self {
        bf16::from_f32(v as f32)
    }
}

// ---------------------------------------------------------------------------------------
// Our own f64 evaluation of the documented formula
// ---------------------------------------------------------------------------------------

/// Quark's rotation in f64 with sequential dot products (k = 0..r-1, starting from 0, no
/// FMA), as reference BLAS computes `reshape(...) @ R`:
/// in:  W_out[i, b*r + j] = sum_k W[i, b*r + k] * R[k][j];
/// out: W_out[b*r + j, c] = sum_k W[b*r + k, c] * R[k][j].
fn f64_rotate(
    out_channels: bool,
    w: &[f64],
    out_features: usize,
    in_features: usize,
    rot: &[f64],
    r: usize,
) -> Vec<f64> {
    let mut y = vec![0.0f64; w.len()];
    if out_channels {
        for b in 0..out_features / r {
            for c in 0..in_features {
                for j in 0..r {
                    let mut s = 0.0f64;
                    for k in 0..r {
                        s += w[(b * r + k) * in_features + c] * rot[k * r + j];
                    }
                    y[(b * r + j) * in_features + c] = s;
                }
            }
        }
    } else {
        for i in 0..out_features {
            for b in 0..in_features / r {
                for j in 0..r {
                    let mut s = 0.0f64;
                    for k in 0..r {
                        s += w[i * in_features + b * r + k] * rot[k * r + j];
                    }
                    y[i * in_features + b * r + j] = s;
                }
            }
        }
    }
    y
}

/// The bias of rotate_out_channels2: b_out[b*r + j] = sum_k b[b*r + k] * R[k][j].
fn f64_rotate_bias(b: &[f64], rot: &[f64], r: usize) -> Vec<f64> {
    f64_rotate(true, b, b.len(), 1, rot, r)
}

/// sum_k |W_k| |R_kj| for every output element (the scale of the rounding errors).
fn f64_abs_rotate(
    out_channels: bool,
    w: &[f64],
    out_features: usize,
    in_features: usize,
    rot: &[f64],
    r: usize,
) -> Vec<f64> {
    let wa: Vec<f64> = w.iter().map(|v| v.abs()).collect();
    let ra: Vec<f64> = rot.iter().map(|v| v.abs()).collect();
    f64_rotate(out_channels, &wa, out_features, in_features, &ra, r)
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

#[derive(Default, Debug, Clone)]
struct Stats {
    elements: usize,
    identical: usize,
    max_ulp: u64,
    /// Differences where Quark's f64 -> f32 -> dtype differs from the single rounding of
    /// the exact (sequential f64) sum, i.e. explained by torch's double rounding.
    double_rounding: usize,
    /// Examples of differing elements, for the report.
    examples: Vec<String>,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.elements += other.elements;
        self.identical += other.identical;
        self.max_ulp = self.max_ulp.max(other.max_ulp);
        self.double_rounding += other.double_rounding;
        for e in &other.examples {
            if self.examples.len() < 8 {
                self.examples.push(e.clone());
            }
        }
    }

    fn fraction(&self) -> f64 {
        if self.elements == 0 {
            1.0
        } else {
            self.identical as f64 / self.elements as f64
        }
    }

    fn line(&self) -> String {
        format!(
            "{}/{} bit-identical ({:.5}%), max {} ulp, {} of the differences are torch's double rounding",
            self.identical,
            self.elements,
            100.0 * self.fraction(),
            self.max_ulp,
            self.double_rounding
        )
    }
}

/// Compare `got` with Quark's `want`; `exact` is our own sequential f64 value of each
/// element (to classify differences).
fn compare<T: TestElem>(what: &str, got: &[T], want: &[T], exact: &[f64]) -> Stats {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut s = Stats::default();
    for (i, ((&g, &q), &e)) in got.iter().zip(want).zip(exact).enumerate() {
        s.elements += 1;
        if g.bits() == q.bits() {
            s.identical += 1;
            continue;
        }
        let d = T::ulps(g, q);
        s.max_ulp = s.max_ulp.max(d);
        let torch_double = T::round_like_torch(e).bits() != T::round_once(e).bits();
        if torch_double {
            s.double_rounding += 1;
        }
        if s.examples.len() < 8 {
            s.examples.push(format!(
                "{what}[{i}]: ours {g:?} (bits {:#x}) Quark {q:?} (bits {:#x}) exact f64 {e:e}, {d} ulp{}",
                g.bits(),
                q.bits(),
                if torch_double {
                    " (torch double rounding)"
                } else {
                    ""
                }
            ));
        }
    }
    s
}

/// Run one case through the public API with `rotation` and `flags`; returns (weight, bias).
fn run_rotation<T: TestElem>(
    c: &RotCase,
    w: &[T],
    bias: Option<&[T]>,
    rotation: &Rotation<'_>,
    flags: u32,
) -> (Vec<T>, Option<Vec<T>>) {
    let mut w = w.to_vec();
    let mut b = bias.map(<[T]>::to_vec);
    let res = if c.out_channels {
        rotate_out_channels(
            &mut w,
            c.out_features,
            c.in_features,
            c.in_features,
            b.as_deref_mut(),
            rotation,
            flags,
        )
    } else {
        assert!(b.is_none());
        rotate_in_channels(
            &mut w,
            c.out_features,
            c.in_features,
            c.in_features,
            rotation,
            flags,
        )
    };
    res.unwrap_or_else(|e| panic!("{}: flags {flags:#x}: {e}", c.id));
    (w, b)
}

/// Statistics of one dtype: (weights, biases).
#[derive(Default, Debug)]
struct DtypeStats {
    cases: usize,
    weight: Stats,
    bias: Stats,
}

/// One f32 / f16 / bf16 case: dense (f64 mode), parallel, and, for "had" cases, the
/// Hadamard path. Adds to `dense` and `had_path` statistics.
fn check_case<T: TestElem>(c: &RotCase, dense: &mut DtypeStats, had_path: &mut DtypeStats) {
    assert_eq!(T::NAME, c.dtype);
    let w = T::load(&c.weight_file);
    let want_w = T::load(&c.weight_out_file);
    let bias = c.bias_file.as_deref().map(T::load);
    let want_b = c.bias_out_file.as_deref().map(T::load);
    let rot = read_reference_f64(&c.rotation_file);
    let r = c.r;

    // Our exact reference, to classify differences (and a sanity check of the reading of
    // the formula: torch's rounding of it must give Quark's bits).
    let wf: Vec<f64> = w.iter().map(|v| v.to_f64()).collect();
    let exact_w = f64_rotate(c.out_channels, &wf, c.out_features, c.in_features, &rot, r);
    let exact_b = bias.as_ref().map(|b| {
        let bf: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
        f64_rotate_bias(&bf, &rot, r)
    });
    for (i, (&e, &q)) in exact_w.iter().zip(&want_w).enumerate() {
        assert_eq!(
            T::round_like_torch(e).bits(),
            q.bits(),
            "{}: our emulation of Quark (sequential f64, f64 -> f32 -> {}) disagrees at weight[{i}]",
            c.id,
            T::NAME
        );
    }
    if let (Some(eb), Some(qb)) = (&exact_b, &want_b) {
        for (i, (&e, &q)) in eb.iter().zip(qb).enumerate() {
            assert_eq!(
                T::round_like_torch(e).bits(),
                q.bits(),
                "{}: emulation disagrees at bias[{i}]",
                c.id
            );
        }
    }

    let dense_rot = Rotation::Dense { matrix: &rot, n: r };
    let (gw, gb) = run_rotation(c, &w, bias.as_deref(), &dense_rot, 0);
    let sw = compare(&format!("{} weight", c.id), &gw, &want_w, &exact_w);
    dense.weight.add(&sw);
    if let (Some(gb), Some(qb), Some(eb)) = (&gb, &want_b, &exact_b) {
        dense
            .bias
            .add(&compare(&format!("{} bias", c.id), gb, qb, eb));
    }
    dense.cases += 1;

    // FLAG_PARALLEL: the same bits as the serial call.
    let (pw, pb) = run_rotation(c, &w, bias.as_deref(), &dense_rot, FLAG_PARALLEL);
    for (i, (a, b)) in pw.iter().zip(&gw).enumerate() {
        assert_eq!(
            a.bits(),
            b.bits(),
            "{}: FLAG_PARALLEL weight[{i}] differs from the serial result",
            c.id
        );
    }
    if let (Some(pb), Some(gb)) = (&pb, &gb) {
        for (i, (a, b)) in pb.iter().zip(gb).enumerate() {
            assert_eq!(
                a.bits(),
                b.bits(),
                "{}: FLAG_PARALLEL bias[{i}] differs from the serial result",
                c.id
            );
        }
    }

    // "had": R is get_rotation_matrix(r, random=False) = kron(H_m, H_K) / sqrt(r).
    if c.kind == "had" {
        let h = HadamardRotation {
            n: r,
            layout: HadamardLayout::KronPow2K,
            signs: None,
            scale: 1.0 / (r as f64).sqrt(),
        };
        let mut formed = vec![0.0f64; r * r];
        hadamard_matrix(&mut formed, &h).unwrap();
        let max_diff = formed
            .iter()
            .zip(&rot)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        assert!(
            max_diff <= 1e-15,
            "{}: stored R differs from hadamard_matrix(KronPow2K, 1/sqrt({r})) by {max_diff:e}",
            c.id
        );
        let had_rot = Rotation::Hadamard(h);
        let (hw, hb) = run_rotation(c, &w, bias.as_deref(), &had_rot, 0);
        had_path.weight.add(&compare(
            &format!("{} weight (Hadamard)", c.id),
            &hw,
            &want_w,
            &exact_w,
        ));
        if let (Some(hb), Some(qb), Some(eb)) = (&hb, &want_b, &exact_b) {
            had_path
                .bias
                .add(&compare(&format!("{} bias (Hadamard)", c.id), hb, qb, eb));
        }
        had_path.cases += 1;
        let (phw, phb) = run_rotation(c, &w, bias.as_deref(), &had_rot, FLAG_PARALLEL);
        assert!(
            phw.iter().zip(&hw).all(|(a, b)| a.bits() == b.bits()),
            "{}: Hadamard path, FLAG_PARALLEL weight differs from serial",
            c.id
        );
        if let (Some(a), Some(b)) = (&phb, &hb) {
            assert!(
                a.iter().zip(b).all(|(a, b)| a.bits() == b.bits()),
                "{}: Hadamard path, FLAG_PARALLEL bias differs from serial",
                c.id
            );
        }
    }
}

/// The f64-weight cases. We have no f64 element type, so:
/// 1. our own sequential f64 evaluation of the formula must equal Quark's f64 output bit
///    for bit (this pins down the semantics: block layout, R vs R^T, bias);
/// 2. the library rotates the f32-rounded weight (dense R, f64 mode) and must be within the
///    error that rounding the input and the output to f32 implies:
///    |ours - Quark| <= 2^-24 * (sum_k |W_k||R_kj| + |Quark|) (+ f64 slop).
///
/// Returns the worst |ours - Quark| / bound seen.
fn check_f64_case(c: &RotCase) -> f64 {
    let w = read_reference_f64(&c.weight_file);
    let want_w = read_reference_f64(&c.weight_out_file);
    let rot = read_reference_f64(&c.rotation_file);
    let exact = f64_rotate(c.out_channels, &w, c.out_features, c.in_features, &rot, c.r);
    for (i, (e, q)) in exact.iter().zip(&want_w).enumerate() {
        assert_eq!(
            e.to_bits(),
            q.to_bits(),
            "{}: own f64 evaluation {e:e} != Quark {q:e} at weight[{i}]",
            c.id
        );
    }
    let (bias, want_b) = match (&c.bias_file, &c.bias_out_file) {
        (Some(b), Some(bo)) => (Some(read_reference_f64(b)), Some(read_reference_f64(bo))),
        _ => (None, None),
    };
    if let (Some(b), Some(qb)) = (&bias, &want_b) {
        let eb = f64_rotate_bias(b, &rot, c.r);
        for (i, (e, q)) in eb.iter().zip(qb).enumerate() {
            assert_eq!(
                e.to_bits(),
                q.to_bits(),
                "{}: own f64 evaluation {e:e} != Quark {q:e} at bias[{i}]",
                c.id
            );
        }
    }

    // The library on the f32-rounded input.
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let b32: Option<Vec<f32>> = bias.as_ref().map(|b| b.iter().map(|&v| v as f32).collect());
    let dense = Rotation::Dense {
        matrix: &rot,
        n: c.r,
    };
    let (gw, gb) = run_rotation(c, &w32, b32.as_deref(), &dense, 0);
    let mag = f64_abs_rotate(c.out_channels, &w, c.out_features, c.in_features, &rot, c.r);
    let u = 2f64.powi(-24);
    let mut worst = 0.0f64;
    let mut check = |what: &str, got: &[f32], want: &[f64], mag: &[f64]| {
        for (i, ((&g, &q), &m)) in got.iter().zip(want).zip(mag).enumerate() {
            let bound = u * (m + q.abs()) * (1.0 + 1e-6) + 1e-300;
            let d = (f64::from(g) - q).abs();
            assert!(
                d <= bound,
                "{} ({what}[{i}]): library on f32(W) gives {g:e}, Quark f64 {q:e}: |diff| {d:e} > bound {bound:e}",
                c.id
            );
            worst = worst.max(d / bound);
        }
    };
    check("weight", &gw, &want_w, &mag);
    if let (Some(gb), Some(qb), Some(b)) = (&gb, &want_b, &bias) {
        let bm = f64_abs_rotate(true, b, b.len(), 1, &rot, c.r);
        check("bias", gb, qb, &bm);
    }
    worst
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn inventory_of_rotate_cases() {
    let cases = load_rotate_cases();
    assert_eq!(cases.len(), N_ROTATE_CASES);
    assert_eq!(
        cases.iter().filter(|c| !c.out_channels).count(),
        N_ROTATE_IN
    );
    assert_eq!(
        cases.iter().filter(|c| c.out_channels).count(),
        N_ROTATE_OUT
    );
    for (d, n) in N_PER_DTYPE {
        assert_eq!(
            cases.iter().filter(|c| c.dtype == d).count(),
            n,
            "cases of dtype {d}"
        );
    }
    assert_eq!(
        cases.iter().filter(|c| c.bias_file.is_some()).count(),
        N_WITH_BIAS
    );
    assert_eq!(cases.iter().filter(|c| c.kind == "had").count(), N_HAD);
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.kind != "had" && c.kind != "orth")
            .count(),
        0
    );
    // Full, blockwise and GQA cases are all present.
    assert!(cases
        .iter()
        .any(|c| c.r == c.in_features && !c.out_channels));
    assert!(cases
        .iter()
        .any(|c| c.r == c.out_features && c.out_channels));
    assert!(cases.iter().any(|c| c.r < c.in_features && !c.out_channels));
    assert!(cases.iter().any(|c| c.r < c.out_features && c.out_channels));
    assert_eq!(cases.iter().filter(|c| c.id.contains("_gqa_")).count(), 8);
    let ids: std::collections::HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
}

/// Every rotate case, on the active instruction set.
#[test]
fn rotate_channels_match_quark() {
    let active = quarot::dispatch::active_isa().expect("active instruction set");
    if let Ok(expect) = std::env::var(CHILD_ISA_ENV) {
        assert_eq!(
            active.name(),
            expect,
            "child process runs on the wrong instruction set"
        );
    }
    // More parts than cores, so FLAG_PARALLEL splits unevenly.
    quarot::set_num_threads(3).unwrap();
    let cases = load_rotate_cases();
    let mut dense: BTreeMap<String, DtypeStats> = BTreeMap::new();
    let mut had: BTreeMap<String, DtypeStats> = BTreeMap::new();
    let mut f64_cases = 0;
    let mut f64_worst = 0.0f64;
    for c in &cases {
        let d = dense.entry(c.dtype.clone()).or_default();
        let h = had.entry(c.dtype.clone()).or_default();
        match c.dtype.as_str() {
            "f32" => check_case::<f32>(c, d, h),
            "f16" => check_case::<f16>(c, d, h),
            "bf16" => check_case::<bf16>(c, d, h),
            "f64" => {
                f64_worst = f64_worst.max(check_f64_case(c));
                f64_cases += 1;
            }
            other => panic!("{}: unexpected dtype {other}", c.id),
        }
    }
    let n_checked: usize = dense.values().map(|d| d.cases).sum::<usize>() + f64_cases;
    assert_eq!(n_checked, N_ROTATE_CASES, "every case was checked");
    assert_eq!(f64_cases, 9);
    assert_eq!(
        had.values().map(|d| d.cases).sum::<usize>(),
        N_HAD - 4,
        "Hadamard-path runs (the 4 f64 'had' cases have no f64 element type)"
    );

    eprintln!("instruction set: {}", active.name());
    eprintln!(
        "f64 weights (9 cases): own f64 evaluation bit-identical to Quark; library on f32(W): worst |diff|/bound = {f64_worst:.3}"
    );
    let mut failures = Vec::new();
    for (label, table) in [("dense R", &dense), ("Hadamard path", &had)] {
        for (dtype, s) in table.iter().filter(|(_, s)| s.cases > 0) {
            let mut all = s.weight.clone();
            all.add(&s.bias);
            eprintln!(
                "{label}, {dtype} ({} cases): weights {}; biases {}; together {}",
                s.cases,
                s.weight.line(),
                s.bias.line(),
                all.line()
            );
            for e in &all.examples {
                eprintln!("    {e}");
            }
            // The bar: ALL within 1 ulp; >= 99.9% bit-identical over the weights and over
            // weights and biases together. (A bias-only fraction is not meaningful: one
            // dtype has at most 224 bias elements, so a single allowed 1-ulp difference would
            // already be 0.45%; biases are held to the 1-ulp bar and count in the total.)
            if all.max_ulp > 1 {
                failures.push(format!(
                    "{label} {dtype}: max {} ulp > 1; {:?}",
                    all.max_ulp, all.examples
                ));
            }
            if s.weight.fraction() < MIN_IDENTICAL || all.fraction() < MIN_IDENTICAL {
                failures.push(format!(
                    "{label} {dtype}: only {:.5}% (weights) / {:.5}% (all) bit-identical; {:?}",
                    100.0 * s.weight.fraction(),
                    100.0 * all.fraction(),
                    all.examples
                ));
            }
        }
    }
    // Every dtype we support was reached, with biases.
    for d in ["f32", "f16", "bf16"] {
        assert!(
            dense[d].weight.elements > 0 && dense[d].bias.elements > 0,
            "{d}"
        );
        assert!(
            had[d].weight.elements > 0 && had[d].bias.elements > 0,
            "{d}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `rotate_channels_match_quark` again in a child process for each other available
/// instruction set (the rotation API uses the process-wide active set, chosen once from
/// `QUAROT_ISA`).
#[test]
fn quark_cases_on_every_isa() {
    if std::env::var_os(CHILD_ISA_ENV).is_some() {
        return; // a child runs only the test it was asked for
    }
    let active = quarot::dispatch::active_isa().expect("active instruction set");
    let exe = std::env::current_exe().unwrap();
    let mut ran = vec![active.name()];
    for isa in available_isas() {
        if isa == active {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "rotate_channels_match_quark",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("QUAROT_ISA", isa.name())
            .env(CHILD_ISA_ENV, isa.name())
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("--- QUAROT_ISA={}:\n{stderr}", isa.name());
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "rotate_channels_match_quark with QUAROT_ISA={} failed ({}):\n{stdout}\n{stderr}",
            isa.name(),
            out.status
        );
        ran.push(isa.name());
    }
    assert!(
        ran.contains(&Isa::Scalar.name()),
        "the scalar path must run"
    );
    eprintln!("rotate_channels_match_quark ran on: {}", ran.join(", "));
}

/// `get_rotation_matrix(n, random=False)` (0.9) = kron(H_m, H_K) / sqrt_f64(n).
#[test]
fn get_rotation_matrix_matches_quark() {
    let mut checked = 0;
    let mut worst = 0.0f64;
    for c in load_reference_manifest() {
        if c["func"] != "get_rotation_matrix" {
            continue;
        }
        let id = c["id"].as_str().unwrap();
        assert_eq!(c["quark_version"], "0.9", "{id}");
        assert_eq!(c["params"]["random"], false, "{id}");
        let n = c["params"]["n"].as_u64().unwrap() as usize;
        let k = c["params"]["K"].as_u64().unwrap() as usize;
        assert_eq!(quarot::hadamard_k(n), Some(k), "{id}: K");
        let a = &c["arrays"]["R"];
        check_file(id, a);
        assert_eq!(shape_of(a), vec![n, n], "{id}");
        let want = read_reference_f64(a["file"].as_str().unwrap());
        let mut got = vec![f64::NAN; n * n];
        hadamard_matrix(
            &mut got,
            &HadamardRotation {
                n,
                layout: HadamardLayout::KronPow2K,
                signs: None,
                scale: 1.0 / (n as f64).sqrt(),
            },
        )
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        let exact = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        eprintln!(
            "{id}: max |ours - Quark| = {max_diff:e}, {exact}/{} entries bit-identical",
            n * n
        );
        assert!(max_diff <= 1e-15, "{id}: max |diff| {max_diff:e} > 1e-15");
        worst = worst.max(max_diff);
        checked += 1;
    }
    assert_eq!(checked, 3, "get_rotation_matrix cases (n = 48, 64, 80)");
    eprintln!("get_rotation_matrix: worst max |diff| {worst:e}");
}

/// `torch.manual_seed(seed); random_hadamard_matrix(n)`: 0.9 = diag(s) kron(H_K, H_m)^T /
/// f32(sqrt n) (layout MatmulHadU), 0.13 = diag(s) kron(H_K, H_m) / f32(sqrt n)
/// (MatmulHadUTransposed); the signs are torch's CPU mt19937 draw.
#[test]
fn random_hadamard_matrix_matches_quark() {
    let mut checked = 0;
    let mut seeds = std::collections::BTreeSet::new();
    let mut versions = std::collections::BTreeSet::new();
    for c in load_reference_manifest() {
        if c["func"] != "random_hadamard_matrix" {
            continue;
        }
        let id = c["id"].as_str().unwrap();
        let version = c["quark_version"].as_str().unwrap();
        let layout = match version {
            "0.9" => HadamardLayout::MatmulHadU,
            "0.13" => HadamardLayout::MatmulHadUTransposed,
            v => panic!("{id}: unexpected version {v}"),
        };
        let p = &c["params"];
        let n = p["n"].as_u64().unwrap() as usize;
        let seed = p["seed"].as_u64().unwrap();
        assert_eq!(
            quarot::hadamard_k(n),
            Some(p["K"].as_u64().unwrap() as usize),
            "{id}: K"
        );
        let (sa, ra) = (&c["arrays"]["signs"], &c["arrays"]["R"]);
        check_file(id, sa);
        check_file(id, ra);
        assert_eq!(sa["dtype"], "i8", "{id}");
        assert_eq!(shape_of(sa), vec![n], "{id}");
        assert_eq!(shape_of(ra), vec![n, n], "{id}");
        let signs = read_reference_i8(sa["file"].as_str().unwrap());
        let want = read_reference_f64(ra["file"].as_str().unwrap());

        // torch compatibility of the sign draw.
        let mut ours = vec![0i8; n];
        random_signs(&mut ours, seed);
        assert_eq!(
            ours, signs,
            "{id}: random_signs(seed = {seed}) differs from torch's draw"
        );

        let mut got = vec![f64::NAN; n * n];
        hadamard_matrix(
            &mut got,
            &HadamardRotation {
                n,
                layout,
                signs: Some(&signs),
                scale: quark_hadamard_scale(n),
            },
        )
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        let exact = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        eprintln!(
            "{id}: layout {layout:?}, max |ours - Quark| = {max_diff:e}, {exact}/{} entries bit-identical",
            n * n
        );
        assert!(max_diff <= 1e-15, "{id}: max |diff| {max_diff:e} > 1e-15");
        checked += 1;
        seeds.insert(seed);
        versions.insert(version.to_string());
    }
    assert_eq!(checked, 9, "random_hadamard_matrix cases");
    assert_eq!(seeds.into_iter().collect::<Vec<_>>(), vec![0, 42]);
    assert_eq!(versions.len(), 2);
}

/// The errors.json entries about weight rotation and rotation matrices: where Quark
/// silently produces garbage (an r that does not divide in_features) or raises, we refuse,
/// leaving the data alone.
#[test]
fn reference_error_entries() {
    let path = reference_dir().join("errors.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for e in &entries {
        let id = e["id"].as_str().unwrap();
        match id {
            "rotate_in_channels2_q09_indivisible" => {
                // Quark: nn.Linear(60, 4) with eye(16) "works" (reshape garbage).
                assert!(e["raised"].is_null(), "{id}");
                let (inf, r) = (
                    e["params"]["in_features"].as_u64().unwrap() as usize,
                    e["params"]["rotation_size"].as_u64().unwrap() as usize,
                );
                let mut eye = vec![0.0f64; r * r];
                for i in 0..r {
                    eye[i * r + i] = 1.0;
                }
                let mut w: Vec<f32> = (0..4 * inf).map(|i| i as f32 * 0.25 - 3.0).collect();
                let before = w.clone();
                let err = rotate_in_channels(
                    &mut w,
                    4,
                    inf,
                    inf,
                    &Rotation::Dense { matrix: &eye, n: r },
                    0,
                )
                .unwrap_err();
                assert_eq!(err.status, Status::InvalidArgument, "{id}: {err}");
                assert!(
                    err.message.contains("in_features = 60"),
                    "{id}: {}",
                    err.message
                );
                assert_eq!(w, before, "{id}: weight changed");
                checked += 1;
            }
            "get_rotation_matrix_q09_n100" => {
                // Quark has no H_100 and raises; libquarot builds one (K = 100, Paley II
                // over GF(49), README "Widths beyond QuaRot's table"): an orthogonal R.
                assert_eq!(e["raised"], "AssertionError", "{id}");
                let mut out = vec![7.0f64; 100 * 100];
                hadamard_matrix(
                    &mut out,
                    &HadamardRotation {
                        n: 100,
                        layout: HadamardLayout::KronPow2K,
                        signs: None,
                        scale: 0.1,
                    },
                )
                .expect("K = 100 is constructed");
                for i in 0..100 {
                    for j in 0..100 {
                        let d: f64 = (0..100).map(|t| out[i * 100 + t] * out[j * 100 + t]).sum();
                        let want = if i == j { 1.0 } else { 0.0 };
                        assert!((d - want).abs() < 1e-12, "{id}: R R^T [{i}][{j}] = {d}");
                    }
                }
                // Still an error for a width nothing constructs (Quark raises too).
                let mut out = vec![7.0f64; 50 * 50];
                let err = hadamard_matrix(
                    &mut out,
                    &HadamardRotation {
                        n: 50,
                        layout: HadamardLayout::KronPow2K,
                        signs: None,
                        scale: 0.1,
                    },
                )
                .unwrap_err();
                assert_eq!(err.status, Status::UnsupportedSize, "{id}: {err}");
                assert!(out.iter().all(|&v| v == 7.0), "{id}: out written");
                checked += 1;
            }
            "random_hadamard_matrix_q09_n64" => {
                // Quark 0.9 fails for power-of-two n; the matrix is still well defined
                // (K = 1) and we build it: diag(s) H_64 / 8.
                assert_eq!(e["raised"], "AssertionError", "{id}");
                let mut s = vec![0i8; 64];
                random_signs(&mut s, 0);
                let mut out = vec![0.0f64; 64 * 64];
                hadamard_matrix(
                    &mut out,
                    &HadamardRotation {
                        n: 64,
                        layout: HadamardLayout::MatmulHadU,
                        signs: Some(&s),
                        scale: quark_hadamard_scale(64),
                    },
                )
                .unwrap();
                assert!(out.iter().all(|&v| v.abs() == 0.125), "{id}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 3);
}
