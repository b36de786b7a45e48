"""Builds spread._cffi_native: the cffi backend's native module, in cffi's
out-of-line API mode, linked with the same static native library as the
Cython module. setup.py also takes NATIVE_LIBRARY from here (one list of
sources for both) and checks the build tools with require_build_tools()
before anything is compiled. Importing this file runs nothing: cffi calls
make_ffibuilder()."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The native library, by role (native/README.md), named file by file: what
# goes into the extensions is chosen here, not swept in by a glob.
PROTOCOL_SOURCES = ["native/protocol/wire.c"]
CLIENT_SOURCES = [
    f"native/client/{name}.c"
    for name in (
        "connect",
        "errors",
        "membership",
        "receive",
        "receive_grow",
        "send",
        "session",
        "stream",
    )
]
# What only the bindings use: the drain thread of ThreadedReceiver, the
# table of the client library in use (ours, or SPREAD_LIBRARY's), and the
# cffi backend's hot paths (cffi_fast).
BINDING_SOURCES = [
    f"native/binding/{name}.c"
    for name in (
        "cffi_fast",
        "library",
        "receiver",
        "receiver_drain",
        "receiver_queue",
        "receiver_ready",
        "receiver_wait",
    )
]
# The embedded daemon (spread.daemon runs it in-process; daemon/main.c is the
# stand-alone program's, not the extensions').
DAEMON_SOURCES = [
    f"native/daemon/{name}.c"
    for name in (
        "control",
        "groups",
        "handshake",
        "listen",
        "queue",
        "remote",
        "server",
        "table",
    )
]
# The C baseline loops of spread.bench.
BENCH_SOURCES = ["native/bench/bench.c"]
NATIVE_SOURCES = [
    *PROTOCOL_SOURCES,
    *CLIENT_SOURCES,
    *BINDING_SOURCES,
    *DAEMON_SOURCES,
    *BENCH_SOURCES,
]

# Every header a binding sees is in one folder; the library's own internal
# headers (the wire codec's among them) only its own compile sees.
INCLUDE_DIRS = ["native/include"]
NATIVE_INCLUDE_DIRS = [*INCLUDE_DIRS, "native/protocol"]
NATIVE_MACROS = [("_GNU_SOURCE", None)]

# The native sources built once, as the static library spread_native, which
# setup.py gives setuptools (build_clib) and build_ext links into both
# extensions (spread._core and spread._cffi_native). Objects of a static
# library linked into a shared one: setuptools compiles them as it compiles
# extensions, position-independent (Python's CCSHARED, -fPIC), with $CFLAGS.
NATIVE_LIBRARY_NAME = "spread_native"
NATIVE_LIBRARY = (
    NATIVE_LIBRARY_NAME,
    {
        "sources": NATIVE_SOURCES,
        "include_dirs": NATIVE_INCLUDE_DIRS,
        "macros": NATIVE_MACROS,
    },
)
# Libraries each extension links, in link order: ours, then what it needs
# (dlopen for SPREAD_LIBRARY).
EXTENSION_LIBRARIES = [NATIVE_LIBRARY_NAME, "dl"]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _names import INTERNAL_CONSTANTS, SP_CONSTANTS  # type: ignore[import-not-found]  # noqa: E402  (one list)

# Macros of the headers that no list of _names.py carries (the C helpers
# both backends share): declared to cffi here, so that lib has them too.
SHARED_MACROS = (
    "SPX_MAX_SAFE_BODY",
    "SPX_NO_MEMORY",
    "SPX_RECV_FIRST_DATA",
    "SPX_RECV_FIRST_GROUPS",
    "SPR_HEADER_BYTES",
    "CFF_BATCH",
    "CFF_INFO",
    "CFF_ENDED",
    "CFF_HELP_DUE",
    "CFF_MOVED",
)
CONSTANTS = (
    SP_CONSTANTS
    + INTERNAL_CONSTANTS
    + tuple(n for n in SHARED_MACROS if n not in SP_CONSTANTS + INTERNAL_CONSTANTS)
)

HEADERS = ("sp.h", "spx.h", "receiver.h", "daemon.h", "bench.h", "library.h", "cffi_fast.h")

# cffi gives the interpreter lock up around every call of a C function (its
# generated wrappers bracket the call with Py_BEGIN_ALLOW_THREADS and
# Py_END_ALLOW_THREADS), and offers no way to declare a function that keeps
# it. Under CPU-bound Python threads each give-up costs up to the switch
# interval (5 ms) before the lock comes back. The module's own source
# redefines the two macros, for the wrappers that follow it: a wrapper of a
# function named cff_ (cffi_fast.h: they never block) keeps the lock, every
# other one gives it up as before, and counts that it did. Probes let the
# tests check that this holds for the cffi that built the module, and count
# what a path gives up (tests/test_cffi_fast.py). PyPy, where cffi's calls
# are its own, is left as it is.
KEEP_LOCK = "cff_"
KEEP_LOCK_SOURCE = rf"""
#ifndef PYPY_VERSION
static unsigned long long spread_lock_releases;
static int spread_keeps_lock(const char *wrapper)
{{
    if (__builtin_strncmp(wrapper, "_cffi_f_{KEEP_LOCK}", {len("_cffi_f_" + KEEP_LOCK)}) == 0)
        return 1;
    __atomic_fetch_add(&spread_lock_releases, 1, __ATOMIC_RELAXED);
    return 0;
}}
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS \
    {{ PyThreadState *_save = spread_keeps_lock(__func__) ? NULL : PyEval_SaveThread();
#define Py_END_ALLOW_THREADS \
    if (_save) \
        PyEval_RestoreThread(_save); \
    }}
