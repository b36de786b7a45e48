"""A receiver's repair of one sender's stream (recovery, issue 17): frames
handed out exactly once and in order, holes asked for again from the
sender's retention, and what can't be had reported as a ``Lost`` range in
its place. Never a silent gap, never a duplicate.

Pure state, time is an argument (as the rest of the flow core). The caller
feeds it every frame of the stream it receives (live or resent), what the
sender says of its stream (``announce``: a HELLO or BYE naming its last
frame; ``gone``: the answer that frames before some point are no longer
retained) and the sender's end (``ended``: it left for good). It hands back,
in stream order, the frames now deliverable with ``Lost`` markers between
them, and queues ``Request`` actions (ask the sender for first..last) in
``actions``.

Memory: at most ``reorder_window`` frames wait beyond a hole; a frame
further ahead is dropped and asked for again once the hole is filled (the
sender's retention must be at least the window for that to succeed).
Requests: one outstanding range at a time, the hole at the front of the
stream capped at the window, asked again after ``retry`` seconds without
progress, backing off to ``max_retry``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

__all__ = ["Lost", "Request", "StreamRepair"]


class Lost(NamedTuple):
    """Frames first..last (inclusive) of the stream can't be had: in the
    stream's place of those frames."""

    first: int
    last: int


class Request(NamedTuple):
    """Ask the sender to send frames first..last (inclusive) again."""

    first: int
    last: int


class StreamRepair:
    """The repair state of one stream; ``expected`` is the next frame to hand out."""

    __slots__ = (
        "expected",
        "reorder_window",
        "retry",
        "max_retry",
        "actions",
        "stats",
        "_ahead",
        "_high",
        "_asked",
        "_due",
        "_delay",
        "_ended",
    )

    def __init__(
        self,
        expected: int,
        *,
        reorder_window: int = 256,
        retry: float = 0.2,
        max_retry: float = 5.0,
    ) -> None:
        if type(expected) is not int or expected < 1:
            raise ValueError(f"expected must be an int >= 1, not {expected!r}")
        if type(reorder_window) is not int or reorder_window < 1:
            raise ValueError(f"reorder_window must be an int >= 1, not {reorder_window!r}")
        if not (retry > 0 and max_retry >= retry):
            raise ValueError(f"need 0 < retry <= max_retry, not {retry!r}, {max_retry!r}")
        self.expected = expected
        self.reorder_window = reorder_window
        self.retry = retry
        self.max_retry = max_retry
        self.actions: list[Request] = []
        self.stats = {"duplicates": 0, "dropped_ahead": 0, "requests": 0, "lost": 0}
        self._ahead: dict[int, Any] = {}  # frames beyond the hole at the front
        self._high = expected - 1  # the highest frame known to exist
        self._asked: Request | None = None  # the outstanding request
        self._due = math.inf  # when it is asked again
        self._delay = retry
        self._ended = False

    # ---- what the caller reads ---------------------------------------------------

    @property
    def waiting(self) -> int:
        """Frames held beyond a hole."""
        return len(self._ahead)

    @property
    def complete(self) -> bool:
        """Every frame known to exist has been handed out (or reported lost)."""
        return self.expected > self._high

    def next_deadline(self) -> float:
        return self._due

    # ---- events in ----------------------------------------------------------------

    def arrive(self, seq: int, item: Any, now: float) -> list[Any]:
        """A frame of the stream (live or resent): what is now deliverable."""
        expected = self.expected
        if seq < expected or seq in self._ahead:
            self.stats["duplicates"] += 1
            return []
        if seq > self._high:
            self._high = seq
        if seq == expected:
            out = [item]
            self.expected = expected + 1
            self._drain(out)
            self._progressed(now)
            return out
        if seq - expected < self.reorder_window:
            self._ahead[seq] = item
        else:
            self.stats["dropped_ahead"] += 1  # asked for again once the front is filled
        self._ask(now)
        return []

    def announce(self, last: int, now: float) -> None:
        """The sender says its stream has reached frame ``last``."""
        if last > self._high:
            self._high = last
        self._ask(now)

    def gone(self, first_available: int, now: float) -> list[Any]:
        """The sender no longer holds the frames before ``first_available``:
        those not received are lost. What is now deliverable."""
        out: list[Any] = []
        if first_available > self.expected:
            self._skip_to(first_available, out)
            self._progressed(now)
        else:
            self._ask(now)
        return out

    def ended(self) -> list[Any]:
        """The sender is gone for good: every frame known to exist that has
        not arrived is lost. Everything left, in order; nothing more is asked."""
        out: list[Any] = []
        self._skip_to(self._high + 1, out)
        self._ended = True
        self._asked = None
        self._due = math.inf
        return out

    def tick(self, now: float) -> None:
        """Asks again for a request that has gone unanswered."""
        if now >= self._due:
            self._asked = None
            self._delay = min(self._delay * 2, self.max_retry)
            self._ask(now)

    # ---- inside ---------------------------------------------------------------------

    def _drain(self, out: list[Any]) -> None:
        ahead = self._ahead
        expected = self.expected
        while ahead and expected in ahead:
            out.append(ahead.pop(expected))
            expected += 1
        self.expected = expected

    def _skip_to(self, stop: int, out: list[Any]) -> None:
        """Hands out everything before ``stop``: what is held, and a Lost for
        each run of frames that is not."""
        ahead = self._ahead
        seq = self.expected
        # (from held frame to held frame: a lost run is one step, however
        # long: a GAP or an announcement may name any u64)
        for held in sorted(k for k in ahead if k < stop):
            if held > seq:
                out.append(Lost(seq, held - 1))
                self.stats["lost"] += held - seq
            out.append(ahead.pop(held))
            seq = held + 1
        if seq < stop:
            out.append(Lost(seq, stop - 1))
            self.stats["lost"] += stop - seq
        if stop - 1 > self._high:
            self._high = stop - 1
        self.expected = max(self.expected, stop)
        self._drain(out)

    def _progressed(self, now: float) -> None:
        self._delay = self.retry
        asked = self._asked
        if asked is not None and self.expected > asked.first:
            # (what is still missing of it stays asked, with its time)
            self._asked = (
                Request(self.expected, asked.last) if self.expected <= asked.last else None
            )
            if self._asked is None:
                self._due = math.inf
        self._ask(now)

    def _ask(self, now: float) -> None:
        if self._ended:
            return
        if self.complete:
            self._asked = None
            self._due = math.inf
            return
        if self._asked is not None:
            return  # one at a time; tick() asks again when it is due
        first = self.expected
        last = min(self._ahead) - 1 if self._ahead else self._high
        last = min(last, first + self.reorder_window - 1)
        request = Request(first, last)
        self._asked = request
        self._due = now + self._delay
        self.actions.append(request)
        self.stats["requests"] += 1
