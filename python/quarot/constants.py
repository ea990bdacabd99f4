"""The constants of ``quarot.h``, named as in C without the ``QUAROT_`` prefix.

All of them are also available directly from the :mod:`quarot` package
(``quarot.FLAG_TRANSPOSE_K`` etc.).
"""

#: Version of the header these bindings were written against (compare with
#: :func:`quarot.version`, the loaded library's version).
VERSION_MAJOR = 0
VERSION_MINOR = 1
VERSION_PATCH = 0
VERSION_STRING = "0.1.0"

# ---- transform flags (uint32 bit set) ----------------------------------------------------
#: Use H_K^T instead of H_K (Quark >= 0.11 ``matmul_hadU``); with the normalized scale also
#: the inverse of the transform without this flag. No effect for K = 1, 28, 36.
FLAG_TRANSPOSE_K = 1
#: Quark <= 0.10 ``hadamard_transform`` / ``hadamard_multiply`` / ``QKRotation``: zero-pad
#: each row to the next power of two P, transform with H_P, truncate to n (any n >= 1; NOT
#: orthogonal unless n is a power of two).
FLAG_PAD_TRUNCATE = 2
#: Split the rows over libquarot's own worker pool (see :func:`quarot.set_num_threads`).
FLAG_PARALLEL = 4
#: Weight rotations only: accumulate the dense product in float instead of double.
FLAG_F32_ACCUMULATE = 8
#: Widths with no Hadamard matrix: n / b independent blocks of
#: b = :func:`quarot.block_size` (n) values (weaker mixing; orthogonal scale is that of b).
FLAG_BLOCK_DIAGONAL = 16

# ---- activation quantization kinds (QuantConfig.kind) -------------------------------------
QUANT_NONE = 0
QUANT_FAKE = 1
QUANT_REAL = 2
QUANT_CUSTOM = 3

#: :meth:`quarot.R4Wrapper.forward` flag: rotate the caller's rows in place and hand those
#: to the op.
FORWARD_IN_PLACE = 1

# ---- status codes (quarot_status) ----------------------------------------------------------
OK = 0
ERR_NULL_POINTER = 1
ERR_UNSUPPORTED_SIZE = 2
ERR_INVALID_STRIDE = 3
ERR_SIZE_OVERFLOW = 4
ERR_INVALID_FLAGS = 5
ERR_INVALID_DTYPE = 6
ERR_OVERLAP = 7
ERR_INVALID_ARGUMENT = 8
ERR_OUT_OF_MEMORY = 9
ERR_THREAD_POOL = 10
ERR_ISA_UNAVAILABLE = 11
ERR_PANIC = 12
ERR_CALLBACK = 13

# ---- element types (quarot_dtype; ggml's numbering) ----------------------------------------
DTYPE_F32 = 0
DTYPE_F16 = 1
DTYPE_BF16 = 30

# ---- instruction sets (quarot_isa) ---------------------------------------------------------
ISA_SCALAR = 0
ISA_AVX2 = 1
ISA_AVX512 = 2

# ---- Hadamard rotation layouts (quarot_hadamard_layout) ------------------------------------
#: R = kron(H_K, H_{2^m})^T * scale: Quark <= 0.10 ``matmul_hadU`` /
#: ``random_hadamard_matrix``.
LAYOUT_MATMUL_HADU = 0
#: R = kron(H_K, H_{2^m}) * scale: Quark >= 0.11 ``matmul_hadU`` /
#: ``random_hadamard_matrix`` / ``get_rotation_matrix``.
LAYOUT_MATMUL_HADU_T = 1
#: R = kron(H_{2^m}, H_K) * scale: Quark <= 0.10 ``get_rotation_matrix(n, random=False)``.
LAYOUT_KRON_POW2_K = 2

#: Status code -> C enumerator name (without the ``QUAROT_`` prefix).
STATUS_NAMES = {
    OK: "OK",
    ERR_NULL_POINTER: "ERR_NULL_POINTER",
    ERR_UNSUPPORTED_SIZE: "ERR_UNSUPPORTED_SIZE",
    ERR_INVALID_STRIDE: "ERR_INVALID_STRIDE",
    ERR_SIZE_OVERFLOW: "ERR_SIZE_OVERFLOW",
    ERR_INVALID_FLAGS: "ERR_INVALID_FLAGS",
    ERR_INVALID_DTYPE: "ERR_INVALID_DTYPE",
    ERR_OVERLAP: "ERR_OVERLAP",
    ERR_INVALID_ARGUMENT: "ERR_INVALID_ARGUMENT",
    ERR_OUT_OF_MEMORY: "ERR_OUT_OF_MEMORY",
    ERR_THREAD_POOL: "ERR_THREAD_POOL",
    ERR_ISA_UNAVAILABLE: "ERR_ISA_UNAVAILABLE",
    ERR_PANIC: "ERR_PANIC",
    ERR_CALLBACK: "ERR_CALLBACK",
}

__all__ = [n for n in dir() if n.isupper()]
