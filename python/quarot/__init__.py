"""quarot: Python bindings of libquarot (ctypes + numpy).

libquarot applies the rotations of QuaRot / SpinQuant exactly as AMD Quark implements
them: the Hadamard transform ``y = scale * (H_K kron H_{2^m}) x`` of rows of width
n = K * 2^m (float32, float16 and bfloat16), offline weight rotation (R1, R2), and the
online R3 / R4 rotations as handles with Python callbacks.

Quick start::

    import numpy as np, quarot

    x = np.random.randn(8, 11008).astype(np.float32)
    quarot.hadamard(x)                          # in place, normalized (orthogonal) scale
    y = np.empty(x.shape, np.float16)
    quarot.hadamard(x, out=y)                   # src -> dst with type conversion

    W = np.random.randn(4096, 4096).astype(np.float32)
    R = quarot.random_orthogonal(4096, seed=0)
    quarot.rotate_in_channels(W, R)             # W <- W @ R, in place

Conventions:

* Data arrays are used in place, without copies: 1-D (one row) or 2-D ``rows x n`` with a
  contiguous last axis; strided row views (``big[:, :n]``) are fine. Other layouts raise
  ValueError unless ``copy=True`` (then a contiguous copy is used and copied back).
* bfloat16: ``ml_dtypes.bfloat16`` arrays (when ml_dtypes is installed), or uint16 bit
  patterns with ``dtype="bf16"``; float16 likewise with ``dtype="f16"``.
* Every library failure raises :class:`QuarotError` (``.status``, ``.name``,
  ``.message``). Exceptions raised in callbacks propagate out of ``forward`` unchanged.
* Constants are those of quarot.h without the ``QUAROT_`` prefix (``FLAG_TRANSPOSE_K``,
  ``LAYOUT_MATMUL_HADU``, ``DTYPE_BF16``, ``ERR_UNSUPPORTED_SIZE``, ...).

The shared library is found through ``QUAROT_LIB``, then ``libquarot.so`` next to this
package, then ``../../target/release/libquarot.so`` relative to it.
"""

from ._lib import LIB as lib, LIB_PATH as lib_path  # noqa: F401  (raw ctypes access)
from ._errors import QuarotError
from ._arrays import (
    BFLOAT16,
    bf16_bits_to_float32,
    dtype_code,
    float32_to_bf16_bits,
    numpy_dtype,
)
from .constants import *  # noqa: F401,F403
from .constants import __all__ as _constants_all
from .transform import (
    active_isa,
    block_size,
    hadamard,
    hadamard_bf16,
    hadamard_f16,
    hadamard_f32,
    hadamard_scale,
    isa_available,
    isa_name,
    k_matrix,
    last_callback_code,
    last_error,
    nearest_sizes,
    release_scratch,
    rows_for_thread,
    scale,
    scratch_retained,
    set_num_threads,
    size_supported,
    status_string,
    version,
)
from .rotation import (
    hadamard_matrix,
    quark_hadamard_scale,
    random_orthogonal,
    random_signs,
    rotate_in_channels,
    rotate_in_channels_hadamard,
    rotate_out_channels,
    rotate_out_channels_hadamard,
)
from .online import (
    CALLBACK_EXCEPTION_CODE,
    Activations,
    QKRotation,
    QKShape,
    QuantConfig,
    QuantizedRows,
    R4Wrapper,
    quantize,
)

__version__ = "0.1.0"

__all__ = [
    "QuarotError",
    # transforms and sizes
    "hadamard",
    "hadamard_f32",
    "hadamard_f16",
    "hadamard_bf16",
    "size_supported",
    "nearest_sizes",
    "block_size",
    "hadamard_scale",
    "scale",
    "k_matrix",
    # threads, scratch, info
    "rows_for_thread",
    "set_num_threads",
    "release_scratch",
    "scratch_retained",
    "version",
    "active_isa",
    "isa_available",
    "isa_name",
    "status_string",
    "last_error",
    "last_callback_code",
    # weight rotation, matrices
    "rotate_in_channels",
    "rotate_out_channels",
    "rotate_in_channels_hadamard",
    "rotate_out_channels_hadamard",
    "hadamard_matrix",
    "quark_hadamard_scale",
    "random_signs",
    "random_orthogonal",
    # online handles
    "QuantConfig",
    "QuantizedRows",
    "quantize",
    "Activations",
    "QKShape",
    "R4Wrapper",
    "QKRotation",
    "CALLBACK_EXCEPTION_CODE",
    # dtype helpers
    "BFLOAT16",
    "dtype_code",
    "numpy_dtype",
    "float32_to_bf16_bits",
    "bf16_bits_to_float32",
    "lib",
    "lib_path",
] + list(_constants_all)


def _check_version() -> None:
    import warnings

    v = version()
    try:
        major, minor = (int(p) for p in v.split(".")[:2])
    except ValueError:
        return
    if (major, minor) != (VERSION_MAJOR, VERSION_MINOR):  # noqa: F405
        warnings.warn(
            f"quarot: the loaded library {lib_path} is version {v}, these bindings were "
            f"written for {VERSION_STRING}",  # noqa: F405
            RuntimeWarning,
            stacklevel=3,
        )


_check_version()
