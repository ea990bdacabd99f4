//! Status codes (shared with C) and the error type of the Rust API.

use std::fmt;

/// Result status of every libquarot call.
///
/// Values are explicit and are never reused: a retired code stays reserved.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL (data with rows > 0, or an output pointer).
    NullPointer = 1,
    /// The width n is not supported: 0, or not K*2^m for a K in the table (see
    /// `quarot_hadamard_size_supported`). The message names the nearest supported widths.
    UnsupportedSize = 2,
    /// A row stride is smaller than n.
    InvalidStride = 3,
    /// rows * row_stride (or an index or byte size derived from it) overflows size_t.
    SizeOverflow = 4,
    /// flags has a bit that this version does not know.
    InvalidFlags = 5,
    /// An element-type value that is not a `quarot_dtype`.
    InvalidDtype = 6,
    /// Source and destination overlap without being the very same rows (same pointer,
    /// same stride, same element type).
    Overlap = 7,
    /// Another argument is out of range (e.g. a non-finite scale, nth == 0, ith >= nth).
    InvalidArgument = 8,
    /// Scratch memory could not be allocated.
    OutOfMemory = 9,
    /// The opt-in worker pool could not be created.
    ThreadPool = 10,
    /// QUAROT_ISA names an instruction set this CPU (or this build) does not have.
    IsaUnavailable = 11,
    /// An internal panic was caught at the C boundary (a bug in libquarot: please report it).
    Panic = 12,
    /// A callback (the op, quantizer or RoPE wrapped by a handle) returned nonzero; its
    /// code is kept (`quarot_last_callback_code`).
    Callback = 13,
}

impl Status {
    /// Every status, in value order.
    pub const ALL: [Status; 14] = [
        Status::Ok,
        Status::NullPointer,
        Status::UnsupportedSize,
        Status::InvalidStride,
        Status::SizeOverflow,
        Status::InvalidFlags,
        Status::InvalidDtype,
        Status::Overlap,
        Status::InvalidArgument,
        Status::OutOfMemory,
        Status::ThreadPool,
        Status::IsaUnavailable,
        Status::Panic,
        Status::Callback,
    ];

    /// The status with raw value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// A short, static, NUL-terminated description.
    pub fn description(self) -> &'static str {
        self.description_c().to_str().unwrap_or("")
    }

    pub(crate) fn description_c(self) -> &'static std::ffi::CStr {
        match self {
            Status::Ok => c"success",
            Status::NullPointer => c"a required pointer is NULL",
            Status::UnsupportedSize => c"unsupported transform width",
            Status::InvalidStride => c"row stride is smaller than the row width",
            Status::SizeOverflow => c"size computation overflows size_t",
            Status::InvalidFlags => c"unknown flag bits",
            Status::InvalidDtype => c"unknown element type",
            Status::Overlap => c"source and destination overlap",
            Status::InvalidArgument => c"invalid argument",
            Status::OutOfMemory => c"out of memory",
            Status::ThreadPool => c"could not create the worker pool",
            Status::IsaUnavailable => c"the instruction set forced by QUAROT_ISA is not available",
            Status::Panic => c"internal error (panic caught at the C boundary)",
            Status::Callback => c"a callback returned an error",
        }
    }
}

/// An error of the Rust API: a [`Status`] and a message with the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The status a C caller receives.
    pub status: Status,
    /// Details, e.g. "n = 11000 is not K*2^m for a K with a known Hadamard matrix (...);
    /// nearest supported widths: 10944, 11008; ...".
    pub message: String,
}

impl Error {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.description(), self.message)
    }
}

impl std::error::Error for Error {}
