"""Builds our native client library (native/) once, as a static library,
and the two extensions linked with it: the Cython module and the cffi one.
`pip install .` is the whole install."""

import os
import sys

# SPREAD_SANITIZE=1: the native library and both extensions built with
# AddressSanitizer and UBSan, for CI's sanitized test run. setuptools adds
# CFLAGS to every compile (the static library's, build_clib, included) and
# LDFLAGS to every extension's link, the cffi module's included; in a build
# directory of its own, so that objects of a plain build are never reused.
# Off by default; nothing else changes.
SANITIZE = os.environ.get("SPREAD_SANITIZE") == "1"
if SANITIZE:
    sanitize = (
        "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    )
    for var in ("CFLAGS", "LDFLAGS"):
        os.environ[var] = f"{os.environ.get(var, '')} {sanitize}".strip()

sys.path.insert(0, "src/spread")
from _cffi_build import (  # noqa: E402
    EXTENSION_LIBRARIES,
    INCLUDE_DIRS,
    NATIVE_LIBRARY,
    NATIVE_MACROS,
    require_build_tools,
)

# A missing compiler or Python.h is one line saying what to install, here,
# rather than a compiler's traceback halfway through the build.
require_build_tools()

from Cython.Build import cythonize  # noqa: E402
from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402


class build_ext_after_clib(build_ext):
    """build_ext that builds the static native library first, also when it
    runs alone (setup.py build_ext, an editable install), not only as a step
    of `build`, which runs build_clib before it anyway."""

    def run(self):
        self.run_command("build_clib")
        super().run()


core = Extension(
    "spread._core",
    sources=["src/spread/_core.pyx"],
    include_dirs=INCLUDE_DIRS,
    define_macros=NATIVE_MACROS,
    libraries=EXTENSION_LIBRARIES,
)

setup(
    ext_modules=cythonize(
        [core],
        compiler_directives={"language_level": "3"},
    ),
    # The native sources, compiled once into a static library that build_ext
    # links into every extension (both below).
    libraries=[NATIVE_LIBRARY],
    cmdclass={"build_ext": build_ext_after_clib},
    # The cffi backend's module, linked with the same library.
    cffi_modules=["src/spread/_cffi_build.py:make_ffibuilder"],
    options={"build": {"build_base": "build/sanitized"}} if SANITIZE else {},
)
