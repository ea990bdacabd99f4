//! Finding (and if needed building) the `libquarot` shared library that belongs to the
//! running test build: used by the tests that load it from C or Python.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const LIB_NAME: &str = "quarot";

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the running test: `<target>/[<triple>/]<profile>/deps/<test>-<hash>`.
pub struct Layout {
    /// `<target>`
    pub target_dir: PathBuf,
    /// `<target>/[<triple>/]<profile>`
    pub profile_dir: PathBuf,
    /// `<triple>` when cargo was run with `--target`.
    pub triple: Option<String>,
    /// The directory name of the profile (`debug`, `release`, ...).
    pub profile: String,
}

pub fn layout() -> Layout {
    let exe = std::env::current_exe().expect("path of the test executable");
    let deps = exe
        .parent()
        .expect("test executable has a parent directory");
    assert_eq!(
        deps.file_name().and_then(|n| n.to_str()),
        Some("deps"),
        "expected the test executable in <target>/<profile>/deps, found {}",
        exe.display()
    );
    let profile_dir = deps.parent().expect("deps has a parent").to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name")
        .to_string();
    let above = profile_dir.parent().expect("profile dir has a parent");
    let configured = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    // With `--target <triple>` the profile directory sits one level deeper.
    let (target_dir, triple) = match above.parent() {
        Some(grand) if !same(above, &configured) && same(grand, &configured) => (
            grand.to_path_buf(),
            above.file_name().and_then(|n| n.to_str()).map(String::from),
        ),
        _ => (above.to_path_buf(), None),
    };
    Layout {
        target_dir,
        profile_dir,
        triple,
        profile,
    }
}

/// The target triple to hand to `cc` (it runs outside a build script here, so there is no
/// `TARGET` variable to read).
pub fn target_triple(layout: &Layout) -> String {
    if let Some(t) = &layout.triple {
        return t.clone();
    }
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" if cfg!(target_env = "musl") => format!("{arch}-unknown-linux-musl"),
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        os => format!("{arch}-unknown-{os}"),
    }
}

pub fn lib_file_name() -> String {
    format!(
        "{}{LIB_NAME}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

pub fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The shared library built with this test. `cargo test` builds the lib target with every
/// crate type of `[lib] crate-type` (cdylib included) into `deps/`; if it is missing or
/// older than the rlib the tests link (crate type list changed, or a partial build), build it
/// with `cargo build --lib` for the same profile.
pub fn fresh_shared_library(layout: &Layout) -> PathBuf {
    let name = lib_file_name();
    let deps = layout.profile_dir.join("deps");
    let rlib = modified(&deps.join(format!("lib{LIB_NAME}.rlib")));
    let is_fresh = |path: &Path| match (modified(path), rlib) {
        // Written by the same rustc run as the rlib: allow for the link step's duration.
        (Some(so), Some(rlib)) => so + Duration::from_secs(120) >= rlib,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let in_deps = deps.join(&name);
    if is_fresh(&in_deps) {
        return in_deps;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_profile = match layout.profile.as_str() {
        "debug" => "dev",
        other => other,
    };
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--lib")
        .arg("--manifest-path")
        .arg(manifest_dir().join("Cargo.toml"))
        .arg("--profile")
        .arg(cargo_profile)
        .env("CARGO_TARGET_DIR", &layout.target_dir);
    if let Some(t) = &layout.triple {
        cmd.arg("--target").arg(t);
    }
    eprintln!("{} is missing or stale; running {cmd:?}", in_deps.display());
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build --lib failed: {status}");
    let built = layout.profile_dir.join(&name);
    assert!(
        built.exists(),
        "cargo build --lib did not produce {}: is \"cdylib\" still in [lib] crate-type?",
        built.display()
    );
    built
}

/// The SONAME `make install` gives the installed shared library (what programs linked
/// against it look for at run time): libquarot.so.0.<minor> before 1.0, else .so.<major>.
pub fn soname() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    if major == "0" {
        format!("libquarot.so.0.{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        format!("libquarot.so.{major}")
    }
}
