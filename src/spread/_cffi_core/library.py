"""The native module cffi built (spread._cffi_native) and the Spread library
calls go through: ours, or the one SPREAD_LIBRARY names, loaded at run
time (native/binding/library.c); then only Spread's own API is taken from it and
our extensions (descriptor holds, interruptible and batched receives) are
not used. The sp.h constants under their classic names, and the library's
error texts and version."""

from __future__ import annotations

import os

from .. import _args
from .._cffi_native import ffi, lib
from .._names import SP_CONSTANTS

__all__ = [
    "LIBRARY",
    "NATIVE",
    "SLOT",
    "error_text",
    "ffi",
    "lib",
    "raise_error",
    "sp",
    "version",
    *SP_CONSTANTS,
]

LIBRARY = os.environ.get("SPREAD_LIBRARY") or None
if LIBRARY:
    _err = ffi.new("char[512]")
    if lib.spl_load(LIBRARY.encode(), _err, 512) != 0:
        raise ImportError(f"SPREAD_LIBRARY={LIBRARY}: {ffi.string(_err).decode()}")
    sp = ffi.addressof(lib, "spl")  # calls go through the loaded library's table
else:
    sp = lib
NATIVE = LIBRARY is None  # our own library, with its extensions

SLOT = 32  # bytes of a name on the wire


def _signed(value: int) -> int:
    """sp.h's int constants (ENDIAN_RESERVED is 0x80000080) as C ints."""
    return value - (1 << 32) if value >= 1 << 31 else value


globals().update({n: _signed(getattr(lib, n)) for n in SP_CONSTANTS})


def error_text(code) -> str:
    """The Spread library's text for an error code (what SP_error prints)."""
    c = code if type(code) is int else _args.integer(code, "code")
    return ffi.string(lib.SPX_error_text(c if -(1 << 31) <= c < 1 << 31 else 0)).decode("ascii")


def raise_error(code: int, where: str | None = None):
    raise _args.error(code, where, error_text(code))


def version():
    """The Spread protocol version of the library: (major, minor, patch)."""
    v = ffi.new("int[3]")
    sp.SP_version(v, v + 1, v + 2)
    return (v[0], v[1], v[2])
