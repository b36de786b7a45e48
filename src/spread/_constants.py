"""The sp.h constants under their classic names, with values from sp.h.

The values come from native/include/sp.h through the backend (compiled into
it at build time).
"""

from ._backend import core as _core

# Everything upper-case and integral in the backend is an sp.h constant, except
# the two buffer sizes the classic wrapper added (exported by __init__).
_WRAPPER_ONLY = {"DEFAULT_BUFFER_SIZE", "DEFAULT_GROUPS_SIZE"}
NAMES = tuple(
    name
    for name, value in vars(_core).items()
    if name.isupper() and type(value) is int and name not in _WRAPPER_ONLY
)
__all__ = list(NAMES)
globals().update({name: getattr(_core, name) for name in NAMES})
