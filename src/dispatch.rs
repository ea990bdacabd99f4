//! Run-time choice of the kernels' instruction set, made once per process.
//!
//! The best set the CPU has is used: AVX-512 (AVX-512F with AVX2, FMA, F16C), then
//! AVX2 + FMA + F16C, then portable scalar code. The environment variable `QUAROT_ISA`
//! (`avx512`, `avx2` or `scalar`), read once at first use, forces one; if the forced set is
//! not available every transform fails with `IsaUnavailable` rather than silently running
//! another path.

use crate::error::{Error, Status};
use std::sync::OnceLock;

/// An instruction set the kernels are built for. Shared with C as `quarot_isa`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar code (every CPU).
    Scalar = 0,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2 = 1,
    /// x86-64 AVX-512F (with AVX2, FMA, F16C).
    Avx512 = 2,
}

impl Isa {
    /// Every instruction set, from the most portable.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The set with raw value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Isa> {
        Isa::ALL.iter().copied().find(|i| *i as i32 == code)
    }

    /// Lower-case name, as accepted by `QUAROT_ISA`.
    pub fn name(self) -> &'static str {
        self.name_c().to_str().unwrap_or("")
    }

    pub(crate) fn name_c(self) -> &'static std::ffi::CStr {
        match self {
            Isa::Scalar => c"scalar",
            Isa::Avx2 => c"avx2",
            Isa::Avx512 => c"avx512",
        }
    }

    /// f32 lanes of this set's widest vector.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    /// Whether this CPU (and this build's target) can run the set.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_available() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best set available.
    pub fn best() -> Isa {
        Isa::ALL
            .iter()
            .rev()
            .copied()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar)
    }
}

static ACTIVE: OnceLock<Result<Isa, String>> = OnceLock::new();

fn choose() -> Result<Isa, String> {
    let Ok(forced) = std::env::var("QUAROT_ISA") else {
        return Ok(Isa::best());
    };
    let forced = forced.trim().to_ascii_lowercase();
    if forced.is_empty() || forced == "auto" {
        return Ok(Isa::best());
    }
    match Isa::ALL.iter().copied().find(|i| i.name() == forced) {
        Some(isa) if isa.is_available() => Ok(isa),
        Some(isa) => Err(format!(
            "QUAROT_ISA={} but this CPU does not have it (best available: {})",
            isa.name(),
            Isa::best().name()
        )),
        None => Err(format!(
            "QUAROT_ISA={forced:?} is not one of auto, scalar, avx2, avx512"
        )),
    }
}

/// The instruction set the transforms use, chosen once (or the reason `QUAROT_ISA` could
/// not be honoured).
pub fn active_isa() -> Result<Isa, Error> {
    ACTIVE
        .get_or_init(choose)
        .clone()
        .map_err(|m| Error::new(Status::IsaUnavailable, m))
}

/// `Ok` if `isa` can run here, else an `IsaUnavailable` error naming it.
pub fn check_available(isa: Isa) -> Result<(), Error> {
    if isa.is_available() {
        Ok(())
    } else {
        Err(Error::new(
            Status::IsaUnavailable,
            format!("{} is not available on this CPU", isa.name()),
        ))
    }
}
