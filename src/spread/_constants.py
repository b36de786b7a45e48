"""The sp.h constants under their classic names, with values from sp.h.

The names are declared once, in libspread.pxd; the compiled backend takes
their values from native/include/sp.h at build time.
"""

from . import _core

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
