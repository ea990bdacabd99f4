//! Builds the C programs in `examples_c/` against `include/quarot.h` and the freshly built
//! `libquarot` shared library, as C99 and as C++11 with warnings as errors, and runs them
//! (as libimagequant runs its C test from `cargo test`).
//!
//! - `demo.c`: the README demo; its output is checked for the expected lines.
//! - `abi_test.c`: the C test of the ABI (exit status 0 iff every check passed); run once
//!   per instruction set this CPU has, forced with `QUAROT_ISA`, so every kernel is reached
//!   through the C ABI, and with an unusable `QUAROT_ISA`, where transforms must refuse.
//! - `rotate_net.c`: weight rotation of a two-layer network through the C ABI (the network
//!   must be unchanged; Hadamard entry points == dense matrix; error cases leave the
//!   weights alone); exit status 0 iff every check passed; also run once per instruction set.
//! - `r4_wrapper.c`: an MLP whose down_proj is wrapped by a quarot_r4_wrapper (output
//!   unchanged; 4-bit activations lose less with the rotation; real codes == fake).
//! - `qk_rotation.c`: a C RoPE wrapped by a quarot_qk_rotation (attention scores unchanged).
//! - `stress.c`: threads calling every kind of entry point at once and sharing an R4 and a
//!   QK handle, for a bounded time; every result equal to the single-thread one.
//! - `bad_input.c`: a table with one row per bad value of each parameter of every export,
//!   each expecting its specific status (or documented result), with every buffer (and the
//!   canaries past its end and between its rows) unchanged, handle outputs unwritten and
//!   `quarot_last_error()` set; every function of the header must have a row.
//!
//! Needs a C and a C++ compiler (`cc`/`c++`, or `CC`/`CXX`); nothing else.
#![cfg(unix)]

use quarot::Isa;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod common;

use common::shared_lib::{
    fresh_shared_library, layout, lib_file_name, manifest_dir, target_triple, LIB_NAME,
};

