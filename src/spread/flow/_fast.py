"""The sending side's per-message hot path: the backend's, in C, where it
has one (Cython: spread/_flow_fast.pxi), else these, in Python (cffi, PyPy).

SenderChannel (``_sender.py``) takes its base from here, and _Batch its
fields. The base's ``offer()`` takes the commonest case itself: a message
that joins the open batch while the channel waits for credit. Everything
else is SenderChannel._offer()'s, which also does that case the same way
(tests/test_flow_fast.py checks the bases against each other).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._backend import core
from . import _frame as fr

__all__ = ["BatchBase", "SenderBase", "entry"]


class PyBatchBase:
    """The fields of a batch being built (what FlowBatch holds in C)."""

    __slots__ = ("count", "first", "first_type", "entries", "payloads", "size", "payload")
    count: int
    first: bytes
    first_type: int
    entries: bytearray  # the table entries, in order
    payloads: list[bytes]
    size: int  # framed size as a BATCH
    payload: int  # payload bytes


class PySenderBase:
    """FlowSenderBase in Python: offer() for a message that joins the open
    batch of a channel blocked at its last pump (_stuck) with nothing
    changed since (not _dirty); otherwise SenderChannel._offer()."""

    _items: int
    _queued_bytes: int
    max_pending_bytes: int
    max_message_bytes: int
    max_batch_items: int
    _batch_bytes: int
    _stuck: bool
    _dirty: bool
    closed: bool
    _open: Any  # a _Batch, or None
    stats: dict[str, int]

    def offer(self, data: Any, msg_type: int = 0, now: float = 0.0) -> bool:
        """Accept one logical message, or say False: see SenderChannel._offer()."""
        b = self._open
        if (
            type(data) is bytes
            and type(msg_type) is int
            and self._items
            and not self.closed
            and self._stuck
            and not self._dirty
            and b is not None
            and -32768 <= msg_type <= 32767
        ):
            size = len(data)
            cost = (1 if size < 0x80 else fr.uvarint_size(size)) + 2 + size
            count = b.count
            if (
                size <= self.max_message_bytes
                and self._queued_bytes + size <= self.max_pending_bytes
                and count != 0x7F  # nor 0x3FFF: the count's uvarint keeps its size
                and count != 0x3FFF
                and count < self.max_batch_items
                and b.size + cost <= self._batch_bytes
            ):
                b.entries += entry(size, msg_type)
                b.payloads.append(data)
                b.size += cost
                b.count = count + 1
                b.payload += size
                self._queued_bytes += size
                self._items += 1
                self.stats["offered"] += 1
                return True
        return self._offer(data, msg_type, now)

    def _offer(self, data: Any, msg_type: int, now: float) -> bool:
        raise NotImplementedError  # SenderChannel's


_ENTRIES: dict[tuple[int, int], bytes] = {}  # (length, msg_type) -> table entry


def entry(length: int, msg_type: int) -> bytes:
    """A batch table entry (fr.table_entry), from a cache."""
    e = _ENTRIES.get((length, msg_type))
    if e is None:
        out = bytearray()
        fr.table_entry(length, msg_type, out)
        e = bytes(out)
        if len(_ENTRIES) < 65536:
            _ENTRIES[(length, msg_type)] = e
    return e


if TYPE_CHECKING:
    BatchBase = PyBatchBase
    SenderBase = PySenderBase
else:
    BatchBase = getattr(core, "FlowBatch", PyBatchBase)
    SenderBase = getattr(core, "FlowSenderBase", PySenderBase)
