"""How a ThreadedReceiver's stream ends, written once for both backends:
the exception get() raises once every message received before the end has
been taken. The backends check the receiver's state in C on every empty
queue and come here only when the stream has ended."""

from __future__ import annotations

from . import _args
from ._errors import BacklogOverflow, ReceiverClosed, SpreadError

# native/binding/receiver.h's end states (tests/test_surface.py checks them).
SPR_RUNNING, SPR_CLOSED, SPR_FAILED, SPR_OVERFLOWED = 0, 1, 2, 3
CONNECTION_CLOSED, ILLEGAL_SESSION = -8, -11


def end_error(state: int, code: int, library_text: str) -> SpreadError:
    """The exception for a receiver that stopped in state with error code
    (the library's text for it given); an overflowed one has disconnected."""
    if state == SPR_FAILED:
        return _args.error(code, "receive()", library_text)
    if state == SPR_OVERFLOWED:
        return BacklogOverflow(
            CONNECTION_CLOSED, "receiver backlog passed max_backlog_bytes; disconnected"
        )
    return ReceiverClosed(ILLEGAL_SESSION, "the receiver is closed and drained")
