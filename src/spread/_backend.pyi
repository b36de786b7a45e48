# The backend chosen at import: every one provides what spread._core does.

from typing import Final, Literal

from . import _core as core

__all__ = ["PUBLIC_API", "core", "name"]

PUBLIC_API: Final[list[str]]
name: Literal["cython", "cffi"]
