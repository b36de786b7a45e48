"""Which native backend `import spread` runs on, chosen once at import.

SPREAD_BACKEND=cython or cffi forces one. Otherwise the Cython module is
used, and the cffi module where Cython's is unavailable (first on PyPy); when
none loads, the first error is raised, so the real cause shows. Every backend
exports the names in PUBLIC_API: that list is the contract between them.
"""

from __future__ import annotations

import importlib
import os
import platform

__all__ = ["PUBLIC_API", "core", "name"]

MODULES = {"cython": "spread._core", "cffi": "spread._cffi_core"}

PUBLIC_API = [
    # the classic surface
    "connect", "version", "error_text", "Mailbox", "RegularMsg", "MembershipMsg", "GroupId",
    "DEFAULT_BUFFER_SIZE", "DEFAULT_GROUPS_SIZE",
    # beyond it
    "ThreadedReceiver", "NativeDaemon", "LOG_LEVELS",
    "c_multicast", "c_self", "c_receive", "c_ping", "c_pong",
    "_memb_info", "_vs_sets_info",
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
    first_error = None
    for candidate in _order():
        try:
            module = importlib.import_module(MODULES[candidate])
        except ImportError as e:
            first_error = first_error or e
            continue
        missing = [n for n in PUBLIC_API if not hasattr(module, n)]
        if missing:
            raise ImportError(f"spread backend {candidate!r} lacks {', '.join(missing)}")
        return candidate, module
    raise first_error


name, core = _load()
