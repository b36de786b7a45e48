"""The hot paths of spread.aio: the backend's, in C, where it has them
(Cython: spread/_aio_fast.pxi), else these, in Python (cffi).

Inbox, Connection and Writer take their bases from here. An awaited call
that can finish at once (a message already in the inbox,
a write the socket takes) costs a coroutine in Python; the C forms return
an awaitable that finishes in its first send without one. Either way the
call does nothing until it is first awaited, and everything past the
immediate step (waiting, taking from C once per turn of the loop,
cancellation) is the Python code's: Inbox._receive_slow(),
Inbox._anext_slow() and Writer.send().
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._backend import core
from .errors import SPX_PARTIAL

__all__ = ["ConnectionBase", "InboxBase", "WriterBase"]


class PyInboxBase:
    """What the Cython backend's AioInbox does in C: the deque an inbox's
    messages wait in, and receive() and ``async for`` taking one from it
    when that is all there is to do: no Failure waits here (_failures), and
    the reader is registered (_plain: also no Failure) or will not be when
    this take is done (the inbox stays above its _limit). Otherwise the
    inbox's _took() has work (inbox.py)."""

    def __init__(self) -> None:
        self._buf: deque[Any] = deque()
        self._plain = False  # kept by spread/aio's inbox and reader
        self._limit = 1
        self._failures = 0

    async def receive(self, timeout: float | None = None) -> Any:
        """The next message (RegularMsg or MembershipMsg); TimeoutError after
        timeout seconds (None: no limit). Cancelling it never loses one."""
        buf = self._buf
        if buf and (self._plain or (len(buf) > self._limit and not self._failures)):
            return buf.popleft()
        return await self._receive_slow(timeout)

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        buf = self._buf
        if buf and (self._plain or (len(buf) > self._limit and not self._failures)):
            return buf.popleft()
        return await self._anext_slow()

    # (spread/aio/inbox.py's Inbox has them: the rest of each call)
    _receive_slow: Callable[[float | None], Awaitable[Any]]
    _anext_slow: Callable[[], Awaitable[Any]]


class PyConnectionBase(PyInboxBase):
    """What the Cython backend's AioConnection does in C: multicast()."""

    _writer: Any  # (the Writer: Connection's)

    async def multicast(self, service_type: Any, group: Any, data: Any, msg_type: Any = 0) -> int:
        """Sends data to a group; returns its length once the message is
        committed: written to the socket (or its unsent rest held by the
        library), or queued behind what the *_nowait forms queued. While
        the socket is full it waits for room, with nothing queued: a
        cancelled call has sent nothing."""
        w = self._writer
        if w.direct:  # one non-blocking write, no future, no task
            r = w.nowait_multicast(service_type, group, data, msg_type)
            if r >= 0:
                return r
            if r == SPX_PARTIAL:  # committed: the library holds the rest
                return w.after_multicast(r, service_type, group, data, msg_type)
        return await w.send("m", (service_type, group, data, msg_type))


class PyWriterBase:
    """The Cython backend's AioWriter holds a Writer's `direct` and `_mbox`
    where its C multicast reads them; here they are plain attributes."""

    direct: bool
    _mbox: Any


if TYPE_CHECKING:
    InboxBase = PyInboxBase
    ConnectionBase = PyConnectionBase
    WriterBase = PyWriterBase
else:
    InboxBase = getattr(core, "AioInbox", PyInboxBase)
    ConnectionBase = getattr(core, "AioConnection", PyConnectionBase)
    WriterBase = getattr(core, "AioWriter", PyWriterBase)
