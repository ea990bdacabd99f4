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
from . import online as _online, rotation as _rotation, transform as _transform
from .online import *  # noqa: F401,F403  (R4Wrapper, QKRotation, QuantConfig, quantize, ...)
from .rotation import *  # noqa: F401,F403  (weight rotation, matrix generators)
from .transform import *  # noqa: F401,F403  (transforms, sizes, threads, info)

__version__ = "0.1.0"

__all__ = (
    [
        "QuarotError",
        # dtype helpers
        "BFLOAT16",
        "dtype_code",
        "numpy_dtype",
        "float32_to_bf16_bits",
        "bf16_bits_to_float32",
        "lib",
        "lib_path",
    ]
    + list(_transform.__all__)
    + list(_rotation.__all__)
    + list(_online.__all__)
    + list(_constants_all)
)


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
