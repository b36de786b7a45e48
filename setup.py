"""Builds the Cython extension with our native client library (native/)
compiled statically into it: `pip install .` is the whole install."""

import os
import sys

# SPREAD_SANITIZE=1: both extensions (and the native sources in them) built
# with AddressSanitizer and UBSan, for CI's sanitized test run. setuptools
# adds CFLAGS and LDFLAGS to every extension's compile and link, the cffi
# module's included; in a build directory of its own, so that objects of a
# plain build are never reused. Off by default; nothing else changes.
SANITIZE = os.environ.get("SPREAD_SANITIZE") == "1"
if SANITIZE:
    sanitize = ("-fsanitize=address,undefined -fno-sanitize-recover=undefined "
                "-fno-omit-frame-pointer")
    for var in ("CFLAGS", "LDFLAGS"):
        os.environ[var] = f"{os.environ.get(var, '')} {sanitize}".strip()

sys.path.insert(0, "src/spread")
from _cffi_build import INCLUDE_DIRS, NATIVE_SOURCES, require_build_tools  # noqa: E402

# A missing compiler or Python.h is one line saying what to install, here,
# rather than a compiler's traceback halfway through the build.
require_build_tools()

from Cython.Build import cythonize  # noqa: E402
from setuptools import Extension, setup  # noqa: E402

core = Extension(
    "spread._core",
    sources=["src/spread/_core.pyx", *NATIVE_SOURCES],
    include_dirs=INCLUDE_DIRS,
    extra_compile_args=["-D_GNU_SOURCE"],
    libraries=["dl"],
)

setup(
    ext_modules=cythonize(
        [core],
        compiler_directives={"language_level": "3"},
    ),
    # The cffi backend's module, built from the same native sources.
    cffi_modules=["src/spread/_cffi_build.py:make_ffibuilder"],
    options={"build": {"build_base": "build/sanitized"}} if SANITIZE else {},
)
