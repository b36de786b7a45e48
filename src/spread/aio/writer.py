"""Writer: sends that never block the loop in C.

- A send first tries one non-blocking write (most fit in the socket buffer):
  the message is then sent when the call returns.
- When the socket is full (SPX_WOULD_BLOCK), the message goes to a bounded
  queue (max_send_bytes); when part of it was written (SPX_PARTIAL), the
  library holds the rest. An add_writer on the socket finishes the rest and
  sends the queue, in order, each callback bounded like the reader's.
- A queued message is committed: it is sent unless the connection fails.
  `await multicast()` waits only while the queue is full; cancelling that
  wait leaves nothing queued. So a cancelled send was either wholly
  committed (it returned) or sent nothing, never half of one.
- Over an external client library (SPREAD_LIBRARY), which has no
  non-blocking sends, the queue is sent with the blocking calls by one
  thread of the connection's own, in order; the loop still never blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import deque
from typing import Any

from .. import _args
from .._args import MAX_BODY
from .errors import SPX_PARTIAL, SPX_WOULD_BLOCK, Closed, WouldBlock
from .fast import WriterBase
from .waiters import Waiters

SLOT = 32
_TOO_LONG = -17  # sp.h's MESSAGE_TOO_LONG
MAX_SENDS = 256  # per callback
BUDGET_S = 0.0005

DEFAULT_MAX_SEND_BYTES = 1 << 20


def payload(data: object) -> bytes:
    """The bytes to queue: a copy of a caller's buffer, which may change after we return."""
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)  # type: ignore[call-overload]


