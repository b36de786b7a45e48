"""Builds the Cython extension with our native client library (native/)
compiled statically into it: `pip install .` is the whole install."""

from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

NATIVE_SOURCES = ["native/wire.c", *sorted(glob("native/client/*.c"))]
NATIVE_FLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra"]

core = Extension(
    "spread._core",
    sources=["src/spread/_core.pyx", *NATIVE_SOURCES],
    include_dirs=["native/include", "native"],
    extra_compile_args=["-D_GNU_SOURCE"],
)

setup(
    ext_modules=cythonize(
        [core],
        compiler_directives={"language_level": "3"},
    ),
)
