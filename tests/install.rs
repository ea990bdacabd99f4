//! `make install` into a temporary prefix, then a C program built against the installed
//! library three ways: plain cc with pkg-config (shared), CMake `find_package(quarot)` with
//! `quarot::quarot` and `quarot::quarot_static`, and static with the flags
//! `pkg-config --static` prints. Also: only `quarot_*` symbols are exported (every function
//! of the header, nothing else), the SONAME and the versions of the header, the .pc file,
//! the CMake files and `quarot_version()` all come from Cargo.toml, DESTDIR staging, and
//! `make uninstall`.
//!
//! Needs make, a C compiler (`cc`), pkg-config, cmake and binutils (`nm`, `readelf`);
//! `.ci/run` installs them when missing.
#![cfg(target_os = "linux")]

mod common;

use common::shared_lib::{layout, manifest_dir, soname};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {shown}: {e} (see this file's header for the tools it needs)")
    });
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch directory of this test binary.
fn work_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a scratch directory");
    d
}

fn make(args: &[String]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(manifest_dir())
        .arg(format!("CARGO={}", cargo.to_string_lossy()))
        .arg(format!(
            "TARGET_DIR={}",
            layout().target_dir.join("install").display()
        ))
        .args(args);
    run(&mut cmd)
}

/// One installation for all the tests of this file.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let p = work_dir("prefix");
        make(&["install".into(), format!("PREFIX={}", p.display())]);
        p
    })
}

fn pkg_config(args: &[&str]) -> String {
    let out = run(Command::new("pkg-config")
        .args(args)
        .arg("quarot")
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig")));
    stdout(&out).trim().to_string()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn demo_source() -> PathBuf {
    manifest_dir().join("examples_c/demo.c")
}

/// Run the demo; it prints the library and header versions on its first line.
fn check_demo(exe: &Path, lib_path: Option<&Path>) {
    let mut cmd = Command::new(exe);
    if let Some(p) = lib_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = run(&mut cmd);
    let first = stdout(&out).lines().next().unwrap_or("").to_string();
    assert!(
        first.starts_with(&format!("libquarot {VERSION} (header {VERSION})")),
        "{}: {first}",
        exe.display()
    );
}

/// The values of the dynamic-section entries `tag` (NEEDED, SONAME) of an ELF file.
fn dynamic(file: &Path, tag: &str) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(file));
    stdout(&out)
        .lines()
        .filter(|l| l.contains(&format!("({tag})")))
        .map(|l| {
            l.rsplit('[')
                .next()
                .unwrap_or("")
                .trim_end_matches(']')
                .to_string()
        })
        .collect()
}

fn needed(exe: &Path) -> Vec<String> {
    dynamic(exe, "NEEDED")
}

#[test]
fn installed_files_and_versions_agree() {
    let p = prefix();
    let lib = p.join("lib");
    let real = lib.join(format!("libquarot.so.{VERSION}"));
    assert!(real.is_file(), "{}", real.display());
    assert_eq!(
        std::fs::read_link(lib.join(soname())).expect("SONAME link"),
        PathBuf::from(format!("libquarot.so.{VERSION}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libquarot.so")).expect("dev link"),
        PathBuf::from(soname())
    );
    assert!(lib.join("libquarot.a").is_file());
    // The header installed is the checked-in one (tests/header.rs keeps that one current).
    assert_eq!(
        std::fs::read(p.join("include/quarot.h")).expect("installed header"),
        std::fs::read(manifest_dir().join("include/quarot.h")).expect("header")
    );
    // SONAME of the installed library.
    assert_eq!(dynamic(&real, "SONAME"), vec![soname()]);
    // pkg-config and CMake versions.
    assert_eq!(pkg_config(&["--modversion"]), VERSION);
    let cmake_version = std::fs::read_to_string(lib.join("cmake/quarot/quarotConfigVersion.cmake"))
        .expect("version file");
    assert!(cmake_version.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")));
    assert_eq!(quarot::VERSION, VERSION);
}

#[test]
fn only_quarot_symbols_are_exported() {
    let real = prefix().join(format!("lib/libquarot.so.{VERSION}"));
    let out = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&real));
    let exported: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .collect();
    let foreign: Vec<&String> = exported
        .iter()
        .filter(|s| !s.starts_with("quarot_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "exported symbols without the quarot_ prefix: {foreign:?}"
    );
    // Exactly the functions the header declares.
    let header = std::fs::read_to_string(manifest_dir().join("include/quarot.h")).expect("header");
    let mut declared: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("typedef"))
        .filter_map(|l| {
            let name = l
                .split('(')
                .next()?
                .split_whitespace()
                .last()?
                .trim_start_matches('*');
            (l.contains('(') && name.starts_with("quarot_")).then(|| name.to_string())
        })
        .collect();
    declared.sort();
    declared.dedup();
    let mut exported = exported;
    exported.sort();
    assert_eq!(exported, declared);
    assert!(exported.len() >= 35, "{}", exported.len());
}