class Writer(WriterBase):
    """The send side of a Connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mbox: Any, max_bytes: int) -> None:
        if type(max_bytes) is not int or max_bytes < 1:
            raise ValueError(f"max_send_bytes must be a positive int, not {max_bytes!r}")
        self._loop = loop
        self._mbox = mbox
        self._max = max_bytes
        self._q: deque[tuple] = deque()
        self._bytes = 0  # queued, plus the message the library holds the rest of
        self._held: int | None = None  # that message's size (None: none held)
        self._writing = False  # add_writer is in place
        self._sock: int = mbox._descriptor
        self._error: BaseException | None = None
        self._closed = False
        self._abandoned = False
        self._space = Waiters()  # tasks waiting for queue space
        self._idle = Waiters()  # tasks waiting for the queue to empty (aclose)
        self._threaded = not mbox._NOWAIT_SENDS
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        # direct: nothing queued or held, so a send may go straight to the socket.
        self.direct = not self._threaded
        self.nowait_multicast = mbox._multicast_nowait

    @property
    def queued_bytes(self) -> int:
        """Payload bytes accepted and not yet written."""
        return self._bytes

    def _update_direct(self) -> None:
        self.direct = not (
            self._q
            or self._held is not None
            or self._closed
            or self._error is not None
            or self._threaded
        )

    def _check(self) -> None:
        if self._closed:
            raise Closed()
        if self._error is not None:
            raise self._error

    # -- accepting -------------------------------------------------------------
    def after_attempt(self, r: int, size: int, entry: tuple | None) -> int:
        """After a direct attempt that did not send all: the library holds
        the rest (SPX_PARTIAL) or nothing was sent (queue entry)."""
        if r == SPX_PARTIAL:
            self._held = size
            self._bytes += size
            self._update_direct()
            self._start()
            return size
        assert entry is not None
        return self._enqueue(entry, size)

    def _enqueue(self, entry: tuple, size: int) -> int:
        self._check()
        if self._bytes and self._bytes + size > self._max:
            raise WouldBlock(
                f"the writer queue holds {self._bytes} bytes (max_send_bytes={self._max})"
            )
        self._q.append(entry)
        self._bytes += size
        self._update_direct()
        self._start()
        return size

    def _send_or_queue(self, attempt: Any, after: Any, args: tuple) -> int:
        """One direct attempt if nothing is queued or held, else (or if it
        did not send all) after(r, *args): queued, or held by the library."""
        self._check()
        r = SPX_WOULD_BLOCK
        if self.direct:
            r = attempt(*args)
            if r >= 0:
                return r
        return after(r, *args)

    def multicast(self, service_type: object, group: object, data: object, msg_type: object) -> int:
        args = (service_type, group, data, msg_type)
        return self._send_or_queue(self.nowait_multicast, self.after_multicast, args)

    def after_multicast(
        self, r: int, service_type: object, group: object, data: object, msg_type: object
    ) -> int:
        """After one attempt (r) that did not send all, or none (SPX_WOULD_BLOCK)."""
        if r == SPX_PARTIAL:
            return self.after_attempt(r, len(payload(data)), None)
        self._check()
        svc = self._mbox._check_service(service_type)
        g = _args.group_bytes(group)
        mt = _args.msg_type(msg_type)
        p = payload(data)
        if len(p) + SLOT > MAX_BODY:
            raise _args.error(_TOO_LONG, f"multicast() of {len(p)} bytes", _error_text(_TOO_LONG))
        return self.after_attempt(r, len(p), ("m", svc, g, p, mt))

    def multigroup_multicast(
        self, service_type: object, groups: object, data: object, msg_type: object
    ) -> int:
        args = (service_type, groups, data, msg_type)
        attempt = self._mbox._multigroup_multicast_nowait
        return self._send_or_queue(attempt, self.after_multigroup, args)

    def after_multigroup(
        self, r: int, service_type: object, groups: object, data: object, msg_type: object
    ) -> int:
        """after_multicast() for multigroup_multicast()."""
        if r == SPX_PARTIAL:
            return self.after_attempt(r, len(payload(data)), None)
        self._check()
        svc = self._mbox._check_service(service_type)
        names = _args.group_list(groups)
        mt = _args.msg_type(msg_type)
        p = payload(data)
        if len(p) + SLOT * len(names) > MAX_BODY:
            raise _args.error(
                _TOO_LONG,
                f"multigroup_multicast() of {len(p)} bytes to {len(names)} groups",
                _error_text(_TOO_LONG),
            )
        return self.after_attempt(r, len(p), ("g", svc, names, p, mt))

    def request(self, group: object, join: bool) -> None:
        self._check()
        g = _args.group_bytes(group)
        r = SPX_WOULD_BLOCK
        if self.direct:
            r = self._mbox._request_nowait(g, join)
            if r >= 0:
                return
            if r not in (SPX_WOULD_BLOCK, SPX_PARTIAL):
                what = "join" if join else "leave"
                raise _args.error(r, f"{what}({group!r})", _error_text(r))
        self.after_attempt(r, 0, ("j" if join else "l", g))

    async def wait_space(self) -> None:
        """Waits until the queue has room (or the writer is closed or failed)."""
        self._check()
        await self._space.wait(self._loop, None)

    async def send(self, kind: str, args: tuple) -> int:
        """An awaited send ("m": multicast, "g": multigroup_multicast) after
        its direct attempt found the socket full (SPX_WOULD_BLOCK), or when
        no direct attempt could be made. It waits for the socket to have
        room and writes the message itself: nothing is queued, so a
        cancelled wait has sent nothing. Only behind messages already
        queued (by the *_nowait forms), or through the writer thread, does
        it join the queue (waiting for space there)."""
        attempt: Any
        after: Any
        queue: Any
        if kind == "m":
            attempt, after, queue = self.nowait_multicast, self.after_multicast, self.multicast
        else:
            attempt = self._mbox._multigroup_multicast_nowait
            after, queue = self.after_multigroup, self.multigroup_multicast
        while True:
            if self.direct:
                self._start()  # the socket is full: wake the waiters once it has room
            elif self._q or self._threaded:
                try:
                    return queue(*args)
                except WouldBlock:
                    pass
            await self.wait_space()
            if self.direct:
                r = attempt(*args)
                if r >= 0:
                    return r
                if r == SPX_PARTIAL:
                    return after(r, *args)  # committed: the library holds the rest

    # -- sending the queue -----------------------------------------------------
    def _start(self) -> None:
        if self._threaded:
            self._submit()
        elif not self._writing:
            self._loop.add_writer(self._sock, self._on_writable)
            self._writing = True

    def _stop(self) -> None:
        if self._writing:
            self._loop.remove_writer(self._sock)
            self._writing = False

    def _attempt(self, entry: tuple) -> int:
        mbox = self._mbox
        kind = entry[0]
        if kind == "m":
            return mbox._multicast_nowait(entry[1], entry[2], entry[3], entry[4])
        if kind == "g":
            return mbox._multigroup_multicast_nowait(entry[1], entry[2], entry[3], entry[4])
        r = mbox._request_nowait(entry[1], kind == "j")
        if r < 0 and r not in (SPX_WOULD_BLOCK, SPX_PARTIAL):
            raise _args.error(r, "join" if kind == "j" else "leave", _error_text(r))
        return r

    def _on_writable(self) -> None:
        mbox = self._mbox
        deadline = time.perf_counter() + BUDGET_S
        sent = 0
        try:
            while True:
                if self._held is not None:
                    if mbox._finish_send_nowait() == SPX_PARTIAL:
                        return
                    self._bytes -= self._held
                    self._held = None
                if not self._q:
                    break
                entry = self._q[0]
                r = self._attempt(entry)
                if r == SPX_WOULD_BLOCK:
                    return
                self._q.popleft()
                size = len(entry[3]) if entry[0] in ("m", "g") else 0
                if r == SPX_PARTIAL:
                    self._held = size
                else:
                    self._bytes -= size
                sent += 1
                if sent >= MAX_SENDS or time.perf_counter() >= deadline:
                    return
        except Exception as e:  # the connection failed: nothing more can be sent
            self._fail(e)
            return
        finally:
            self._after_progress()
        self._stop()

    def _after_progress(self) -> None:
        self._update_direct()
        if self._bytes < self._max:
            self._space.wake_all()
        if not self._q and self._held is None:
            self._idle.wake_all()

    def _fail(self, e: BaseException) -> None:
        self._error = e
        self._q.clear()
        self._bytes = 0
        self._held = None
        self._stop()
        self._update_direct()
        self._space.wake_all()
        self._idle.wake_all()

    # -- the external library: one thread sends the queue -----------------------------
    def _submit(self) -> None:
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, "spread-aio-writer")
        entry = self._q[-1]
        cf = self._thread.submit(self._blocking_send, entry)
        cf.add_done_callback(self._sent_in_thread)

    def _blocking_send(self, entry: tuple) -> int:
        if self._error is not None or self._abandoned:
            return 0
        mbox = self._mbox
        kind = entry[0]
        if kind == "m":
            mbox.multicast(entry[1], entry[2], entry[3], entry[4])
        elif kind == "g":
            mbox.multigroup_multicast(entry[1], entry[2], entry[3], entry[4])
        elif kind == "j":
            mbox.join(entry[1])
        else:
            mbox.leave(entry[1])
        return len(entry[3]) if kind in ("m", "g") else 0

    def _sent_in_thread(self, cf: concurrent.futures.Future) -> None:
        try:
            self._loop.call_soon_threadsafe(self._sent, cf)
        except RuntimeError:
            pass  # the loop is closed

    def _sent(self, cf: concurrent.futures.Future) -> None:
        exc = cf.exception()
        if exc is not None:
            if self._error is None:
                self._fail(exc)
            return
        if self._q:
            self._q.popleft()
        self._bytes -= cf.result()
        self._after_progress()

    # -- closing -----------------------------------------------------------------------
    async def flush(self, timeout: float | None) -> None:
        """Waits (at most timeout seconds) until everything accepted is written."""
        deadline = None if timeout is None else self._loop.time() + timeout
        while (self._q or self._held is not None) and self._error is None:
            if not await self._idle.wait(self._loop, deadline):
                return

    def close(self) -> None:
        """New sends raise Closed; removes the writer before the socket is
        closed, and gives up what is unsent (the rest of a partly written
        message fails the connection, which is closing anyway)."""
        self._closed = True
        self._abandoned = True  # (the writer thread skips what is left)
        self._stop()
        if self._held is not None:
            self._mbox._abort_send()
            self._held = None
        self._q.clear()
        self._bytes = 0
        self._update_direct()
        self._space.wake_all()
        self._idle.wake_all()
        if self._thread is not None:
            self._thread.shutdown(wait=False)


def _error_text(code: int) -> str:
    from .._backend import core

    return core.error_text(code)