static int {KEEP_LOCK}probe_lock(void) {{ return PyGILState_Check(); }}
static int cffw_probe_lock(void) {{ return PyGILState_Check(); }}
static unsigned long long {KEEP_LOCK}lock_releases(void)
{{
    return __atomic_load_n(&spread_lock_releases, __ATOMIC_RELAXED);
}}
#else
static int {KEEP_LOCK}probe_lock(void) {{ return -1; }}
static int cffw_probe_lock(void) {{ return -1; }}
static unsigned long long {KEEP_LOCK}lock_releases(void) {{ return 0; }}
#endif
"""
# The probes' declarations: whether a call holds the lock (1, 0; -1 on
# PyPy), and how many calls have given it up.
PROBE_DECLARATIONS = (
    f"int {KEEP_LOCK}probe_lock(void);\n"
    "int cffw_probe_lock(void);\n"
    f"unsigned long long {KEEP_LOCK}lock_releases(void);\n"
)


def compiler_command() -> list[str]:
    """The C compiler command setuptools builds extensions with: $CC, or
    the one this Python was built with, and their flags."""
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler

    import setuptools  # noqa: F401  (first: its distutils, on Pythons without one)

    compiler = new_compiler()
    customize_compiler(compiler)
    return list(compiler.compiler_so)  # type: ignore[attr-defined]  # a UnixCCompiler


def build_tools_problem() -> str | None:
    """What the build lacks, in one line saying what to install; None if
    nothing."""
    if not sys.platform.startswith("linux"):
        return (
            f"spread-client builds on Linux only (its native library uses epoll), "
            f"not on {sys.platform}"
        )
    compiler = compiler_command()[0]
    if shutil.which(compiler) is None:
        return (
            f"spread-client needs a C compiler to build its native library, and "
            f"{compiler!r} (from $CC or Python's build settings) was not found: install "
            f"gcc or clang (e.g. apt-get install gcc) or set CC to one"
        )
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (
            f"spread-client needs the Python {version} headers to build, and Python.h is "
            f"not in {include}: install them (e.g. apt-get install python{version}-dev)"
        )
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
        cmd = [
            *compiler_command(),
            "-E",
            "-P",
            "-nostdinc",
            "-I",
            stubs,
            "-DSPREAD_CDEF",
            *(f"-I{ROOT / d}" for d in INCLUDE_DIRS),
            "-",
        ]
        source = "".join(f'#include "{h}"\n' for h in HEADERS)
        return subprocess.run(cmd, input=source, capture_output=True, text=True, check=True).stdout


def make_ffibuilder(standalone: bool = False):
    """The cffi builder of spread._cffi_native (setup.py's cffi_modules),
    linked with the static library that setup.py builds (build_clib);
    standalone (this file run as a script): compiled with the native sources
    itself instead."""
    from cffi import FFI

    require_build_tools()
    # Macros vanish in the preprocessor: cffi takes their values from the
    # headers when it compiles the module. (The SPR_ and SPD_ names are
    # enumerators, which the declarations already carry, but for the shared
    # macros.)
    macros = [n for n in CONSTANTS if n in SHARED_MACROS or not n.startswith(("SPR_", "SPD_"))]
    ffibuilder = FFI()
    ffibuilder.cdef(
        "".join(f"#define {name} ...\n" for name in macros)
        + header_declarations()
        + PROBE_DECLARATIONS
    )
    ffibuilder.set_source(
        "spread._cffi_native",
        "".join(f'#include "{h}"\n' for h in HEADERS) + KEEP_LOCK_SOURCE,
        sources=NATIVE_SOURCES if standalone else [],
        include_dirs=NATIVE_INCLUDE_DIRS if standalone else INCLUDE_DIRS,
        define_macros=NATIVE_MACROS,
        libraries=["dl"] if standalone else EXTENSION_LIBRARIES,
    )
    return ffibuilder


if __name__ == "__main__":
    make_ffibuilder(standalone=True).compile(verbose=True)