/// A private directory holding a copy of the library and the compiled programs, so that
/// another cargo process rewriting `deps/` cannot change a library a program is running.
struct Setup {
    work_dir: PathBuf,
    lib_dir: PathBuf,
    triple: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let layout = layout();
        let library = fresh_shared_library(&layout);
        let mut sub = layout.profile.clone();
        if let Some(t) = &layout.triple {
            sub = format!("{t}-{sub}");
        }
        let work_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("c_examples")
            .join(sub);
        let lib_dir = work_dir.join("lib");
        std::fs::create_dir_all(&lib_dir).expect("create the C work directory");
        // Copy, then rename: atomic for programs of another test process using the old file.
        let tmp = lib_dir.join(format!(".{}.{}", lib_file_name(), std::process::id()));
        std::fs::copy(&library, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", library.display()));
        std::fs::rename(&tmp, lib_dir.join(lib_file_name())).expect("rename the library copy");
        Setup {
            work_dir,
            lib_dir,
            triple: target_triple(&layout),
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    C,
    Cxx,
    /// C99 built with AddressSanitizer and UndefinedBehaviorSanitizer (any report aborts).
    CSanitized,
}

/// Compile `examples_c/<stem>.c` as C99 or C++11 with `-Wall -Wextra -Werror -pedantic`
/// and link it against the shared library (found at run time through an rpath).
fn compile(stem: &str, lang: Lang) -> PathBuf {
    let setup = setup();
    let source = manifest_dir().join("examples_c").join(format!("{stem}.c"));
    let suffix = match lang {
        Lang::C => "c",
        Lang::Cxx => "cxx",
        Lang::CSanitized => "c-asan-ubsan",
    };
    let exe = setup.work_dir.join(format!("{stem}-{suffix}"));
    let tmp = setup
        .work_dir
        .join(format!(".{stem}-{suffix}.{}", std::process::id()));

    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .emit_rerun_if_env_changed(false)
        .target(&setup.triple)
        .host(&setup.triple)
        .opt_level(2)
        .debug(false)
        .cpp(lang == Lang::Cxx)
        .try_get_compiler()
        .unwrap_or_else(|e| panic!("no C/C++ compiler found by the cc crate: {e}"));
    let mut cmd = compiler.to_command();
    match lang {
        Lang::C => {
            cmd.arg("-std=c99");
        }
        Lang::Cxx => {
            cmd.args(["-x", "c++", "-std=c++11"]);
        }
        Lang::CSanitized => {
            cmd.args([
                "-std=c99",
                "-g",
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
            ]);
        }
    }
    cmd.args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(&source);
    if lang == Lang::Cxx {
        cmd.args(["-x", "none"]); // what follows are not C++ sources
    }
    cmd.arg("-o")
        .arg(&tmp)
        .arg("-L")
        .arg(&setup.lib_dir)
        .arg(format!("-Wl,-rpath,{}", setup.lib_dir.display()))
        .arg(format!("-l{LIB_NAME}"))
        .args(["-lpthread", "-lm"]);
    eprintln!("compiling: {:?} {:?}", cmd.get_program(), cmd.get_args());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed ({}):\n{cmd:?}\n{}{}",
        source.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe).expect("rename the compiled program");
    exe
}

/// The program built once per test process (several tests run the same binary).
fn program(stem: &'static str, lang: Lang) -> &'static Path {
    static BUILDS: [OnceLock<PathBuf>; 21] = [const { OnceLock::new() }; 21];
    let slot = match (stem, lang) {
        ("demo", Lang::C) => 0,
        ("demo", Lang::Cxx) => 1,
        ("abi_test", Lang::C) => 2,
        ("abi_test", Lang::Cxx) => 3,
        ("rotate_net", Lang::C) => 4,
        ("rotate_net", Lang::Cxx) => 5,
        ("r4_wrapper", Lang::C) => 6,
        ("r4_wrapper", Lang::Cxx) => 7,
        ("qk_rotation", Lang::C) => 8,
        ("qk_rotation", Lang::Cxx) => 9,
        ("demo", Lang::CSanitized) => 10,
        ("abi_test", Lang::CSanitized) => 11,
        ("rotate_net", Lang::CSanitized) => 12,
        ("r4_wrapper", Lang::CSanitized) => 13,
        ("qk_rotation", Lang::CSanitized) => 14,
        ("stress", Lang::C) => 15,
        ("stress", Lang::Cxx) => 16,
        ("stress", Lang::CSanitized) => 17,
        ("bad_input", Lang::C) => 18,
        ("bad_input", Lang::Cxx) => 19,
        ("bad_input", Lang::CSanitized) => 20,
        _ => unreachable!("unknown program {stem}"),
    };
    BUILDS[slot].get_or_init(|| compile(stem, lang))
}

/// Run a program with `QUAROT_ISA` unset, or set to `isa`.
fn run(exe: &Path, args: &[&str], isa: Option<&str>) -> Output {
    let mut cmd = Command::new(exe);
    // cargo points LD_LIBRARY_PATH at deps/; without it the program finds the library
    // through its rpath only, as it would outside cargo.
    cmd.args(args)
        .env_remove("QUAROT_ISA")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("DYLD_LIBRARY_PATH");
    if let Some(isa) = isa {
        cmd.env("QUAROT_ISA", isa);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// Assert a zero exit status; show the program's output either way (`--nocapture`).
fn assert_success(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- {what}: {}\n{stdout}{stderr}", out.status);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    stdout
}

fn check_demo(lang: Lang) {
    let out = run(program("demo", lang), &[], None);
    let stdout = assert_success("demo", &out);
    for expected in [
        format!("libquarot {} (header {})", quarot::VERSION, quarot::VERSION),
        "instruction set: ".to_string(),
        "max|x|/rms".to_string(),
        "after the rotation".to_string(),
        "(worst head)".to_string(),
        "(K = 172)".to_string(),
        "round trip with QUAROT_FLAG_TRANSPOSE_K: max error".to_string(),
        "n = 11000: unsupported transform width (status 2)".to_string(),
        "nearest supported widths: 10944, 11008".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "demo output lacks {expected:?}:\n{stdout}"
        );
    }
}

fn check_abi_test(lang: Lang) {
    let out = run(program("abi_test", lang), &[], None);
    let stdout = assert_success("abi_test", &out);
    assert!(
        stdout.contains(", 0 failed"),
        "unexpected output:\n{stdout}"
    );
}

#[test]
fn demo_c99() {
    check_demo(Lang::C);
}

#[test]
fn demo_cxx11() {
    check_demo(Lang::Cxx);
}

#[test]
fn abi_test_c99() {
    check_abi_test(Lang::C);
}

#[test]
fn abi_test_cxx11() {
    check_abi_test(Lang::Cxx);
}

/// Every instruction set this CPU has, forced through `QUAROT_ISA`: the program also
/// checks that the forced set is the active one, so no run silently tests another path.
#[test]
fn abi_test_on_every_isa() {
    let exe = program("abi_test", Lang::C);
    let mut ran = Vec::new();
    for isa in Isa::ALL {
        if !isa.is_available() {
            continue;
        }
        let out = run(exe, &["--expect-isa", isa.name()], Some(isa.name()));
        let stdout = assert_success(&format!("abi_test with QUAROT_ISA={}", isa.name()), &out);
        assert!(stdout.contains(&format!("instruction set {}", isa.name())));
        assert!(
            stdout.contains(", 0 failed"),
            "unexpected output:\n{stdout}"
        );
        ran.push(isa.name());
    }
    assert!(ran.contains(&"scalar"), "the scalar path must always run");
    eprintln!("abi_test ran on: {}", ran.join(", "));
}

/// `QUAROT_ISA` naming a set this CPU lacks, or no set at all: every transform must fail
/// with QUAROT_ERR_ISA_UNAVAILABLE and leave the data alone.
#[test]
fn abi_test_with_unusable_isa() {
    let exe = program("abi_test", Lang::C);
    let mut values = vec!["bogus"];
    values.extend(
        Isa::ALL
            .iter()
            .filter(|isa| !isa.is_available())
            .map(|isa| isa.name()),
    );
    for value in values {
        let out = run(exe, &["--expect-isa-unavailable"], Some(value));
        let stdout = assert_success(&format!("abi_test with QUAROT_ISA={value}"), &out);
        assert!(
            stdout.contains(", 0 failed"),
            "unexpected output:\n{stdout}"
        );
    }
}

fn check_rotate_net(lang: Lang, isa: Option<&str>) -> String {
    let out = run(program("rotate_net", lang), &[], isa);
    let stdout = assert_success(
        &format!("rotate_net with QUAROT_ISA={}", isa.unwrap_or("(unset)")),
        &out,
    );
    for expected in [
        "f32, dense random orthogonal R (r = 32):",
        "f32, Hadamard MATMUL_HADU + signs, 2 blocks of 16:",
        "f32, Hadamard entry points vs dense quarot_hadamard_matrix:",
        "bf16, dense random orthogonal R (r = 32):",
        "bf16, Hadamard MATMUL_HADU + signs, 2 blocks of 16:",
        "bf16, Hadamard entry points vs dense quarot_hadamard_matrix:",
        ", 0 failed",
    ] {
        assert!(
            stdout.contains(expected),
            "rotate_net output lacks {expected:?}:\n{stdout}"
        );
    }
    stdout
}

#[test]
fn rotate_net_c99() {
    check_rotate_net(Lang::C, None);
}

#[test]
fn rotate_net_cxx11() {
    check_rotate_net(Lang::Cxx, None);
}

/// The rotation functions use the active instruction set (GEMM kernels per set): run the
/// network example on each one this CPU has.
#[test]
fn rotate_net_on_every_isa() {
    let mut ran = Vec::new();
    for isa in Isa::ALL {
        if !isa.is_available() {
            continue;
        }
        let stdout = check_rotate_net(Lang::C, Some(isa.name()));
        assert!(
            stdout.contains(&format!("instruction set {}", isa.name())),
            "rotate_net did not run on {}:\n{stdout}",
            isa.name()
        );
        ran.push(isa.name());
    }
    assert!(ran.contains(&"scalar"), "the scalar path must always run");
    eprintln!("rotate_net ran on: {}", ran.join(", "));
}

/// Run an example that ends with "<name>: N checks, 0 failed" and check its key lines.
fn check_example(stem: &'static str, lang: Lang, isa: Option<&str>, expected: &[&str]) -> String {
    let out = run(program(stem, lang), &[], isa);
    let stdout = assert_success(
        &format!("{stem} with QUAROT_ISA={}", isa.unwrap_or("(unset)")),
        &out,
    );
    for e in expected {
        assert!(stdout.contains(e), "{stem} output lacks {e:?}:\n{stdout}");
    }
    stdout
}

const R4_LINES: &[&str] = &[
    "1. rotated MLP vs plain MLP, no quantization",
    "2. 4-bit activations (per token, symmetric)",
    "3. real int8 codes vs fake quantization",
    "4. failing op: QUAROT_ERR_CALLBACK, code 77",
    ", 0 failed",
];

const QK_LINES: &[&str] = &[
    "scores unchanged by the rotation",
    "failing RoPE: QUAROT_ERR_CALLBACK",
    ", 0 failed",
];

#[test]
fn r4_wrapper_c99() {
    check_example("r4_wrapper", Lang::C, None, R4_LINES);
}

#[test]
fn r4_wrapper_cxx11() {
    check_example("r4_wrapper", Lang::Cxx, None, R4_LINES);
}

#[test]
fn qk_rotation_c99() {
    check_example("qk_rotation", Lang::C, None, QK_LINES);
}

#[test]
fn qk_rotation_cxx11() {
    check_example("qk_rotation", Lang::Cxx, None, QK_LINES);
}

/// The handles use the active instruction set's kernels: run both examples on each one.
#[test]
fn online_examples_on_every_isa() {
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        check_example("r4_wrapper", Lang::C, Some(isa.name()), R4_LINES);
        check_example("qk_rotation", Lang::C, Some(isa.name()), QK_LINES);
    }
}

const EXAMPLES: [&str; 6] = [
    "demo",
    "abi_test",
    "rotate_net",
    "r4_wrapper",
    "qk_rotation",
    "bad_input",
];

/// Every C program (abi_test is the C test of every entry point) built with
/// `-fsanitize=address,undefined -fno-sanitize-recover=all`: any report fails the run.
#[test]
fn every_example_under_asan_and_ubsan() {
    for stem in EXAMPLES {
        let exe = program(stem, Lang::CSanitized);
        let mut cmd = Command::new(exe);
        cmd.env_remove("QUAROT_ISA")
            .env_remove("LD_LIBRARY_PATH")
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:exitcode=99",
            )
            .env(
                "UBSAN_OPTIONS",
                "print_stacktrace=1:halt_on_error=1:exitcode=98",
            );
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("Sanitizer") && !stderr.contains("runtime error"),
            "{stem}: sanitizer report:\n{stderr}"
        );
        assert_success(&format!("{stem} (ASan + UBSan)"), &out);
    }
}

