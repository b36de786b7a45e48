"""Builds the Cython extension with our native client library (native/)
compiled statically into it: `pip install .` is the whole install."""

from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

NATIVE_SOURCES = [
    "native/wire.c",
    "native/receiver.c",
    "native/bench.c",
    *sorted(glob("native/client/*.c")),
    *sorted(f for f in glob("native/daemon/*.c") if not f.endswith("main.c")),
]

core = Extension(
    "spread._core",
    sources=["src/spread/_core.pyx", *NATIVE_SOURCES],
    include_dirs=["native/include", "native", "native/daemon"],
    extra_compile_args=["-D_GNU_SOURCE"],
)

setup(
    ext_modules=cythonize(
        [core],
        compiler_directives={"language_level": "3"},
    ),
)