#[test]
fn c_program_with_pkg_config_shared() {
    let dir = work_dir("pkg-config");
    let exe = dir.join("demo");
    let mut cmd = Command::new("cc");
    cmd.arg("-std=c99")
        .arg(demo_source())
        .args(words(&pkg_config(&["--cflags", "--libs"])))
        .arg("-lm")
        .arg("-o")
        .arg(&exe);
    run(&mut cmd);
    assert!(needed(&exe).contains(&soname()), "{:?}", needed(&exe));
    check_demo(&exe, Some(&prefix().join("lib")));
}

#[test]
fn c_program_static_with_pkg_config_flags() {
    let dir = work_dir("static");
    let exe = dir.join("demo");
    // pkg-config --static prints -lquarot plus Libs.private; ask the linker for the archive
    // (both are installed side by side, and -l would pick the shared one).
    let libs: Vec<String> = words(&pkg_config(&["--libs", "--static"]))
        .into_iter()
        .map(|w| {
            if w == "-lquarot" {
                "-l:libquarot.a".into()
            } else {
                w
            }
        })
        .collect();
    let mut cmd = Command::new("cc");
    cmd.arg("-std=c99")
        .arg(demo_source())
        .args(words(&pkg_config(&["--cflags"])))
        .args(&libs)
        .arg("-o")
        .arg(&exe);
    run(&mut cmd);
    let deps = needed(&exe);
    assert!(
        !deps.iter().any(|d| d.starts_with("libquarot")),
        "static build still needs {deps:?}"
    );
    check_demo(&exe, None);
}

#[test]
fn c_program_with_cmake_find_package() {
    let dir = work_dir("cmake");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::copy(demo_source(), src.join("demo.c")).expect("copy demo.c");
    std::fs::write(
        src.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.13)\n\
             project(quarot_consumer C)\n\
             find_package(quarot {VERSION} REQUIRED)\n\
             add_executable(demo_shared demo.c)\n\
             target_link_libraries(demo_shared PRIVATE quarot::quarot m)\n\
             add_executable(demo_static demo.c)\n\
             target_link_libraries(demo_static PRIVATE quarot::quarot_static m)\n"
        ),
    )
    .expect("write CMakeLists.txt");
    let build = dir.join("build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display())));
    run(Command::new("cmake").arg("--build").arg(&build));
    let shared = build.join("demo_shared");
    assert!(needed(&shared).contains(&soname()));
    check_demo(&shared, None); // CMake puts the library directory in the RUNPATH
    let stat = build.join("demo_static");
    assert!(!needed(&stat).iter().any(|d| d.starts_with("libquarot")));
    check_demo(&stat, None);
    // A newer version than the installed one is refused.
    let too_new = dir.join("too-new");
    std::fs::create_dir_all(&too_new).expect("mkdir");
    std::fs::write(
        too_new.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.13)\nproject(p C)\nfind_package(quarot 99.0 REQUIRED)\n",
    )
    .expect("write");
    let out = Command::new("cmake")
        .arg("-S")
        .arg(&too_new)
        .arg("-B")
        .arg(too_new.join("b"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display()))
        .output()
        .expect("cmake");
    assert!(
        !out.status.success(),
        "find_package(quarot 99.0) should fail"
    );
}

#[test]
fn destdir_staging_and_uninstall() {
    let stage = work_dir("destdir");
    let args = |verb: &str| {
        vec![
            verb.to_string(),
            "PREFIX=/opt/quarot".to_string(),
            format!("DESTDIR={}", stage.display()),
        ]
    };
    make(&args("install"));
    let root = stage.join("opt/quarot");
    let pc = std::fs::read_to_string(root.join("lib/pkgconfig/quarot.pc")).expect("staged .pc");
    // The files describe the final prefix, not the staging directory.
    assert!(
        pc.contains("prefix=/opt/quarot\n") && !pc.contains(&stage.display().to_string()),
        "{pc}"
    );
    let cfg = std::fs::read_to_string(root.join("lib/cmake/quarot/quarotConfig.cmake"))
        .expect("staged cmake");
    assert!(
        cfg.contains("\"/opt/quarot/lib/libquarot.so.")
            && !cfg.contains(&stage.display().to_string())
    );
    for f in ["lib/libquarot.a", "include/quarot.h", "lib/libquarot.so"] {
        assert!(root.join(f).exists(), "{f}");
    }
    make(&args("uninstall"));
    let left: Vec<PathBuf> = walk(&stage)
        .into_iter()
        .filter(|p| p.is_file() || p.is_symlink())
        .collect();
    assert!(left.is_empty(), "left after uninstall: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
