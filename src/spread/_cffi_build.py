"""Builds spread._cffi_native: the cffi backend's native module, in cffi's
out-of-line API mode, from the same native/ sources as the Cython module.
setup.py also takes NATIVE_SOURCES from here (one list for both) and checks
the build tools with require_build_tools() before anything is compiled.
Importing this file runs nothing: cffi calls make_ffibuilder()."""

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NATIVE_SOURCES = [
    "native/wire.c",
    "native/receiver.c",
    "native/bench.c",
    "native/library.c",
    *sorted(glob("native/client/*.c", root_dir=ROOT)),
    *sorted(f for f in glob("native/daemon/*.c", root_dir=ROOT) if not f.endswith("main.c")),
]
INCLUDE_DIRS = ["native/include", "native", "native/daemon"]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _names import INTERNAL_CONSTANTS, SP_CONSTANTS  # noqa: E402  (one list)

CONSTANTS = SP_CONSTANTS + INTERNAL_CONSTANTS

HEADERS = ("sp.h", "spx.h", "receiver.h", "daemon.h", "bench.h", "library.h")


def compiler_command() -> list[str]:
    """The C compiler command setuptools builds extensions with: $CC, or
    the one this Python was built with, and their flags."""
    import setuptools  # noqa: F401  (first: its distutils, on Pythons without one)
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    return list(compiler.compiler_so)  # type: ignore[attr-defined]  # a UnixCCompiler


def build_tools_problem() -> str | None:
    """What the build lacks, in one line saying what to install; None if
    nothing."""
    if not sys.platform.startswith("linux"):
        return (f"spread-client builds on Linux only (its native library uses epoll), "
                f"not on {sys.platform}")
    compiler = compiler_command()[0]
    if shutil.which(compiler) is None:
        return (f"spread-client needs a C compiler to build its native library, and "
                f"{compiler!r} (from $CC or Python's build settings) was not found: install "
                f"gcc or clang (e.g. apt-get install gcc) or set CC to one")
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (f"spread-client needs the Python {version} headers to build, and Python.h is "
                f"not in {include}: install them (e.g. apt-get install python{version}-dev)")
    return None


def require_build_tools() -> None:
    """Ends the build with one line if a tool it needs is missing."""
    problem = build_tools_problem()
    if problem:
        raise SystemExit(f"error: {problem}")


def header_declarations() -> str:
    """The C declarations of our headers, for cffi: the headers themselves,
    run through the C preprocessor (so nothing is declared twice), with
    empty stand-ins for the system headers and SPREAD_CDEF set, under which
    spx.h gives prototypes for its inline functions."""
    with tempfile.TemporaryDirectory() as stubs:
        for name in ("stddef.h", "stdint.h"):
            Path(stubs, name).write_text("")
        cmd = [*compiler_command(), "-E", "-P", "-nostdinc", "-I", stubs,
               "-DSPREAD_CDEF", *(f"-I{ROOT / d}" for d in INCLUDE_DIRS), "-"]
        source = "".join(f'#include "{h}"\n' for h in HEADERS)
        return subprocess.run(cmd, input=source, capture_output=True, text=True,
                              check=True).stdout


def make_ffibuilder():
    """The cffi builder of spread._cffi_native (setup.py's cffi_modules)."""
    from cffi import FFI

    require_build_tools()
    # Macros vanish in the preprocessor: cffi takes their values from the
    # headers when it compiles the module. (The SPR_ and SPD_ names are
    # enumerators, which the declarations already carry.)
    macros = [n for n in CONSTANTS if not n.startswith(("SPR_", "SPD_"))]
    ffibuilder = FFI()
    ffibuilder.cdef("".join(f"#define {name} ...\n" for name in macros) + header_declarations())
    ffibuilder.set_source("spread._cffi_native", "".join(f'#include "{h}"\n' for h in HEADERS),
                          sources=NATIVE_SOURCES, include_dirs=INCLUDE_DIRS,
                          extra_compile_args=["-D_GNU_SOURCE"], libraries=["dl"])
    return ffibuilder


if __name__ == "__main__":
    make_ffibuilder().compile(verbose=True)
