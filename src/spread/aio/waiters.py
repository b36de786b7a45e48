"""Wake-up futures, in FIFO order. No result is ever stored in one: a task
that is woken takes what it waits for itself, synchronously, in the step
that returns it to its caller, so cancelling a waiter can never lose,
duplicate or reorder anything (the asyncio.Queue discipline; the lesson of
nats.py #332 and of wait_for() around a blocking recv)."""

from __future__ import annotations

import asyncio
from collections import deque


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


def _woken(fut: asyncio.Future) -> bool:
    return fut.done() and not fut.cancelled() and fut.result() is True


class Waiters:
    """Tasks waiting for one condition (messages, queue space, ...)."""

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[asyncio.Future] = deque()

    def __len__(self) -> int:
        return len(self._q)

    async def wait(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> bool:
        """Waits to be woken (True) or for loop.time() to pass deadline
        (False). The caller looks at its condition again either way."""
        if deadline is not None and deadline <= loop.time():
            return False
        fut = loop.create_future()
        self._q.append(fut)
        timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if _woken(fut):
                self.wake(1)  # woken, then cancelled: the wake-up goes to the next one
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not _woken(fut):
                try:
                    self._q.remove(fut)  # timed out or cancelled: still queued
                except ValueError:
                    pass

    def wake(self, n: int) -> None:
        """Wakes up to n waiters, oldest first."""
        q = self._q
        while n > 0 and q:
            fut = q.popleft()
            if not fut.done():
                fut.set_result(True)
                n -= 1

    def wake_all(self) -> None:
        self.wake(len(self._q))
