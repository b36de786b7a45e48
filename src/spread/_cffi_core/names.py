"""Names in 32-byte slots, as str (UTF-8, surrogateescape) or bytes."""

from __future__ import annotations

from .._args import NAME_ENCODING
from .library import SLOT, ffi


def slot(raw: bytes, as_bytes: bool):
    name = raw.split(b"\0", 1)[0]
    return name if as_bytes else name.decode(NAME_ENCODING, "surrogateescape")


def slots(buf, n: int, as_bytes: bool) -> tuple:
    raw = ffi.unpack(ffi.cast("char *", buf), n * SLOT)
    return tuple(slot(raw[i * SLOT : (i + 1) * SLOT], as_bytes) for i in range(n))
