"""Backend selection: the one that loaded is the one asked for, and it
exports the whole contract."""

import os
import subprocess
import sys

import spread
from spread import _backend


def test_the_backend_under_test_really_loaded():
    wanted = os.environ.get("SPREAD_BACKEND")
    default = "cffi" if sys.implementation.name == "pypy" else "cython"  # _backend._order()
    assert spread.backend == (wanted or default)
    assert _backend.core.__name__ == _backend.MODULES[spread.backend]
    for name in _backend.BACKEND_API + _backend.INTERNAL_API:
        assert hasattr(_backend.core, name), name


def test_unknown_backend_is_refused():
    env = dict(os.environ, SPREAD_BACKEND="fortran")
    proc = subprocess.run(
        [sys.executable, "-c", "import spread"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "SPREAD_BACKEND must be one of" in proc.stderr


def test_external_library_really_loaded():
    """With SPREAD_LIBRARY, the cffi backend calls that library."""
    path = os.environ.get("SPREAD_LIBRARY")
    core = _backend.core
    if path:
        assert spread.backend == "cffi"
        assert core.LIBRARY == path and not core.NATIVE
        ours = core.ffi.addressof(core.lib, "SP_connect")
        assert core.ffi.cast("uintptr_t", core.sp.SP_connect) != core.ffi.cast("uintptr_t", ours)
    elif spread.backend == "cffi":
        assert core.NATIVE and core.sp is core.lib


def _import_with(library):
    env = dict(os.environ, SPREAD_BACKEND="cffi", SPREAD_LIBRARY=str(library))
    return subprocess.run(
        [sys.executable, "-c", "import spread"], env=env, capture_output=True, text=True, timeout=60
    )


def test_library_lacking_symbols_is_named(tmp_path):
    src = tmp_path / "partial.c"
    src.write_text(
        "int SP_version(int *a, int *b, int *c) { *a = 4; *b = *c = 0; return 1; }\n"
        "int SP_poll(int m) { (void)m; return 0; }\n"
    )
    lib = tmp_path / "libpartial.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True, timeout=60)
    proc = _import_with(lib)
    assert proc.returncode != 0
    missing = proc.stderr.split("lacks", 1)[1]
    assert "SP_connect" in missing and "SP_receive" in missing and "SP_poll" not in missing


def test_missing_library_file_is_reported(tmp_path):
    proc = _import_with(tmp_path / "nothing-here.so")
    assert proc.returncode != 0 and "cannot load it" in proc.stderr
