"""Inbox: where received messages wait in Python to be taken, and the
receive calls over it (Connection's own stream, and each Subscription's).

Taking is synchronous: a task pops from the deque in the same step that
returns the message to its caller, and a wait only ever waits for a wake-up
(waiters.py). A cancelled receive therefore never consumes, reorders or
duplicates a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import Closed, WouldBlock
from .fast import InboxBase
from .waiters import Waiters

__all__ = ["Failure", "Inbox"]

if TYPE_CHECKING:
    from .reader import Reader


class Failure:
    """A message that failed alone (a malformed notice: IllegalMessage): its
    place in the stream, raised by the receive that reaches it."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Inbox(InboxBase):
    """A bounded (soft: by one batch) deque of messages and its waiters."""

    _what = "connection"

    def __init__(self, reader: Reader, limit: int) -> None:
        super().__init__()  # (_buf, _plain, _limit, _failures: the base's)
        self._waiters = Waiters()
        self._limit = max(1, limit)
        self._reader = reader
        self._closed = False
        self._failures = 0  # Failure entries in _buf
        self._in = 0  # entries ever put in _buf, less those dropped at close

    @property
    def pending(self) -> int:
        """Messages buffered here, not yet taken."""
        return len(self._buf)

    @property
    def delivered(self) -> int:
        """Messages taken by the application."""
        return self._in - len(self._buf)

    # -- taking ------------------------------------------------------------------
    # The hot paths (the base's receive() and __anext__: fast.py) take a
    # message themselves when _took would have nothing to do: _plain (the
    # reader is registered and no Failure waits here), or no Failure and the
    # inbox still full after the take (resume() would not register the
    # reader). Otherwise, or when none is here, they go on in
    # _receive_slow() and _anext_slow().
    def _took(self, msg: Any) -> Any:
        if not self._reader.reading:
            self._reader.resume()
        if msg.__class__ is Failure:
            self._failures -= 1
            self._update_plain()
            raise msg.exc
        return msg

    def _update_plain(self) -> None:
        self._plain = self._reader.reading and not self._failures

    def _pop(self) -> Any:
        return self._took(self._buf.popleft())

    def _pop_many(self, n: int) -> list[Any]:
        buf = self._buf
        if buf[0].__class__ is Failure:
            return [self._pop()]  # raises
        if not self._failures:  # (in bulk, in C: a batch costs what the sync one does)
            out = list(buf)
            buf.clear()
            if n < len(out):
                buf.extend(out[n:])
                del out[n:]
        else:
            out = []
            while buf and len(out) < n and buf[0].__class__ is not Failure:
                out.append(buf.popleft())
        if not self._reader.reading:
            self._reader.resume()
        return out

    def _check_open(self) -> None:
        """Raises why nothing more will come here, once nothing is buffered."""
        if self._closed:
            raise Closed(self._what)
        end = self._reader.end
        if end is not None:
            raise end

    async def _wait(self, deadline: float | None) -> None:
        reader = self._reader
        reader.check_loop()
        reader.demand(True)
        try:
            # At the deadline, a last look in C (receives take from C once per
            # turn of the loop, so a message may be there unseen).
            if not await self._waiters.wait(reader.loop, deadline) and not reader.take_now(
                once_per_turn=False
            ):
                raise TimeoutError("no message arrived within the time-out")
        finally:
            reader.demand(False)

    async def _receive_slow(self, timeout: float | None) -> Any:
        """receive() past its hot path: waits like it, for at most timeout seconds."""
        deadline = None if timeout is None else self._reader.loop.time() + timeout
        while True:
            if self._buf:
                return self._pop()
            self._check_open()
            if self._reader.take_now():
                continue
            await self._wait(deadline)

    def receive_nowait(self) -> Any:
        """The next message if one has arrived; WouldBlock otherwise."""
        if not self._buf:
            self._check_open()
            self._reader.take_now(once_per_turn=False)
            if not self._buf:
                self._check_open()
                raise WouldBlock("no message has arrived")
        return self._pop()

    async def receive_batch(self, max_messages: int = 1024, timeout: float | None = None) -> list:
        """1 to max_messages messages: those that have arrived, or (when none
        has) the first to come, waiting like receive()."""
        if not (type(max_messages) is int and max_messages >= 1):
            from .._args import batch_size

            max_messages = batch_size(max_messages)
        if len(self._buf) < max_messages:
            self._reader.take_now()
        deadline = None if timeout is None else self._reader.loop.time() + timeout
        while True:
            if self._buf:
                return self._pop_many(max_messages)
            self._check_open()
            if self._reader.take_now():
                continue
            await self._wait(deadline)

    def receive_batch_nowait(self, max_messages: int = 1024) -> list:
        """What receive_batch() would return at once; WouldBlock if nothing has arrived."""
        if len(self._buf) < max_messages:
            self._reader.take_now(once_per_turn=False)
        if not self._buf:
            self._check_open()
            raise WouldBlock("no message has arrived")
        return self._pop_many(max_messages)

    async def _anext_slow(self) -> Any:
        """__anext__() past its hot path."""
        try:
            return await self._receive_slow(None)
        except Closed:
            raise StopAsyncIteration from None

    # -- for the reader ----------------------------------------------------------
    def _full(self) -> bool:
        return len(self._buf) >= self._limit

    def _put(self, msg: Any) -> None:
        if msg.__class__ is Failure:
            self._failures += 1
            self._plain = False
        self._buf.append(msg)
        self._in += 1

    def _put_batch(self, batch: list) -> None:
        """A batch of messages (no Failure among them)."""
        self._buf.extend(batch)
        self._in += len(batch)

    def _wake(self) -> None:
        """Wakes as many waiters as messages wait (one each: a batch needs one)."""
        if self._waiters and self._buf:
            self._waiters.wake(len(self._buf))

    def _close(self) -> None:
        self._closed = True
        self._in -= len(self._buf)  # (dropped, not delivered)
        self._buf.clear()  # every later receive raises Closed
        self._failures = 0
        self._waiters.wake_all()