/// Every C program under `valgrind --error-exitcode=1` (valgrind hides AVX-512, so the
/// library runs its AVX2 kernels there). Needs valgrind (.ci/run installs it).
#[test]
fn every_example_under_valgrind() {
    for stem in EXAMPLES {
        let exe = program(stem, Lang::C);
        let out = Command::new("valgrind")
            .args(["-q", "--error-exitcode=1"])
            .arg(exe)
            .env_remove("QUAROT_ISA")
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap_or_else(|e| panic!("cannot run valgrind (needed by this test): {e}"));
        assert_success(&format!("{stem} (valgrind)"), &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("== ERROR SUMMARY") || stderr.contains("ERROR SUMMARY: 0 errors"),
            "{stem}: {stderr}"
        );
    }
}

/// Many threads at once on every kind of entry point, sharing one R4 wrapper and one QK
/// rotation (and libquarot's pool through QUAROT_FLAG_PARALLEL): results bit-identical to
/// the single-thread ones, each thread's own error message.
#[test]
fn stress_threads_c99_and_cxx11() {
    for lang in [Lang::C, Lang::Cxx] {
        let out = run(program("stress", lang), &["2", "8"], None);
        let stdout = assert_success("stress (8 threads, 2 s)", &out);
        assert!(stdout.contains(" 0 failures"), "{stdout}");
    }
}

