//! Build script of quarot-bench.
//!
//! 1. FFHT (FALCONN's Fast Fast Hadamard Transform) as a C library: the sources are those
//!    of the PyPI sdist `FFHT-unofficial 0.3` (pinned by sha256), compiled with the `cc`
//!    crate exactly as its setup.py compiles them for the Python module (`-O3
//!    -march=native`), but without pybind11, numpy or OpenMP: the bench calls `fht_float`
//!    row by row, with no Python in between. Where the sdist comes from, first match wins:
//!    `QUAROT_BENCH_FFHT_SDIST` (a path to the .tar.gz), the copy cached by an earlier build
//!    under `<target>/quarot-bench-ffht/`, then a download from files.pythonhosted.org
//!    (curl, else wget). Everything fails soft: no network, a wrong checksum, no C compiler,
//!    a target other than x86_64 (FFHT's kernels are x86 assembly) or
//!    `QUAROT_BENCH_NO_FFHT=1` leave the crate without the `ffht` cfg, and the bench then
//!    prints "FFHT: not installed (<why>)".
//! 2. A fingerprint (FNV-1a) of libquarot's sources (`../../src`) at build time, printed
//!    by the bench next to the git commit: the kernels are tuned concurrently, so the
//!    figures must say which code they are of.

use sha2::{Digest, Sha256};
use std::env;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const FFHT_VERSION: &str = "0.3";
const FFHT_SDIST: &str = "FFHT-unofficial-0.3.tar.gz";
const FFHT_URL: &str = "https://files.pythonhosted.org/packages/d8/9e/e384f7128645766c9842f7f82211946f164ef685b6cebfbc678e7985c0b1/FFHT-unofficial-0.3.tar.gz";
const FFHT_SHA256: &str = "fca77acd9a0580390965a08e36ca5124e13239e0238eaf2ad07de927f8fead14";
/// The files of `FFHT-unofficial-0.3/ffht/` the C library needs (fht.c includes
/// fht_impl.h, which includes fht_avx.c or fht_sse.c).
const FFHT_FILES: [&str; 7] = [
    "fht.c",
    "fht.h",
    "fht_impl.h",
    "fht_avx.c",
    "fht_sse.c",
    "fast_copy.c",
    "fast_copy.h",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ffht)");
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["QUAROT_BENCH_FFHT_SDIST", "QUAROT_BENCH_NO_FFHT"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    let src = manifest_dir.join("../../src");
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rustc-env=QUAROT_BENCH_SRC_FNV={}",
        fingerprint(&src).unwrap_or_else(|| "unknown".into())
    );

    let info = match ffht(&out_dir) {
        Ok(info) => {
            println!("cargo:rustc-cfg=ffht");
            info
        }
        Err(why) => {
            // Expected on other architectures and when disabled; worth a warning otherwise.
            if !why.starts_with("FFHT's kernels are x86")
                && !why.starts_with("QUAROT_BENCH_NO_FFHT")
            {
                println!("cargo:warning=FFHT peer not built: {why}");
            }
            format!("not installed ({why})")
        }
    };
    println!("cargo:rustc-env=QUAROT_BENCH_FFHT_INFO={info}");
}

// ------------------------------------------------------------------------------ FFHT

fn ffht(out_dir: &Path) -> Result<String, String> {
    if env::var_os("QUAROT_BENCH_NO_FFHT").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err("QUAROT_BENCH_NO_FFHT is set".into());
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        return Err(format!(
            "FFHT's kernels are x86 assembly; target arch is {arch}"
        ));
    }
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return Err("cross build".into());
    }
    let sdist = sdist(out_dir)?;
    let dir = out_dir.join("ffht-src");
    extract(&sdist, &dir)?;

    let mut build = cc::Build::new();
    build
        .files([dir.join("fht.c"), dir.join("fast_copy.c")])
        .include(&dir)
        .opt_level(3)
        .debug(false)
        .warnings(false)
        .cargo_warnings(false);
    // setup.py's flags: -march=native -O3 (FFHT picks AVX or SSE at compile time).
    build.flag_if_supported("-march=native");
    let compiler = build
        .try_get_compiler()
        .map_err(|e| format!("no C compiler: {e}"))?;
    let version = Command::new(compiler.path())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| compiler.path().display().to_string());
    build
        .try_compile("quarot_bench_ffht")
        .map_err(|e| format!("compiling FFHT failed: {e}"))?;
    // The optimization level and the -march that wins (gcc takes the last one; cc puts
    // its target default first).
    let args: Vec<String> = compiler
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let flags: Vec<String> = ["-O", "-march"]
        .iter()
        .filter_map(|p| args.iter().rev().find(|a| a.starts_with(p)).cloned())
        .collect();
    Ok(format!(
        "FFHT-unofficial {FFHT_VERSION} C sources (PyPI sdist {FFHT_SDIST}, sha256 {}...), fht.c + fast_copy.c built by the cc crate with {version}, {}",
        &FFHT_SHA256[..16],
        flags.join(" ")
    ))
}

