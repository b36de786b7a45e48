"""Builds spread._cffi_native: the cffi backend's native module, in cffi's
out-of-line API mode, from the same native/ sources as the Cython module.
setup.py also takes NATIVE_SOURCES from here: one list for both."""

import os
import shlex
import subprocess
import tempfile
from glob import glob
from pathlib import Path

from cffi import FFI

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

import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _names import INTERNAL_CONSTANTS, SP_CONSTANTS  # noqa: E402  (one list)

CONSTANTS = SP_CONSTANTS + INTERNAL_CONSTANTS

HEADERS = ("sp.h", "spx.h", "receiver.h", "daemon.h", "bench.h", "library.h")


def header_declarations() -> str:
    """The C declarations of our headers, for cffi: the headers themselves,
    run through the C preprocessor (so nothing is declared twice), with
    empty stand-ins for the system headers and SPREAD_CDEF set, under which
    spx.h gives prototypes for its inline functions."""
    with tempfile.TemporaryDirectory() as stubs:
        for name in ("stddef.h", "stdint.h"):
            Path(stubs, name).write_text("")
        cmd = [*shlex.split(os.environ.get("CC", "cc")), "-E", "-P", "-nostdinc", "-I", stubs,
               "-DSPREAD_CDEF", *(f"-I{ROOT / d}" for d in INCLUDE_DIRS), "-"]
        source = "".join(f'#include "{h}"\n' for h in HEADERS)
        return subprocess.run(cmd, input=source, capture_output=True, text=True,
                              check=True).stdout


# Macros vanish in the preprocessor: cffi takes their values from the headers
# when it compiles the module. (The SPR_ and SPD_ names are enumerators, which
# the declarations already carry.)
MACROS = [n for n in CONSTANTS if not n.startswith(("SPR_", "SPD_"))]
CDEF = "".join(f"#define {name} ...\n" for name in MACROS) + header_declarations()

SOURCE = "".join(f'#include "{h}"\n' for h in HEADERS)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("spread._cffi_native", SOURCE, sources=NATIVE_SOURCES,
                      include_dirs=INCLUDE_DIRS, extra_compile_args=["-D_GNU_SOURCE"],
                      libraries=["dl"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
