"""Builds our native client library (native/) once, as a static library,
and the two extensions linked with it: the Cython module and the cffi one.
`pip install .` is the whole install."""

import os
import platform
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

# requires-python admits 3.9 for PyPy's sake (Debian's pypy3 is a 3.9); the
# CPythons tested and supported start at 3.10 (pyproject.toml's classifiers).
if platform.python_implementation() == "CPython" and sys.version_info < (3, 10):
    raise SystemExit(
        f"error: spread-client supports CPython 3.10 or newer (or PyPy 3.9 or newer), "
        f"not CPython {sys.version_info.major}.{sys.version_info.minor}"
    )

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402


class build_ext_after_clib(build_ext):
    """build_ext that builds the static native library first, also when it
    runs alone (setup.py build_ext, an editable install), not only as a step
    of `build`, which runs build_clib before it anyway; and runs Cython here,
    when a wheel is built, not whenever setup.py runs (making the sdist needs
    no generated C)."""

    def run(self):
        self.run_command("build_clib")
        if any(src.endswith(".pyx") for ext in self.extensions for src in ext.sources):
            from Cython.Build import cythonize

            # Cython's copies carry the generated C as their sources; the
            # extensions keep everything else setuptools set on them.
            generated = cythonize(self.extensions, compiler_directives={"language_level": "3"})
            for ext, cythonized in zip(self.extensions, generated):
                ext.sources = cythonized.sources
        super().run()


def cython_extensions() -> list[Extension]:
    """spread._core, the Cython backend, on CPython. PyPy gets the cffi
    backend alone: a Cython module would run there through cpyext, its
    C-API emulation, slower than cffi and without the CPython internals that
    _core.pyx relies on (pyproject.toml asks for Cython on CPython only)."""
    if platform.python_implementation() != "CPython":
        return []
    core = Extension(
        "spread._core",
        sources=["src/spread/_core.pyx"],
        include_dirs=INCLUDE_DIRS,
        define_macros=NATIVE_MACROS,
        libraries=EXTENSION_LIBRARIES,
    )
    return [core]


setup(
    ext_modules=cython_extensions(),
    # The native sources, compiled once into a static library that build_ext
    # links into every extension (both below).
    libraries=[NATIVE_LIBRARY],
    cmdclass={"build_ext": build_ext_after_clib},
    # The cffi backend's module, linked with the same library.
    cffi_modules=["src/spread/_cffi_build.py:make_ffibuilder"],
    options={"build": {"build_base": "build/sanitized"}} if SANITIZE else {},
)
