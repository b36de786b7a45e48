"""Which native backend `import spread` runs on, chosen once at import.

SPREAD_BACKEND=cython or cffi forces one. Otherwise the Cython module is
used, and the cffi module where Cython's is unavailable (first on PyPy); when
none loads, the first error is raised, so the real cause shows.

A backend is marshalling and hot loops only: the public classes are
spread/_mailbox.py's and _receiver.py's subclasses of its MailboxBase and
ReceiverBase, and everything cold is written once there. Every backend
exports the names in BACKEND_API (what the Python layer builds on) and
INTERNAL_API (test hooks and the C baseline loops of spread.bench): the
two lists are the contract between them, checked at import.
"""

from __future__ import annotations

import importlib
import os
import platform

__all__ = ["BACKEND_API", "INTERNAL_API", "core", "name"]

MODULES = {"cython": "spread._core", "cffi": "spread._cffi_core"}

BACKEND_API = [
    "MailboxBase",
    "ReceiverBase",
    "RegularMsg",
    "connect_raw",
    "start_receiver",
    "error_text",
    "version",
    "NativeDaemon",
    "LOG_LEVELS",
]

INTERNAL_API = [
    "c_multicast",
    "c_self",
    "c_receive",
    "c_ping",
    "c_pong",  # spread.bench's C loops
    "_memb_info",
    "_vs_sets_info",  # the C decoders, for the vector tests
]


def _order() -> list[str]:
    forced = os.environ.get("SPREAD_BACKEND", "").strip().lower()
    if forced:
        if forced not in MODULES:
            raise ImportError(f"SPREAD_BACKEND must be one of {sorted(MODULES)}, not {forced!r}")
        return [forced]
    if platform.python_implementation() == "PyPy":
        return ["cffi", "cython"]
    return ["cython", "cffi"]


def _load():
    first_error: ImportError | None = None
    for candidate in _order():
        try:
            module = importlib.import_module(MODULES[candidate])
        except ImportError as e:
            first_error = first_error or e
            continue
        missing = [n for n in BACKEND_API + INTERNAL_API if not hasattr(module, n)]
        if missing:
            raise ImportError(f"spread backend {candidate!r} lacks {', '.join(missing)}")
        return candidate, module
    assert first_error is not None  # _order() names at least one
    raise first_error


name, core = _load()
