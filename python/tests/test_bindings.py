"""The bindings cover quarot.h: every function, constant and structure; library discovery;
the small utility functions."""

import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import quarot
from quarot import _lib
from refutil import REPO

HEADER = os.path.join(REPO, "include", "quarot.h")
PKG = os.path.dirname(os.path.abspath(quarot.__file__))

#: C function -> the public Python callable that wraps it.
WRAPPERS = {
    "quarot_hadamard_f32": quarot.hadamard_f32,
    "quarot_hadamard_f16": quarot.hadamard_f16,
    "quarot_hadamard_bf16": quarot.hadamard_bf16,
    "quarot_hadamard": quarot.hadamard,
    "quarot_hadamard_size_supported": quarot.size_supported,
    "quarot_hadamard_nearest_sizes": quarot.nearest_sizes,
    "quarot_hadamard_block_size": quarot.block_size,
    "quarot_hadamard_scale": quarot.hadamard_scale,
    "quarot_hadamard_k_matrix": quarot.k_matrix,
    "quarot_rows_for_thread": quarot.rows_for_thread,
    "quarot_set_num_threads": quarot.set_num_threads,
    "quarot_release_scratch": quarot.release_scratch,
    "quarot_scratch_retained": quarot.scratch_retained,
    "quarot_status_string": quarot.status_string,
    "quarot_last_error": quarot.last_error,
    "quarot_version": quarot.version,
    "quarot_active_isa": quarot.active_isa,
    "quarot_isa_available": quarot.isa_available,
    "quarot_isa_name": quarot.isa_name,
    "quarot_rotate_in_channels": quarot.rotate_in_channels,
    "quarot_rotate_out_channels": quarot.rotate_out_channels,
    "quarot_rotate_in_channels_hadamard": quarot.rotate_in_channels_hadamard,
    "quarot_rotate_out_channels_hadamard": quarot.rotate_out_channels_hadamard,
    "quarot_hadamard_matrix": quarot.hadamard_matrix,
    "quarot_quark_hadamard_scale": quarot.quark_hadamard_scale,
    "quarot_random_signs": quarot.random_signs,
    "quarot_random_orthogonal": quarot.random_orthogonal,
    "quarot_r4_wrapper_new": quarot.R4Wrapper,
    "quarot_r4_wrapper_forward": quarot.R4Wrapper.forward,
    "quarot_r4_wrapper_free": quarot.R4Wrapper.close,
    "quarot_qk_rotation_new": quarot.QKRotation,
    "quarot_qk_rotation_forward": quarot.QKRotation.forward,
    "quarot_qk_rotation_free": quarot.QKRotation.close,
    "quarot_last_callback_code": quarot.last_callback_code,
    "quarot_quantize": quarot.quantize,
}


def header_text():
    if not os.path.isfile(HEADER):
        pytest.skip(f"no header at {HEADER}")
    with open(HEADER) as f:
        return f.read()


def test_every_header_function_is_bound_and_wrapped():
    text = header_text()
    # declarations: a line that starts with a return type, not a comment line
    names = set(re.findall(r"^[a-z][a-z0-9_ ]*[ *](quarot_[a-z0-9_]+)\(", text, re.MULTILINE))
    assert len(names) >= 34
    assert names == set(_lib.PROTOTYPES), "prototypes out of sync with quarot.h"
    assert names == set(WRAPPERS), "a header function has no Python wrapper"
    for name in names:
        fn = getattr(quarot.lib, name)
        assert fn.argtypes is not None, name
        assert fn.restype == _lib.PROTOTYPES[name][0], name
        assert callable(WRAPPERS[name])
    # argument counts match the C declarations
    for m in re.finditer(r"\n[a-z_ *0-9]*?\b(quarot_[a-z0-9_]+)\(([^)]*)\);", text):
        name, args = m.group(1), m.group(2).strip()
        n_args = 0 if args in ("", "void") else args.count(",") + 1
        assert len(_lib.PROTOTYPES[name][1]) == n_args, name


def test_constants_match_header():
    text = header_text()
    defines = dict(re.findall(r"#define QUAROT_([A-Z0-9_]+) (\S+)", text))
    enums = dict(re.findall(r"\bQUAROT_(ERR_[A-Z_]+|OK) = (\d+)", text))
    checked = 0
    for name, value in list(defines.items()) + list(enums.items()):
        if name == "H":
            continue
        got = getattr(quarot, name)
        want = value.strip('"') if value.startswith('"') else int(value)
        assert got == want, name
        checked += 1
    assert checked >= 35
    assert quarot.VERSION_STRING == quarot.version()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_struct_layouts_match_c(tmp_path):
    header_text()
    fields = {
        "quarot_quant_config": _lib.QuantConfigStruct,
        "quarot_activations": _lib.ActivationsStruct,
        "quarot_qk_shape": _lib.QKShapeStruct,
    }
    lines = []
    for cname, cls in fields.items():
        lines.append(f'printf("{cname} size %zu\\n", sizeof(struct {cname}));')
        for f, _ in cls._fields_:
            lines.append(f'printf("{cname} {f} %zu\\n", offsetof(struct {cname}, {f}));')
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"quarot.h\"\nint main(void) {\n"
        + "\n".join(lines)
        + "\nreturn 0; }\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c99", "-I", os.path.dirname(HEADER), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cname, what, value = line.split()
        cls = fields[cname]
        got = ctypes.sizeof(cls) if what == "size" else getattr(cls, what).offset
        assert got == int(value), f"{cname}.{what}: ctypes {got}, C {value}"


