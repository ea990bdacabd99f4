"""Loading ``libquarot`` and declaring its C prototypes (internal).

Everything in this module mirrors ``include/quarot.h`` one to one: the ctypes structures
``quarot_quant_config``, ``quarot_activations`` and ``quarot_qk_shape``, the three
callback types, and ``argtypes`` / ``restype`` for every exported function. The loaded
library is :data:`LIB`; :data:`LIB_PATH` is the file it was loaded from.

Search order for the shared library:

1. the environment variable ``QUAROT_LIB`` (the path of the library file; when it is set,
   nothing else is tried);
2. ``libquarot.so`` next to this package (``quarot/libquarot.so``);
3. ``../../target/release/libquarot.so`` relative to the package directory (the Cargo
   build of a source checkout: ``python/quarot`` -> ``target/release``).

(``.dylib`` / ``.dll`` names are used on macOS / Windows.)
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)

__all__ = [
    "LIB",
    "LIB_PATH",
    "QuantConfigStruct",
    "ActivationsStruct",
    "QKShapeStruct",
    "QUANT_FN",
    "OP_FN",
    "ROPE_FN",
    "PROTOTYPES",
    "find_library",
]

if sys.platform == "darwin":
    _LIB_NAME = "libquarot.dylib"
elif sys.platform.startswith("win"):
    _LIB_NAME = "quarot.dll"
else:
    _LIB_NAME = "libquarot.so"

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _candidates() -> list[str]:
    """The paths tried, in order, when ``QUAROT_LIB`` is not set."""
    return [
        os.path.join(_PKG_DIR, _LIB_NAME),
        os.path.normpath(os.path.join(_PKG_DIR, "..", "..", "target", "release", _LIB_NAME)),
    ]


def find_library() -> str:
    """Return the path of the libquarot shared library these bindings load.

    Raises :class:`ImportError` naming every place that was searched when there is none.
    """
    env = os.environ.get("QUAROT_LIB")
    if env:
        if not os.path.isfile(env):
            raise ImportError(
                f"quarot: QUAROT_LIB={env!r} does not name an existing file; point it at "
                f"{_LIB_NAME} (built by `cargo build --release` in target/release/) or unset it"
            )
        return env
    tried = _candidates()
    for path in tried:
        if os.path.isfile(path):
            return path
    raise ImportError(
        "quarot: cannot find the libquarot shared library. Searched:\n"
        + "".join(f"  - {p}\n" for p in ["$QUAROT_LIB (not set)"] + tried)
        + "Build it with `cargo build --release` in the libquarot checkout, copy "
        f"{_LIB_NAME} next to the quarot package, or set QUAROT_LIB to its path."
    )


# ----------------------------------------------------------------------------------------
# Structures and callback types (quarot.h)
# ----------------------------------------------------------------------------------------

#: ``typedef int (*quarot_quant_fn)(void *user_data, void *data, quarot_dtype dtype,
#: size_t rows, size_t n, size_t row_stride);``
QUANT_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_int32, c_size_t, c_size_t, c_size_t)


class QuantConfigStruct(Structure):
    """``struct quarot_quant_config``."""

    _fields_ = [
        ("kind", c_uint32),
        ("bits", c_uint32),
        ("symmetric", c_uint32),
        ("group_size", c_size_t),
        ("clip_ratio", c_float),
        ("custom", QUANT_FN),
        ("custom_user_data", c_void_p),
    ]


class ActivationsStruct(Structure):
    """``struct quarot_activations`` (pointers as plain addresses)."""

    _fields_ = [
        ("data", c_void_p),
        ("dtype", c_int32),
        ("rows", c_size_t),
        ("n", c_size_t),
        ("row_stride", c_size_t),
        ("codes", c_void_p),  # const int8_t *
        ("scales", c_void_p),  # const float *
        ("zeros", c_void_p),  # const float *
        ("group_size", c_size_t),
        ("groups", c_size_t),
    ]


class QKShapeStruct(Structure):
    """``struct quarot_qk_shape`` (all fields in elements)."""

    _fields_ = [
        ("tokens", c_size_t),
        ("n_heads", c_size_t),
        ("n_kv_heads", c_size_t),
        ("head_dim", c_size_t),
        ("q_token_stride", c_size_t),
        ("q_head_stride", c_size_t),
        ("k_token_stride", c_size_t),
        ("k_head_stride", c_size_t),
    ]


#: ``typedef int (*quarot_op_fn)(void *user_data, const struct quarot_activations *x,
#: void *out);``
OP_FN = CFUNCTYPE(c_int, c_void_p, POINTER(ActivationsStruct), c_void_p)

#: ``typedef int (*quarot_rope_fn)(void *user_data, void *q, void *k, quarot_dtype dtype,
#: const struct quarot_qk_shape *shape, void *call_arg);``
ROPE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_int32, POINTER(QKShapeStruct), c_void_p)

_status = c_int32  # quarot_status
_dtype = c_int32  # quarot_dtype
_isa = c_int32  # quarot_isa
_layout = c_int32  # quarot_hadamard_layout
_flags = c_uint32
_p = c_void_p  # any data pointer (passed as an address)
_psize = POINTER(c_size_t)

#: name -> (restype, argtypes) of every function in quarot.h.
PROTOTYPES = {
    # transforms
    "quarot_hadamard_f32": (_status, [_p, c_size_t, c_size_t, c_size_t, c_float, _flags]),
    "quarot_hadamard_f16": (_status, [_p, c_size_t, c_size_t, c_size_t, c_float, _flags]),
    "quarot_hadamard_bf16": (_status, [_p, c_size_t, c_size_t, c_size_t, c_float, _flags]),
    "quarot_hadamard": (
        _status,
        [_p, _dtype, c_size_t, _p, _dtype, c_size_t, c_size_t, c_size_t, c_float, _flags],
    ),
    # sizes
    "quarot_hadamard_size_supported": (c_size_t, [c_size_t]),
    "quarot_hadamard_nearest_sizes": (_status, [c_size_t, _psize, _psize]),
    "quarot_hadamard_block_size": (c_size_t, [c_size_t]),
    "quarot_hadamard_scale": (c_float, [c_size_t]),
    "quarot_hadamard_k_matrix": (_status, [c_size_t, _p, c_size_t]),
    # threads, scratch
    "quarot_rows_for_thread": (_status, [c_size_t, c_size_t, c_size_t, _psize, _psize]),
    "quarot_set_num_threads": (_status, [c_size_t]),
    "quarot_release_scratch": (c_size_t, []),
    "quarot_scratch_retained": (c_size_t, []),
    # status, version, ISA
    "quarot_status_string": (c_char_p, [c_int32]),
    "quarot_last_error": (c_char_p, []),
    "quarot_version": (c_char_p, []),
    "quarot_active_isa": (_status, [POINTER(_isa)]),
    "quarot_isa_available": (c_int32, [_isa]),
    "quarot_isa_name": (c_char_p, [_isa]),
    # weight rotation
    "quarot_rotate_in_channels": (
        _status,
        [_p, _dtype, c_size_t, c_size_t, c_size_t, _p, c_size_t, _flags],
    ),
    "quarot_rotate_out_channels": (
        _status,
        [_p, _dtype, c_size_t, c_size_t, c_size_t, _p, _p, c_size_t, _flags],
    ),
    "quarot_rotate_in_channels_hadamard": (
        _status,
        [_p, _dtype, c_size_t, c_size_t, c_size_t, c_size_t, _layout, _p, c_double, _flags],
    ),
    "quarot_rotate_out_channels_hadamard": (
        _status,
        [_p, _dtype, c_size_t, c_size_t, c_size_t, _p, c_size_t, _layout, _p, c_double, _flags],
    ),
    "quarot_hadamard_matrix": (_status, [_p, c_size_t, c_size_t, _layout, _p, c_double]),
    "quarot_quark_hadamard_scale": (c_double, [c_size_t]),
    "quarot_random_signs": (_status, [_p, c_size_t, c_uint64]),
    "quarot_random_orthogonal": (_status, [_p, c_size_t, c_size_t, c_uint64]),
    # online handles
    "quarot_r4_wrapper_new": (
        _status,
        [
            c_size_t,
            c_size_t,
            _dtype,
            _flags,
            POINTER(QuantConfigStruct),
            OP_FN,
            c_void_p,
            POINTER(c_void_p),
        ],
    ),
    "quarot_r4_wrapper_forward": (_status, [c_void_p, _p, c_size_t, c_size_t, _p, _flags]),
    "quarot_r4_wrapper_free": (None, [c_void_p]),
    "quarot_qk_rotation_new": (
        _status,
        [c_size_t, _dtype, _flags, ROPE_FN, c_void_p, POINTER(c_void_p)],
    ),
    "quarot_qk_rotation_forward": (
        _status,
        [c_void_p, _p, _p, POINTER(QKShapeStruct), c_void_p],
    ),
    "quarot_qk_rotation_free": (None, [c_void_p]),
    "quarot_last_callback_code": (c_int, []),
    "quarot_quantize": (
        _status,
        [_p, _dtype, c_size_t, c_size_t, c_size_t, POINTER(QuantConfigStruct), _p, _p, _p],
    ),
}


def _load() -> tuple[ctypes.CDLL, str]:
    path = find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"quarot: cannot load {path}: {e}") from e
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            MISSING.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if "quarot_version" in MISSING or "quarot_hadamard_f32" in MISSING:
        raise ImportError(f"quarot: {path} is not libquarot (it lacks the core functions)")
    return lib, path


#: Functions of quarot.h the loaded library does not export (an older build); calling
#: their wrappers raises NotImplementedError.
MISSING: list[str] = []


def require(name: str):
    """The bound C function ``name``, or NotImplementedError when the loaded library is
    too old to have it."""
    if name in MISSING:
        raise NotImplementedError(
            f"{name} is not exported by {LIB_PATH} (version "
            f"{LIB.quarot_version().decode()}): rebuild libquarot from the current sources"
        )
    return getattr(LIB, name)


#: The loaded ``ctypes.CDLL`` with every prototype of quarot.h declared.
LIB, LIB_PATH = _load()
