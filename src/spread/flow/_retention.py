"""A sender's retention: the framed bytes of its stream's latest frames, kept
so that a receiver that missed some (a reconnect, a merge) can ask for them
again and get them byte-identical (recovery, issue 17).

``RetentionStore`` is the protocol an application implements to keep them
elsewhere (a file, a database: a sender process that restarts then resumes
its stream instead of ending it unclean); ``RetentionRing`` is the in-memory
one, bounded in frames and bytes. Pure state, no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

__all__ = ["RetentionRing", "RetentionStore"]


@runtime_checkable
class RetentionStore(Protocol):
    """Frames of one stream by sequence number, contiguous from ``low()`` to
    ``high()``. ``append`` takes the next one (``high() + 1``, or any first
    one) and may forget the oldest to stay within its bounds."""

    def append(self, seq: int, frame: bytes) -> None: ...

    def read(self, first: int, last: int) -> Iterable[tuple[int, bytes]]:
        """The frames held in first..last (inclusive), in order."""
        ...

    def low(self) -> int:
        """The oldest frame held; ``high() + 1`` when none is."""
        ...

    def high(self) -> int:
        """The newest frame appended (0 before the first)."""
        ...

    def trim(self, below: int) -> None:
        """Forgets every frame before ``below``. The channel never calls it
        (a member that is away, not in the view, may come back for older
        frames): the store bounds itself, and trim is for the application
        (after it checkpointed that every receiver it cares for has them)."""
        ...


class RetentionRing:
    """The newest frames of a stream, at most ``max_frames`` of them and
    ``max_bytes`` in all (the newest one is always kept, whatever its size)."""

    __slots__ = ("max_frames", "max_bytes", "_frames", "_low", "_high", "_bytes")

    def __init__(self, max_frames: int = 16_384, max_bytes: int = 64 << 20) -> None:
        for name, value in (("max_frames", max_frames), ("max_bytes", max_bytes)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: dict[int, bytes] = {}
        self._low = 1
        self._high = 0
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def low(self) -> int:
        return self._low

    def high(self) -> int:
        return self._high

    def append(self, seq: int, frame: bytes) -> None:
        if self._frames or self._high:
            if seq != self._high + 1:
                raise ValueError(f"frame {seq} does not follow {self._high}")
        elif seq < 1:
            raise ValueError(f"sequence numbers start at 1, not {seq}")
        else:
            self._low = seq
        frame = bytes(frame)
        self._frames[seq] = frame
        self._high = seq
        self._bytes += len(frame)
        frames = self._frames
        while len(frames) > 1 and (len(frames) > self.max_frames or self._bytes > self.max_bytes):
            self._bytes -= len(frames.pop(self._low))
            self._low += 1

    def read(self, first: int, last: int) -> list[tuple[int, bytes]]:
        frames = self._frames
        return [
            (seq, frames[seq]) for seq in range(max(first, self._low), min(last, self._high) + 1)
        ]

    def trim(self, below: int) -> None:
        frames = self._frames
        stop = min(below, self._high + 1)
        while self._low < stop:
            self._bytes -= len(frames.pop(self._low))
            self._low += 1


def answer(
    store: RetentionStore, first: int, last: int
) -> tuple[int | None, list[tuple[int, bytes]]]:
    """What a sender answers to a receiver's request for frames first..last:
    the first frame it still holds if some of the range is gone (None if
    none is), and the frames of the range it holds. A range past what was
    ever sent is cut at ``high()`` (a receiver can't ask for more than exists)."""
    low = store.low()
    gone = low if first < low else None
    return gone, list(store.read(max(first, low), min(last, store.high())))
