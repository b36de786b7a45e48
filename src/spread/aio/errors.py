"""spread.aio's own errors: WouldBlock and Closed (the rest are spread's)."""

from __future__ import annotations

from .._errors import IllegalSession

ILLEGAL_SESSION = -11  # sp.h (the code a call on a closed mailbox gets)
# spx.h: what a send that never waits returns besides its length
SPX_WOULD_BLOCK = -1001  # nothing was sent
SPX_PARTIAL = -1002  # part of it was; the library holds the rest

__all__ = ["Closed", "WouldBlock"]


class WouldBlock(Exception):
    """A *_nowait call could not go on without waiting: nothing was taken
    (receive_nowait: no message is buffered) or nothing was queued
    (multicast_nowait: the writer queue is full)."""


class Closed(IllegalSession):
    """The connection was closed by aclose(): raised in every task that
    waits on it, and by every later call. An IllegalSession, with its
    (code, text) args."""

    def __init__(self, what: str = "connection") -> None:
        super().__init__(ILLEGAL_SESSION, f"{what} closed by aclose()")
