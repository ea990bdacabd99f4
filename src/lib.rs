//! libquarot: the rotations of QuaRot / SpinQuant (as implemented by AMD Quark) for native
//! inference engines, behind a C ABI.
//!
//! The crate is one safe Rust core plus one thin `extern "C"` layer:
//! - [`hadamard`]: sizes, plans and the public transform functions (safe slices, `Result`);
//! - `kernel` + `simd`: the row kernels, written once over a small SIMD trait and
//!   instantiated for AVX-512, AVX2+FMA+F16C and scalar code, chosen at run time ([`dispatch`]);
//! - `ffi`: every exported C function, each behind one panic boundary.
//!
//! The C header `include/quarot.h` is generated from this crate by cbindgen.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod dispatch;
pub mod element;
pub mod error;
mod gemm;
pub mod hadamard;
mod kernel;
pub mod online;
mod parallel;
pub mod rotate;
pub mod scratch;
mod simd;

pub mod ffi;

pub use dispatch::Isa;
pub use element::{DType, Element};
pub use error::{Error, Status};
pub use hadamard::{
    block_size, hadamard_k, hadamard_rows, hadamard_rows_into, is_supported_k, nearest_supported,
    normalized_scale, HadamardPlan, FLAG_BLOCK_DIAGONAL, FLAG_PAD_TRUNCATE, FLAG_PARALLEL,
    FLAG_TRANSPOSE_K, KNOWN_FLAGS,
};
pub use parallel::{rows_for_thread, set_num_threads};

/// The crate version, as in Cargo.toml (also `quarot_version()` in C).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
