"""The sp.h constants under their classic names, with values from sp.h.

The values come from native/include/sp.h through the backend (compiled into
it at build time).
"""

from ._backend import core as _core
from ._names import SP_CONSTANTS as NAMES

__all__ = list(NAMES)
globals().update({name: getattr(_core, name) for name in NAMES})
