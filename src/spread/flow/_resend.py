"""A sender's answers to its receivers' repair requests (recovery, issue
17), paced by each receiver's own window: a catch-up never puts more of
our frames in front of a receiver than live flow control would, so a
receiver that recovers is never killed by the daemon for the burst.

Per member: the range it asked for (a newer request replaces the older:
a receiver asks for the hole at the front of its stream) and its consumed
position (from its reports). ``due(member)`` hands out the frames that may
go now, and names what the retention no longer holds. Pure state.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from ._retention import RetentionStore

__all__ = ["Due", "Resender"]


class Due(NamedTuple):
    """What to send a member now: ``gone`` (the first frame still held, if
    frames it asked for are no longer) and the ``frames`` (seq, bytes)."""

    gone: int | None
    frames: list[tuple[int, bytes]]


class Resender:
    """The outstanding repair requests of one stream's receivers."""

    __slots__ = (
        "store",
        "window",
        "window_bytes",
        "repeat_after",
        "_wants",
        "_consumed",
        "_sent",
        "_recent",
        "stats",
    )

    def __init__(
        self, store: RetentionStore, window: int, window_bytes: int, repeat_after: float = 0.1
    ) -> None:
        if type(window) is not int or window < 1:
            raise ValueError(f"window must be an int >= 1, not {window!r}")
        if type(window_bytes) is not int or window_bytes < 1:
            raise ValueError(f"window_bytes must be an int >= 1, not {window_bytes!r}")
        self.store = store
        self.window = window
        self.window_bytes = window_bytes
        # A frame resent to a member is not resent again on a request that
        # comes within this time: it is on its way (a resend to a member's
        # private group is not lost while it stays in the view).
        self.repeat_after = repeat_after
        self._recent: dict[Any, tuple[int, float]] = {}  # member -> (highest resent, when)
        self._wants: dict[Any, list[int]] = {}  # member -> [next, last] still to send
        self._consumed: dict[Any, int] = {}  # member -> consumed seq (absolute)
        # member -> [(seq, bytes) resent and not yet consumed, their bytes]
        self._sent: dict[Any, list] = {}
        self.stats = {"requests": 0, "resent": 0, "gone": 0}

    @property
    def waiting(self) -> int:
        """Members with frames still to be resent."""
        return len(self._wants)

    def request(
        self, member: Any, first: int, last: int, consumed: int, now: float | None = None
    ) -> None:
        """``member`` asks for frames first..last, having consumed up to
        ``consumed``. A range past what was sent is cut; an empty one only
        withdraws the member's earlier request. With ``now``, frames resent
        to it less than ``repeat_after`` ago are not sent again."""
        self.stats["requests"] += 1
        self.consumed(member, consumed)
        # (frames it says it consumed are never asked for again: without
        # this, REPORT and NACK pairs had the retention resent for each)
        first = max(first, self._consumed[member] + 1)
        recent = self._recent.get(member)
        if now is not None and recent is not None and now - recent[1] < self.repeat_after:
            first = max(first, recent[0] + 1)  # (a repeated request: those are on their way)
        else:
            # Asked for again later: what was resent from first on did not
            # arrive (lost with a view change), so it no longer counts as
            # held against the member's window. (Kept, it blocked every
            # further resend to it for good: the flow_sim soak found that.)
            self._forget_sent(member, first)
        last = min(last, self.store.high())
        if first > last:
            self._wants.pop(member, None)
        else:
            self._wants[member] = [first, last]

    def consumed(self, member: Any, seq: int) -> None:
        """The member's report: it has consumed up to ``seq`` (absolute: a
        late or repeated report never moves it back)."""
        if seq > self._consumed.get(member, -1):
            self._consumed[member] = seq
            sent = self._sent.get(member)
            if sent is not None:
                frames = sent[0]
                while frames and frames[0][0] <= seq:
                    sent[1] -= frames.popleft()[1]

    def _forget_sent(self, member: Any, first: int) -> None:
        """Frames from first on no longer count as resent to member."""
        sent = self._sent.get(member)
        if sent is None or not sent[0]:
            return
        kept = deque(f for f in sent[0] if f[0] < first)
        if len(kept) != len(sent[0]):
            sent[0] = kept
            sent[1] = sum(n for _, n in kept)

    def knows(self, member: Any) -> bool:
        """Whether member has asked for frames (since it was last dropped)."""
        return member in self._consumed

    def wants(self, member: Any) -> bool:
        """Whether member has frames still to be resent."""
        return member in self._wants

    def keep(self, members: Any) -> None:
        """Only these are members now: the others' requests go."""
        for member in [m for m in self._consumed if m not in members]:
            self.drop(member)
        for member in [m for m in self._wants if m not in members]:
            self.drop(member)
        for member in [m for m in self._recent if m not in members]:
            self.drop(member)

    def clear(self) -> None:
        """Our connection was lost: every request goes (they are asked again)."""
        self._wants.clear()
        self._consumed.clear()
        self._sent.clear()
        self._recent.clear()

    def drop(self, member: Any) -> None:
        """The member left: nothing more for it."""
        self._wants.pop(member, None)
        self._consumed.pop(member, None)
        self._sent.pop(member, None)
        self._recent.pop(member, None)

    def due(self, member: Any, now: float | None = None) -> Due:
        """The frames that may go to ``member`` now: in order, from its
        request, while it holds at most ``window`` frames and (but for one
        frame) ``window_bytes`` bytes of resent frames it has not consumed."""
        want = self._wants.get(member)
        if want is None:
            return Due(None, [])
        store = self.store
        gone = None
        low = store.low()
        first = want[0]
        if first < low:
            gone = low
            want[0] = low
            self.stats["gone"] += 1
        consumed = self._consumed.get(member, 0)
        if gone is not None:
            # The frames it asked for that are gone count as consumed (it
            # skips them at the GAP), not as frames it still holds.
            consumed += gone - first
        stop = min(want[1], consumed + self.window)
        frames: list[tuple[int, bytes]] = []
        if want[0] <= stop:
            sent = self._sent.setdefault(member, [deque(), 0])
            budget = self.window_bytes - sent[1]
            for seq, frame in store.read(want[0], stop):
                if len(frame) > budget and (frames or sent[1]):
                    break
                frames.append((seq, frame))
                sent[0].append((seq, len(frame)))
                sent[1] += len(frame)
                budget -= len(frame)
            if frames:
                want[0] = frames[-1][0] + 1
                if now is not None:  # (without a time, as request(): nothing held back)
                    self._recent[member] = (frames[-1][0], now)
                self.stats["resent"] += len(frames)
        if want[0] > want[1]:
            del self._wants[member]
        return Due(gone, frames)