def _run_python(code, env_extra, cwd, pythonpath):
    env = {k: v for k, v in os.environ.items() if k != "QUAROT_LIB"}
    env.update(env_extra)
    # Keep the caller's PYTHONPATH after ours (numpy may come from there, e.g. the
    # target/pydeps directory tests/python.rs installs into).
    env["PYTHONPATH"] = os.pathsep.join(p for p in [pythonpath, os.environ.get("PYTHONPATH", "")] if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True)


def test_library_discovery(tmp_path):
    # default in a checkout: ../../target/release relative to the package
    if "QUAROT_LIB" not in os.environ:
        assert os.path.samefile(quarot.lib_path, os.path.join(REPO, "target", "release", "libquarot.so"))
    real = quarot.lib_path
    # 1. QUAROT_LIB wins; a bad one is a clear ImportError
    r = _run_python("import quarot; print(quarot.lib_path)", {"QUAROT_LIB": real}, str(tmp_path), os.path.dirname(PKG))
    assert r.returncode == 0 and os.path.samefile(r.stdout.strip(), real), r.stderr
    r = _run_python("import quarot", {"QUAROT_LIB": str(tmp_path / "nope.so")}, str(tmp_path), os.path.dirname(PKG))
    assert r.returncode != 0 and "ImportError" in r.stderr and "QUAROT_LIB" in r.stderr
    # 2. a copy of the package with libquarot.so next to it
    pkg = tmp_path / "site" / "quarot"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(real, pkg / "libquarot.so")
    r = _run_python("import quarot; print(quarot.lib_path, quarot.version())", {}, str(tmp_path), str(pkg.parent))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == str(pkg / "libquarot.so")
    # 3. nothing to find: the error lists the places searched
    os.remove(pkg / "libquarot.so")
    r = _run_python("import quarot", {}, str(tmp_path), str(pkg.parent))
    assert r.returncode != 0
    assert "cannot find the libquarot shared library" in r.stderr and "target" in r.stderr


def test_info_functions():
    assert quarot.version() == quarot.VERSION_STRING
    isa = quarot.active_isa()
    assert isa in (quarot.ISA_SCALAR, quarot.ISA_AVX2, quarot.ISA_AVX512)
    assert quarot.isa_available(isa) and quarot.isa_available(quarot.ISA_SCALAR)
    assert not quarot.isa_available(99)
    assert quarot.isa_name(quarot.ISA_AVX2) == "avx2"
    assert quarot.isa_name(99) == "unknown"
    assert quarot.isa_name() == quarot.isa_name(isa)
    assert quarot.status_string(quarot.OK) == "success"
    assert quarot.status_string(999) == "unknown status"
    for code, name in quarot.STATUS_NAMES.items():
        assert getattr(quarot, name) == code


def test_rows_for_thread_and_threads():
    parts = [quarot.rows_for_thread(10, i, 3) for i in range(3)]
    assert parts == [(0, 4), (4, 3), (7, 3)]
    assert sum(c for _, c in parts) == 10
    with pytest.raises(quarot.QuarotError) as e:
        quarot.rows_for_thread(10, 3, 3)
    assert e.value.status == quarot.ERR_INVALID_ARGUMENT
    assert "3" in e.value.message
    with pytest.raises(ValueError):
        quarot.rows_for_thread(-1, 0, 1)
    quarot.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((300, 4096)).astype(np.float32)
    a, b = x.copy(), x.copy()
    quarot.hadamard(a, flags=quarot.FLAG_PARALLEL)
    quarot.hadamard(b)
    assert np.array_equal(a, b)
    quarot.set_num_threads(0)
    with pytest.raises(quarot.QuarotError):
        quarot.set_num_threads(100000)


def test_error_object():
    err = quarot.QuarotError(quarot.ERR_OVERLAP, "details")
    assert isinstance(err, Exception)
    assert err.status == 7 and err.name == "source and destination overlap"
    assert err.code_name == "ERR_OVERLAP" and err.message == "details"
    assert str(err) == "source and destination overlap: details"
    assert err.callback_code is None


def test_dtype_helpers():
    assert quarot.dtype_code("bf16") == quarot.DTYPE_BF16 == quarot.dtype_code(30)
    assert quarot.dtype_code(np.float16) == quarot.DTYPE_F16
    assert quarot.dtype_code("float32") == quarot.DTYPE_F32
    with pytest.raises(ValueError):
        quarot.dtype_code(2)
    x = np.array([1.0, -2.5, 3.14159, 1e-40, np.inf, -np.inf], np.float32)
    bits = quarot.float32_to_bf16_bits(x)
    back = quarot.bf16_bits_to_float32(bits)
    assert back[0] == 1.0 and back[1] == -2.5 and back[4] == np.inf and back[5] == -np.inf
    assert np.isnan(quarot.bf16_bits_to_float32(quarot.float32_to_bf16_bits(np.float32(np.nan))))
    if quarot.BFLOAT16 is not None:
        assert np.array_equal(bits, x.astype(quarot.BFLOAT16).view(np.uint16))
        assert quarot.numpy_dtype(quarot.DTYPE_BF16) == quarot.BFLOAT16
