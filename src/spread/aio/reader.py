"""Reader: one add_reader per connection, on the ThreadedReceiver's
level-triggered ready descriptor (readable exactly while messages are queued
in C, or the receiver has ended: native/binding/receiver.md).

- Registered only while there is demand: a task waits, or an inbox has room
  for prefetched messages. A callback that finds an inbox full removes it
  (a level-triggered descriptor would make the loop spin); a pump that
  fills one leaves it, for the consumer is about to make room.
- Each callback is bounded, in messages and in time (MAX_MESSAGES,
  BUDGET_S, checked between get_batch calls of an adapted size), so that
  other tasks run while a flood arrives; the descriptor stays readable and
  the loop calls again.
- It moves messages into the inboxes (the connection's own stream, or a
  subscription's by group) and wakes their waiters; the waiters take them.
- The end of the stream (a connection failure) is raised only once every
  message received before it has been taken, as by the sync receiver.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .._errors import Empty, IllegalMessage, ReceiverClosed
from .._messages import MembershipMsg
from .errors import Closed
from .inbox import Failure, Inbox

# Messages per get_batch call, between checks of the time budget: adapted
# to what a batch costs (one call's overhead weighs on small ones; a large
# one must stay well inside the budget: a cffi message costs ~10x a Cython one).
BATCH_FIRST, BATCH_MIN, BATCH_MAX = 64, 16, 512
MAX_MESSAGES = 1024  # per callback
BUDGET_S = 0.0005  # per callback (pyzmq #941: bounded-greedy costs little above 0.2 ms)


class Reader:
    """The receive side of a Connection: its receiver, inboxes and reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receiver: Any) -> None:
        self.loop = loop
        self._rx = receiver
        self._get_batch = receiver.get_batch
        self._fd: int = receiver.fileno()
        self.reading = False  # add_reader is in place
        self.end: BaseException | None = None  # raised once the inboxes are empty
        self._closed = False
        self._main: Inbox | None = None
        self._subs: dict[Any, list[Inbox]] = {}
        self._waiting = 0  # tasks waiting in any inbox
        self._batch = BATCH_FIRST
        self._took_this_turn = False  # take_now() ran since the loop last turned

    def attach(self, main: Inbox) -> None:
        self._main = main
        self.resume()

    def check_loop(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self.loop:
            raise RuntimeError("a spread.aio connection is bound to the event loop that made it")

    # -- registration ------------------------------------------------------------
    def _wanted(self) -> bool:
        if self._closed or self.end is not None:
            return False
        main = self._main
        if main is not None and main._full():
            return False
        for inboxes in self._subs.values():
            for inbox in inboxes:
                if inbox._full():
                    return False
        return True

    def resume(self) -> None:
        """Registers the reader if there is room again (called after takes)."""
        if not self.reading and self._wanted():
            self.loop.add_reader(self._fd, self._on_readable)
            self._set_reading(True)

    def _pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self._fd)
            self._set_reading(False)

    def _set_reading(self, reading: bool) -> None:
        self.reading = reading
        for inbox in self._inboxes():
            inbox._update_plain()

    def demand(self, waiting: bool) -> None:
        self._waiting += 1 if waiting else -1
        if waiting:
            self.resume()

    # -- taking from C -------------------------------------------------------------
    def take_now(self, once_per_turn: bool = True) -> bool:
        """Takes what has arrived without waiting (a receive that finds the
        inbox empty does this before it waits). True if anything came (or
        the stream ended).

        Awaiting receives take at most once per turn of the loop (the
        *_nowait forms, which never suspend anyway, and a receive at its
        deadline always take): a consumer that keeps finding messages would
        otherwise never suspend, and timers and other tasks would starve
        while a flood lasts (seconds, seen under ASan). The second call in
        one turn says no, the receive waits, and the reader's callback takes
        the messages in the next turn."""
        if self._closed or self.end is not None:
            return False
        if once_per_turn:
            if self._took_this_turn:
                return False
            self.check_loop()  # (the turn is the connection's loop's)
            self._took_this_turn = True
            self.loop.call_soon(self._new_turn)
        return self._pump() > 0 or self.end is not None

    def _new_turn(self) -> None:
        self._took_this_turn = False

    def _on_readable(self) -> None:
        # Paused lazily: a pump that fills the inboxes leaves the reader in
        # place (the consumer, taking what was filled, would register it
        # again at once: an epoll_ctl pair per refill, a third of what async
        # for spends beyond the messages); a call that finds them still full
        # removes it, so the loop does not spin on the descriptor.
        if self._wanted():
            self._pump()
        else:
            self._pause()

    def _pump(self) -> int:
        """Moves up to MAX_MESSAGES messages (for at most BUDGET_S) from the
        receiver's queue to the inboxes, then wakes their waiters."""
        get_batch = self._get_batch
        main = self._main
        if main is None:
            return 0
        subs = self._subs
        taken = 0
        now = time.perf_counter()
        deadline = now + BUDGET_S
        while self._wanted():
            n = self._batch
            try:
                batch = get_batch(n, 0)
            except Empty:
                break
            except IllegalMessage as e:  # that one message failed alone
                batch = [Failure(e)]
            except ReceiverClosed:
                self.end = Closed()
                break
            except Exception as e:  # the connection's end: after everything before it
                self.end = e
                break
            if not subs:
                if main._failures or batch[-1].__class__ is Failure:
                    for m in batch:
                        main._put(m)
                else:
                    main._put_batch(batch)
            else:
                for m in batch:
                    self._route(m)
            taken += len(batch)
            t = time.perf_counter()
            if len(batch) == n:  # a full batch: what it cost sizes the next
                if t - now < BUDGET_S / 4 and n < BATCH_MAX:
                    self._batch = n * 2
                elif t - now > BUDGET_S / 2 and n > BATCH_MIN:
                    self._batch = n // 2
            now = t
            if taken >= MAX_MESSAGES or t >= deadline:
                break
        if self.end is not None:
            self._pause()
        self._wake(self.end is not None)
        return taken

    def _route(self, m: Any) -> None:
        subs = self._subs
        if m.__class__ is Failure:
            targets = None
        elif isinstance(m, MembershipMsg):
            targets = subs.get(m.group)
        else:
            targets = None
            for g in m.groups:
                found = subs.get(g)
                if found:
                    targets = found if targets is None else targets + found
        if not targets:
            assert self._main is not None
            self._main._put(m)
        else:
            for inbox in targets:
                inbox._put(m)

    def _inboxes(self) -> list[Inbox]:
        out = [] if self._main is None else [self._main]
        for inboxes in self._subs.values():
            out.extend(inboxes)
        return out

    def _wake(self, everyone: bool) -> None:
        for inbox in self._inboxes():
            if everyone:
                inbox._waiters.wake_all()
            else:
                inbox._wake()

    # -- subscriptions ---------------------------------------------------------------
    def add(self, key: Any, inbox: Inbox) -> None:
        self._subs.setdefault(key, []).append(inbox)
        inbox._update_plain()

    def remove(self, key: Any, inbox: Inbox) -> None:
        inboxes = self._subs.get(key)
        if inboxes and inbox in inboxes:
            inboxes.remove(inbox)
            if not inboxes:
                del self._subs[key]
        self.resume()  # a full one no longer holds the others back

    # -- the end -----------------------------------------------------------------------
    def close(self) -> None:
        """Removes the reader (before anyone closes the descriptor) and wakes
        every waiter: they raise Closed."""
        self._closed = True
        self._pause()
        for inbox in self._inboxes():
            inbox._close()
        self._subs.clear()
        self._main = None  # no cycle left: the connection is freed with its receiver
