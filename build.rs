//! Gives the shared library its SONAME on ELF targets: libquarot.so.<major> from 1.0 on,
//! libquarot.so.0.<minor> before (in 0.x a minor release may break the ABI), from
//! Cargo.toml's version, so the Makefile's install, the .pc file, the CMake files and
//! quarot_version() all follow the one version number (tests/install.rs checks they agree).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = !matches!(os.as_str(), "macos" | "ios" | "windows");
    if elf {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
        let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("set by cargo");
        let soname = if major == "0" {
            format!("libquarot.so.0.{minor}")
        } else {
            format!("libquarot.so.{major}")
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
}
