"""spread.ThreadedReceiver: the receiver's cold half, written once above
both backends (its options, close, stats and the registry that stops every
drain thread at exit). The backend class it subclasses holds the hot
methods: get, get_nowait, get_batch, __next__ and fileno.

The layering rule (CONTRIBUTING.md): this class never overrides a hot
method, and adds no per-instance state (``__slots__ = ()``).
"""

from __future__ import annotations

import atexit
import weakref
from typing import Literal

from . import _args
from ._backend import core

# The fields of the backend's stats tuple, in order.
STATS = (
    "received",
    "received_by_consumers",
    "delivered",
    "backlog_messages",
    "backlog_bytes",
    "peak_backlog_messages",
    "peak_backlog_bytes",
    "first_at",
    "last_at",
    "state",
    "error",
)

# Every receiver state not yet freed: each is closed at exit, so that no
# drain thread outlives the interpreter's objects.
_live: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_receivers() -> None:
    for state in list(_live):
        state.close()


class ThreadedReceiver(core.ReceiverBase):
    """Drains a mailbox in a background thread so the daemon never sees a
    slow reader; take messages with get(), get_batch() or iteration.

    max_backlog_bytes: None (unbounded, the default) or the most payload
    bytes to hold (one read of up to 256 KiB may pass it). on_overflow:
    "disconnect" (leave the daemon cleanly; get() raises BacklogOverflow
    once the queued messages are taken) or "block" (stop draining until the
    consumer catches up; the daemon's own slow-reader rule then applies).
    """

    __slots__ = ()

    def __new__(cls, mailbox, *args, **options):
        if not isinstance(mailbox, core.MailboxBase):
            raise TypeError(
                f"ThreadedReceiver needs a spread Mailbox, not {type(mailbox).__name__}"
            )
        limit, block = _args.start_receiver(*args, **options)
        rx = core.start_receiver(cls, mailbox, limit, block)
        _live.add(rx._state)
        return rx

    def __init__(self, mailbox, *args, **options):
        pass  # __new__ made it

    def close(self) -> None:
        """Stops the thread, even while it waits in receive. Queued messages
        stay readable."""
        self._state.close()

    @property
    def closed(self) -> bool:
        """True once close() has been called (or the mailbox disconnected)."""
        return self._state.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def qsize(self) -> int:
        """The number of messages queued."""
        return self._state.stats()[3]

    @property
    def backlog_bytes(self) -> int:
        """Payload bytes queued."""
        return self._state.stats()[4]

    @property
    def stats(self) -> dict:
        """Counters: received (of which received_by_consumers: taken off the
        socket by a waiting consumer itself rather than the drain thread),
        delivered, backlog and peak backlog (messages, bytes), and the drain
        rate so far (messages per second taken off the socket, first to
        latest)."""
        st = dict(zip(STATS, self._state.stats()))
        first_at, last_at = st.pop("first_at"), st.pop("last_at")
        del st["state"], st["error"]
        span = last_at - first_at
        st["drain_rate"] = (st["received"] - 1) / span if span > 0 else 0.0
        return st

    def __repr__(self) -> str:
        state = "closed" if self.closed else "running"
        return f"<spread.ThreadedReceiver of {self.mailbox!r} {state}>"
