# The backend chosen at import: every one provides what spread._core does.

from typing import Final, Literal

from . import _core as core

__all__ = ["BACKEND_API", "INTERNAL_API", "core", "name"]

MODULES: Final[dict[str, str]]
BACKEND_API: Final[list[str]]
INTERNAL_API: Final[list[str]]
name: Literal["cython", "cffi"]
