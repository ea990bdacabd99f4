//! Build script of quarot-ggml: gets the pinned ggml sources, then compiles ggml's core and
//! CPU backend and the C glue (`c/quarot_ggml.c`) with the `cc` crate into one static
//! archive (no cmake, no bindgen).
//!
//! The ggml sources (ggml 0.26.0) are those vendored in the crates.io crate
//! `llama-cpp-sys-2 =0.1.161`, used only as a source tarball: depending on it as a crate
//! would run its build script, which builds all of llama.cpp with cmake and bindgen.
//! Where they come from, first match wins:
//! 1. `QUAROT_GGML_SRC`: an existing `llama.cpp/ggml` directory (used as is, unchecked);
//! 2. sources extracted by an earlier build, under `<target>/quarot-ggml-src/`;
//! 3. the crate file, from `QUAROT_GGML_CRATE`, from that cache, or from cargo's registry
//!    cache (`$CARGO_HOME/registry/cache/*/`);
//! 4. a download from static.crates.io (curl, else wget).
//!
//! Every crate file must match the pinned sha256 before anything in it is used.

use sha2::{Digest, Sha256};
use std::env;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const CRATE_NAME: &str = "llama-cpp-sys-2";
const CRATE_VERSION: &str = "0.1.161";
const CRATE_SHA256: &str = "e9bea77fde41bbc15a278891cd5edd2ba07c5260d162614b41080ba1f100b39b";
/// Where ggml sits inside the crate file.
const GGML_IN_CRATE: &str = "llama.cpp/ggml";
/// Written into a cache directory once it is completely extracted.
const COMPLETE_MARKER: &str = ".quarot-ggml-complete";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let quarot_include = manifest_dir.join("../../include");
    for path in [
        manifest_dir.join("build.rs"),
        manifest_dir.join("c/quarot_ggml.c"),
        manifest_dir.join("c/quarot_ggml.h"),
        quarot_include.join("quarot.h"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for var in ["QUAROT_GGML_SRC", "QUAROT_GGML_CRATE", "QUAROT_GGML_MARCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if let Err(missing) = compilers_available() {
        let target = env::var("TARGET").unwrap_or_default();
        if env::var("HOST").unwrap_or_default() != target {
            // CI checks the workspace for aarch64 without a cross compiler: the Rust side
            // only declares extern functions, so `cargo check` needs no native code.
            println!(
                "cargo:warning=no C/C++ compiler for {target} ({missing}): ggml and the glue \
                 are not built; `cargo check` works, linking for {target} will not"
            );
            let underscored = target.replace('-', "_");
            for var in ["CC", "CXX", "TARGET_CC", "TARGET_CXX"]
                .into_iter()
                .map(String::from)
                .chain(
                    ["CC", "CXX"]
                        .iter()
                        .flat_map(|v| [format!("{v}_{target}"), format!("{v}_{underscored}")]),
                )
            {
                println!("cargo:rerun-if-env-changed={var}");
            }
            return;
        }
        panic!("quarot-ggml needs a C and a C++ compiler: {missing}");
    }
    let ggml = ggml_sources(&out_dir);
    let generated = write_version_header(&ggml, &cache_dir(&out_dir));
    compile(
        &ggml,
        &generated,
        &manifest_dir.join("c"),
        &quarot_include,
        &out_dir,
    );
}

/// Whether the C and C++ compilers cc would use for TARGET run (`<compiler> --version`).
fn compilers_available() -> Result<(), String> {
    for cpp in [false, true] {
        let tool = cc::Build::new()
            .cpp(cpp)
            .cargo_warnings(false)
            .try_get_compiler()
            .map_err(|e| e.to_string())?;
        let runs = Command::new(tool.path())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs {
            return Err(format!("{} does not run", tool.path().display()));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ sources

fn ggml_sources(out_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("QUAROT_GGML_SRC") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("include/ggml.h").is_file() && dir.join("src/ggml.c").is_file(),
            "QUAROT_GGML_SRC={} is not a ggml source directory (no include/ggml.h, src/ggml.c)",
            dir.display()
        );
        println!("cargo:rerun-if-changed={}", dir.display());
        return dir;
    }

    let cache = cache_dir(out_dir);
    let stem = format!("{CRATE_NAME}-{CRATE_VERSION}");
    let extracted = cache.join(&stem).join("ggml");
    if extracted.join(COMPLETE_MARKER).is_file() {
        return extracted;
    }
    fs::create_dir_all(&cache)
        .unwrap_or_else(|e| panic!("cannot create the cache {}: {e}", cache.display()));
    let crate_file = crate_file(&cache, &stem);
    extract_ggml(&crate_file, &stem, &extracted);
    extracted
}

/// `<target>/quarot-ggml-src` (shared by every profile, so debug and release builds
/// download and extract once), or OUT_DIR if its layout is not the usual one.
fn cache_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR = <target>[/<triple>]/<profile>/build/quarot-ggml-<hash>/out
    let mut up = out_dir.ancestors();
    match (up.nth(2), up.nth(1)) {
        (Some(build), Some(target)) if build.file_name().is_some_and(|n| n == "build") => {
            target.join("quarot-ggml-src")
        }
        _ => out_dir.join("quarot-ggml-src"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A crate file whose sha256 matches, from the first source that has one.
fn crate_file(cache: &Path, stem: &str) -> PathBuf {
    let file_name = format!("{stem}.crate");
    let cached = cache.join(&file_name);
    let verified = |path: &Path| -> Result<(), String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let got = sha256_hex(&bytes);
        if got == CRATE_SHA256 {
            Ok(())
        } else {
            Err(format!(
                "{} has sha256 {got}, expected {CRATE_SHA256}",
                path.display()
            ))
        }
    };

    if let Some(path) = env::var_os("QUAROT_GGML_CRATE") {
        let path = PathBuf::from(path);
        if let Err(e) = verified(&path) {
            panic!("QUAROT_GGML_CRATE: {e}");
        }
        return path;
    }
    let mut candidates = vec![cached.clone()];
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(registries) = cargo_home.map(|h| h.join("registry/cache")) {
        if let Ok(entries) = fs::read_dir(registries) {
            candidates.extend(entries.flatten().map(|e| e.path().join(&file_name)));
        }
    }
    for path in candidates.iter().filter(|p| p.is_file()) {
        match verified(path) {
            Ok(()) => return path.clone(),
            Err(e) => println!("cargo:warning=ignoring {e}"),
        }
    }

    let url = format!("https://static.crates.io/crates/{CRATE_NAME}/{file_name}");
    let partial = cache.join(format!("{file_name}.{}.part", std::process::id()));
    if let Err(e) = download(&url, &partial) {
        let _ = fs::remove_file(&partial);
        panic!(
            "could not download the ggml sources from {url}: {e}.\n\
             Offline? Set QUAROT_GGML_CRATE to a copy of {file_name} (sha256 {CRATE_SHA256}) \
             or QUAROT_GGML_SRC to a llama.cpp/ggml directory."
        );
    }
    if let Err(e) = verified(&partial) {
        let _ = fs::remove_file(&partial);
        panic!("checksum of the download from {url} failed: {e}");
    }
    fs::rename(&partial, &cached)
        .unwrap_or_else(|e| panic!("cannot move the download to {}: {e}", cached.display()));
    cached
}

fn download(url: &str, dest: &Path) -> Result<(), String> {
    let dest = dest.to_str().ok_or("cache path is not UTF-8")?;
    let tools: [(&str, &[&str]); 2] = [
        (
            "curl",
            &[
                "-fsSL",
                "--retry",
                "3",
                "--connect-timeout",
                "30",
                "-o",
                dest,
                url,
            ],
        ),
        (
            "wget",
            &["-q", "--tries=3", "--timeout=30", "-O", dest, url],
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

/// Unpack `<stem>/llama.cpp/ggml/{CMakeLists.txt, include/, src/ (ggml-cpu only)}` into
/// `dest`, through a private temporary directory renamed at the end, so that concurrent
/// builds never see half a tree.
fn extract_ggml(crate_file: &Path, stem: &str, dest: &Path) {
    let parent = dest.parent().expect("cache layout");
    fs::create_dir_all(parent).expect("create the cache directory");
    let tmp = parent.join(format!(".ggml.{}.tmp", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let prefix = Path::new(stem).join(GGML_IN_CRATE);

    let file = fs::File::open(crate_file)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", crate_file.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = 0usize;
    for entry in archive
        .entries()
        .unwrap_or_else(|e| panic!("{} is not a gzipped tar: {e}", crate_file.display()))
    {
        let mut entry = entry.expect("read a crate entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("entry path").into_owned();
        let Ok(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        if !wanted(rel) {
            continue;
        }
        let target = tmp.join(rel);
        fs::create_dir_all(target.parent().expect("file has a parent")).expect("create dirs");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read a crate entry");
        fs::write(&target, bytes).expect("write an extracted file");
        files += 1;
    }
    assert!(
        tmp.join("include/ggml.h").is_file(),
        "{} has no {GGML_IN_CRATE}/include/ggml.h",
        crate_file.display()
    );
    fs::write(tmp.join(COMPLETE_MARKER), format!("{files} files\n")).expect("write marker");
    if fs::rename(&tmp, dest).is_err() {
        // Another build finished first; its tree is identical.
        let _ = fs::remove_dir_all(&tmp);
        assert!(
            dest.join(COMPLETE_MARKER).is_file(),
            "cannot move the extracted sources to {}",
            dest.display()
        );
    }
}

/// The part of ggml this build needs: headers, the core sources, the CPU backend.
fn wanted(rel: &Path) -> bool {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return false;
    }
    let parts: Vec<_> = rel.iter().filter_map(|p| p.to_str()).collect();
    matches!(
        parts.as_slice(),
        ["CMakeLists.txt"] | ["include", ..] | ["src", _] | ["src", "ggml-cpu", ..]
    )
}

/// ggml.c includes the `ggml-version.h` that cmake would generate from ggml-version.h.in.
/// Written to `<cache>/generated-<hash of its text>/`, not OUT_DIR, so that the C flags
/// (and the object cache key, see ggml_objects) do not depend on OUT_DIR. Returns the
/// directory to add to the include path.
fn write_version_header(ggml: &Path, cache: &Path) -> PathBuf {
    let cmake = fs::read_to_string(ggml.join("CMakeLists.txt")).unwrap_or_default();
    let part = |name: &str| {
        cmake.lines().find_map(|line| {
            line.trim()
                .strip_prefix(&format!("set({name} "))
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::to_string)
        })
    };
    let version = match (
        part("GGML_VERSION_MAJOR"),
        part("GGML_VERSION_MINOR"),
        part("GGML_VERSION_PATCH"),
    ) {
        (Some(a), Some(b), Some(c)) => format!("{a}.{b}.{c}"),
        _ => "unknown".to_string(),
    };
    let header = format!(
        "#pragma once\n#define GGML_VERSION \"{version}\"\n#define GGML_COMMIT \"{CRATE_NAME}-{CRATE_VERSION}\"\n"
    );
    let dir = cache.join(format!(
        "generated-{}",
        &sha256_hex(header.as_bytes())[..16]
    ));
    let path = dir.join("ggml-version.h");
    if fs::read_to_string(&path).ok().as_deref() != Some(header.as_str()) {
        fs::create_dir_all(&dir).expect("create the generated-header directory");
        // Write and rename: a concurrent build may be compiling with this file.
        let tmp = dir.join(format!(".ggml-version.h.{}", std::process::id()));
        fs::write(&tmp, &header).expect("write ggml-version.h");
        fs::rename(&tmp, &path).expect("rename ggml-version.h");
    }
    dir
}

// ------------------------------------------------------------------------------ compile

/// `-march=native` by default: ggml's CPU backend picks its SIMD kernels at compile time,
/// and engines build it for the machine they run on (cmake's GGML_NATIVE=ON). This crate
/// is a test and benchmark harness, not shipped, so native is what a user of this machine
/// would get. QUAROT_GGML_MARCH=<arch> (e.g. x86-64-v3) or =none overrides it; cross
/// builds get no -march.
fn march_flag() -> Option<String> {
    match env::var("QUAROT_GGML_MARCH") {
        Ok(v) if v.is_empty() || v == "none" => None,
        Ok(v) => Some(format!("-march={v}")),
        Err(_) => {
            let host = env::var("HOST").unwrap_or_default();
            let target = env::var("TARGET").unwrap_or_default();
            (host == target).then(|| "-march=native".to_string())
        }
    }
}

/// The flags ggml's cmake build uses for a static, CPU-only, non-OpenMP build (so ggml
/// runs its own pthread pool), with its warning set minus the known harmless warnings.
fn ggml_build(ggml: &Path, generated: &Path, cpp: bool) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(cpp)
        .std(if cpp { "gnu++17" } else { "gnu11" })
        // Always optimized: ggml at -O0 (a debug `cargo test`) would make the tests crawl.
        .opt_level(3)
        .debug(false)
        // ggml's own warning set (-Wall -Wextra, -Wno-unused-function, and for C++
        // -Wno-array-bounds), minus what is known to be harmless below.
        .warnings(true)
        .extra_warnings(true)
        .flag("-Wno-unused-function")
        .include(ggml.join("include"))
        .include(ggml.join("src"))
        .include(ggml.join("src/ggml-cpu"))
        .include(generated)
        .define("NDEBUG", None)
        .define("_GNU_SOURCE", None)
        .define("_XOPEN_SOURCE", "600")
        .define("GGML_USE_CPU", None)
        .define("GGML_USE_CPU_REPACK", None)
        .define("GGML_SCHED_MAX_COPIES", "4");
    if cpp {
        b.flag("-Wno-array-bounds");
    }
    if b.get_compiler().is_like_gnu() {
        // Known harmless with gcc 12: `__Y` inside gcc's own AVX-512 headers reported as
        // (maybe) uninitialized, ~730 times in tiled-kernel.cpp; and gcc's note on the
        // psABI change for passing 64-byte vectors.
        b.flag("-Wno-uninitialized")
            .flag("-Wno-maybe-uninitialized")
            .flag("-Wno-psabi");
    }
    if let Some(march) = march_flag() {
        b.flag(march);
    }
    b
}

fn compile(ggml: &Path, generated: &Path, glue_dir: &Path, quarot_include: &Path, out_dir: &Path) {
    let src = ggml.join("src");
    let cpu = src.join("ggml-cpu");
    let mut c_files = Vec::new();
    let mut cpp_files = Vec::new();
    let mut add = |dir: &Path, names: &[&str], required: bool| {
        for name in names {
            let path = dir.join(name);
            if !path.is_file() {
                assert!(!required, "ggml source {} is missing", path.display());
                continue;
            }
            if name.ends_with(".c") {
                c_files.push(path);
            } else {
                cpp_files.push(path);
            }
        }
    };
    // ggml-base and ggml (the backend registry) of ggml/src/CMakeLists.txt.
    #[rustfmt::skip]
    add(&src, &[
        "ggml.c", "ggml.cpp", "ggml-alloc.c", "ggml-backend.cpp", "ggml-backend-reg.cpp",
        "ggml-quants.c", "ggml-threading.cpp", "gguf.cpp", "ggml-opt.cpp",
    ], true);
    add(
        &src,
        &["ggml-backend-dl.cpp", "ggml-backend-meta.cpp"],
        false,
    );
    // ggml-cpu of ggml/src/ggml-cpu/CMakeLists.txt (no llamafile sgemm, no OpenMP, no KleidiAI).
    #[rustfmt::skip]
    add(&cpu, &[
        "ggml-cpu.c", "ggml-cpu.cpp", "ops.cpp", "vec.cpp", "binary-ops.cpp", "unary-ops.cpp",
        "quants.c", "repack.cpp", "traits.cpp",
    ], true);
    add(&cpu, &["hbm.cpp"], false);
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") | Ok("x86") => Some("x86"),
        Ok("aarch64") | Ok("arm") => Some("arm"),
        _ => None, // ggml's generic kernels (arch-fallback.h)
    };
    let mut optional_dirs = vec![cpu.join("tiled"), cpu.join("amx")];
    if let Some(arch) = arch {
        optional_dirs.push(cpu.join("arch").join(arch));
    }
    for dir in optional_dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            // cpu-feats.cpp only serves GGML_BACKEND_DL variant builds.
            .filter(|n| (n.ends_with(".c") || n.ends_with(".cpp")) && n != "cpu-feats.cpp")
            .collect();
        names.sort();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        add(&dir, &names, true);
    }

    let mut c_build = ggml_build(ggml, generated, false);
    c_build.files(&c_files);
    let mut cpp_build = ggml_build(ggml, generated, true);
    cpp_build.files(&cpp_files);
    let mut objects = ggml_objects(&mut c_build, &mut cpp_build, &c_files, &cpp_files, out_dir);

    let mut glue = cc::Build::new();
    glue.file(glue_dir.join("quarot_ggml.c"))
        .std("c11")
        .opt_level(2)
        .include(ggml.join("include"))
        .include(quarot_include)
        .flag("-pedantic")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true);
    if let Some(march) = march_flag() {
        glue.flag(march);
    }
    objects.extend(glue.compile_intermediates());

    // One archive for ggml and the glue: the C and C++ halves of ggml call each other, and
    // two static libraries would depend on their order on the link line.
    cc::Build::new()
        .cpp(true) // links libstdc++ for ggml's C++ half
        .objects(&objects)
        .compile("quarot_ggml_native");
    for lib in ["m", "pthread"] {
        println!("cargo:rustc-link-lib={lib}");
    }
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-lib=dl");
    }
}

/// ggml's object files, compiled once and kept in `<target>/quarot-ggml-src/objects/<key>`,
/// where the key is a hash of the compilers, their flags and the sources (paths, sizes,
/// times). Editing the glue, quarot.h or this script then recompiles only the glue, and
/// builds whose OUT_DIR differs but whose C flags do not (`cargo clippy` next to
/// `cargo build`, debug next to release: ggml is always -O3) share one compilation of
/// ggml (~60 s of CPU). The C and C++ halves compile at the same time; cc's jobs share
/// cargo's jobserver.
fn ggml_objects(
    c_build: &mut cc::Build,
    cpp_build: &mut cc::Build,
    c_files: &[PathBuf],
    cpp_files: &[PathBuf],
    out_dir: &Path,
) -> Vec<PathBuf> {
    let mut stamp = String::new();
    for build in [&*c_build, &*cpp_build] {
        let tool = build.get_compiler();
        stamp += &format!("{:?} {:?}\n", tool.path(), tool.args());
    }
    for file in c_files.iter().chain(cpp_files) {
        let meta = fs::metadata(file).expect("ggml source");
        stamp += &format!(
            "{} {} {:?}\n",
            file.display(),
            meta.len(),
            meta.modified().ok()
        );
    }
    let objects_root = cache_dir(out_dir).join("objects");
    let dir = objects_root.join(&sha256_hex(stamp.as_bytes())[..16]);
    let read_list = |dir: &Path| -> Option<Vec<PathBuf>> {
        let list = fs::read_to_string(dir.join("objects.list")).ok()?;
        let objects: Vec<PathBuf> = list.lines().map(|l| dir.join(l)).collect();
        (!objects.is_empty() && objects.iter().all(|o| o.is_file())).then_some(objects)
    };
    if let Some(objects) = read_list(&dir) {
        return objects;
    }

    // Compile into a private directory and rename it into place, so that concurrent builds
    // never use a half-written set.
    let tmp = objects_root.join(format!(".tmp.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create the object cache");
    c_build.out_dir(tmp.join("c"));
    cpp_build.out_dir(tmp.join("cpp"));
    let objects = std::thread::scope(|s| {
        let c = s.spawn(|| c_build.compile_intermediates());
        let mut objects = cpp_build.compile_intermediates();
        objects.extend(c.join().expect("compiling ggml's C sources"));
        objects
    });
    let list: String = objects
        .iter()
        .map(|o| {
            let rel = o.strip_prefix(&tmp).expect("object inside the cache");
            format!("{}\n", rel.display())
        })
        .collect();
    fs::write(tmp.join("objects.list"), list).expect("write the object list");
    fs::write(tmp.join("stamp.txt"), &stamp).expect("write the object stamp");
    if fs::rename(&tmp, &dir).is_err() {
        // Another build stored the same set first.
        let _ = fs::remove_dir_all(&tmp);
    }
    read_list(&dir).expect("compiled ggml objects in the cache")
}
