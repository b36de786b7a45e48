"""Builds the Cython extension with our native client library (native/)
compiled statically into it: `pip install .` is the whole install."""

import sys

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
)