/// The stress test under AddressSanitizer + UndefinedBehaviorSanitizer.
#[test]
fn stress_threads_under_asan_and_ubsan() {
    let exe = program("stress", Lang::CSanitized);
    let out = Command::new(exe)
        .args(["1", "4"])
        .env_remove("QUAROT_ISA")
        .env_remove("LD_LIBRARY_PATH")
        .env("ASAN_OPTIONS", "detect_leaks=1:exitcode=99")
        .env(
            "UBSAN_OPTIONS",
            "print_stacktrace=1:halt_on_error=1:exitcode=98",
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = assert_success("stress (ASan + UBSan)", &out);
    assert!(stdout.contains(" 0 failures"), "{stdout}");
}

/// `text` without its block comments (`/* ... */`).
fn strip_block_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    out.push_str(rest);
    out
}

/// The functions `include/quarot.h` declares: the `quarot_*` identifier just before the `(`
/// of each declaration line (comments, preprocessor lines and typedefs skipped).
fn header_functions() -> Vec<String> {
    let path = manifest_dir().join("include").join("quarot.h");
    let header =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut names = Vec::new();
    for line in strip_block_comments(&header).lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with("typedef") || line.starts_with("//") {
            continue;
        }
        let Some((before, _)) = line.split_once('(') else {
            continue;
        };
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        let tail_ok = name.strip_prefix("quarot_").is_some_and(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        if tail_ok && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The last line of bad_input's output, "bad_input: <N> rows, <F> failures", as (N, F).
fn bad_input_summary(stdout: &str) -> (usize, usize) {
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let parsed = last
        .strip_prefix("bad_input: ")
        .and_then(|rest| rest.strip_suffix(" failures"))
        .and_then(|rest| rest.split_once(" rows, "))
        .and_then(|(n, f)| Some((n.parse().ok()?, f.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("bad_input: unexpected last line {last:?}:\n{stdout}"))
}

/// The bad-input table (examples_c/bad_input.c) as C99 and as C++11: every row gets its
/// specific status with no buffer or handle output touched, and every function of the header
/// has a row, so a new export without one fails here.
#[test]
fn bad_input_table_c99_and_cxx11() {
    let functions = header_functions();
    assert!(
        functions.len() >= 35,
        "parsed only {} functions from include/quarot.h: {functions:?}",
        functions.len()
    );
    let path = manifest_dir().join("examples_c").join("bad_input.c");
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let code = strip_block_comments(&source);
    let missing: Vec<&String> = functions
        .iter()
        .filter(|f| !code.contains(&format!("\"{f}.")) || !code.contains(&format!("{f}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "examples_c/bad_input.c has no row (a \"<export>.<parameter> ...\" name and a call) \
         for: {missing:?}"
    );

    let mut rows_seen = Vec::new();
    for lang in [Lang::C, Lang::Cxx] {
        // --verbose prints one line per row ("ok   <export>.<parameter> ...").
        let out = run(program("bad_input", lang), &["--verbose"], None);
        let stdout = assert_success("bad_input", &out);
        let (rows, failures) = bad_input_summary(&stdout);
        assert_eq!(failures, 0, "bad_input reported failures:\n{stdout}");
        assert!(rows >= 100, "bad_input has only {rows} rows");
        let ran: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("ok   "))
            .collect();
        assert_eq!(ran.len(), rows, "not every row reported ok:\n{stdout}");
        for f in &functions {
            assert!(
                ran.iter().any(|r| r.starts_with(&format!("{f}."))),
                "no row of bad_input ran for {f}"
            );
        }
        rows_seen.push(rows);
    }
    assert_eq!(
        rows_seen[0], rows_seen[1],
        "C and C++ builds ran different tables"
    );
    eprintln!(
        "bad_input: {} rows covering {} header functions",
        rows_seen[0],
        functions.len()
    );
}