/// The pinned sdist, verified, from the first source that has it.
fn sdist(out_dir: &Path) -> Result<PathBuf, String> {
    let verified = |path: &Path| -> Result<(), String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got == FFHT_SHA256 {
            Ok(())
        } else {
            Err(format!(
                "{} has sha256 {got}, expected {FFHT_SHA256}",
                path.display()
            ))
        }
    };
    if let Some(path) = env::var_os("QUAROT_BENCH_FFHT_SDIST") {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        verified(&path)?;
        return Ok(path);
    }
    let cache = cache_dir(out_dir);
    let cached = cache.join(FFHT_SDIST);
    if cached.is_file() {
        match verified(&cached) {
            Ok(()) => return Ok(cached),
            Err(e) => println!("cargo:warning=ignoring {e}"),
        }
    }
    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let partial = cache.join(format!("{FFHT_SDIST}.{}.part", std::process::id()));
    let result = download(FFHT_URL, &partial).and_then(|()| verified(&partial));
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        return Err(format!("could not get {FFHT_URL}: {e}"));
    }
    fs::rename(&partial, &cached).map_err(|e| format!("cannot move the download: {e}"))?;
    Ok(cached)
}

/// `<target>/quarot-bench-ffht` (shared by all profiles), or OUT_DIR if the layout is not
/// the usual `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`.
fn cache_dir(out_dir: &Path) -> PathBuf {
    let mut up = out_dir.ancestors();
    match (up.nth(2), up.nth(1)) {
        (Some(build), Some(target)) if build.file_name().is_some_and(|n| n == "build") => {
            target.join("quarot-bench-ffht")
        }
        _ => out_dir.join("quarot-bench-ffht"),
    }
}

fn download(url: &str, dest: &Path) -> Result<(), String> {
    let dest = dest.to_str().ok_or("cache path is not UTF-8")?;
    let tools: [(&str, &[&str]); 2] = [
        (
            "curl",
            &[
                "-fsSL",
                "--retry",
                "2",
                "--connect-timeout",
                "20",
                "--max-time",
                "120",
                "-o",
                dest,
                url,
            ],
        ),
        (
            "wget",
            &["-q", "--tries=2", "--timeout=20", "-O", dest, url],
        ),
    ];
    let mut failures = Vec::new();
    for (tool, args) in tools {
        match Command::new(tool).args(args).status() {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => failures.push(format!("{tool} failed ({status})")),
            Err(e) => failures.push(format!("{tool}: {e}")),
        }
    }
    Err(failures.join("; "))
}

/// Unpack the files of FFHT_FILES from `FFHT-unofficial-0.3/ffht/` into `dest`.
fn extract(sdist: &Path, dest: &Path) -> Result<(), String> {
    let file =
        fs::File::open(sdist).map_err(|e| format!("cannot open {}: {e}", sdist.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    let prefix = Path::new(FFHT_SDIST.trim_end_matches(".tar.gz")).join("ffht");
    let mut found = 0;
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar.gz: {e}"))?
    {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Ok(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let Some(name) = rel.to_str().filter(|n| FFHT_FILES.contains(n)) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        fs::write(dest.join(name), bytes).map_err(|e| e.to_string())?;
        found += 1;
    }
    if found == FFHT_FILES.len() {
        Ok(())
    } else {
        Err(format!(
            "the sdist holds {found} of the {} FFHT files",
            FFHT_FILES.len()
        ))
    }
}

// ------------------------------------------------------------------------------ sources

/// FNV-1a over the relative paths and contents of every file under `dir`, sorted.
fn fingerprint(dir: &Path) -> Option<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in &files {
        eat(f.strip_prefix(dir).ok()?.to_string_lossy().as_bytes());
        eat(&fs::read(f).ok()?);
    }
    Some(format!("{h:016x} ({} files)", files.len()))
}
