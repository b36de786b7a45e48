"""spread.flow's per-message hot paths: the backend's, in C, where it has
them (Cython: spread/_flow_fast.pxi), else these, in Python (cffi, PyPy).

Sending: SenderChannel (``_sender.py``) takes its base from here, and
_Batch its fields. The base's ``offer()`` takes the commonest case itself:
a message that joins the open batch while the channel waits for credit.
Everything else is SenderChannel._offer()'s, which also does that case the
same way. Receiving: FlowMsg (``_events.py``) takes its fields from here;
``batch_messages`` makes a BATCH frame's FlowMsgs and ``consume`` marks
what a receive hands out consumed. tests/test_flow_fast.py checks each C
form against the Python one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._backend import core
from . import _frame as fr

__all__ = [
    "BatchBase",
    "ChannelBase",
    "FlowMsgBase",
    "SenderBase",
    "batch_messages",
    "consume",
    "entry",
    "untrack_instances",
]


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


class PyChannelBase:
    """FlowChannelBase in Python: no fast path (in Python, a check of the
    session lock and the batch append would not be one atomic step), so
    send() is Channel._send() itself."""

    def send(self, data: Any, msg_type: int = 0, timeout: float | None = None) -> None:
        """Send one message (bytes-like; msg_type 16 bits signed). Blocks while
        there is no room; ``timeout`` (seconds) raises ``SendTimeout`` naming
        the laggards, and nothing of this message was accepted."""
        return self._send(data, msg_type, timeout)

    def _send(self, data: Any, msg_type: int, timeout: float | None) -> None:
        raise NotImplementedError  # Channel's


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


# ---- the receiving side ------------------------------------------------------------


class PyFlowMsgBase:
    """The fields of a FlowMsg (what FlowMsgBase holds in C)."""

    __slots__ = ("message", "msg_type", "index", "_record", "_open")
    message: bytes
    msg_type: int
    index: int
    _record: Any  # the frame's _Record (sender, group, stream, seq, ...)
    _open: bool  # not yet consumed


def py_batch_messages(cls: Any, frame: bytes, rec: Any) -> list[Any]:
    """The messages of a BATCH frame as cls instances (FlowMsg) of record
    rec, in order; fr.FrameError if its table is malformed."""
    pos, lengths, types = fr.batch_table(frame)
    new = cls.__new__
    out: list[Any] = []
    append = out.append
    i = 0
    for n in lengths:
        m = new(cls)
        m.message = frame[pos : pos + n]
        m.msg_type = types[i]
        m.index = i
        m._record = rec
        m._open = True
        append(m)
        pos += n
        i += 1
    return out


def py_consume(cls: Any, items: list[Any]) -> list[Any]:
    """Marks the open cls messages (FlowMsg) among items consumed (each
    record's remaining count drops by one a message). Returns the records
    that reached 0, in order (their streams may advance)."""
    done: list[Any] = []
    for m in items:
        if type(m) is cls and m._open:
            m._open = False  # (taking twice counts once)
            rec = m._record
            rec.remaining -= 1
            if rec.remaining == 0:
                done.append(rec)
    return done


def _untrack_nothing(cls: type) -> None:
    """The backend's flow_untrack_instances where it has none (Python's
    decoder makes tracked messages)."""


_c_batch = getattr(core, "flow_batch", None)

if TYPE_CHECKING:
    BatchBase = PyBatchBase
    SenderBase = PySenderBase
    ChannelBase = PyChannelBase
    FlowMsgBase = PyFlowMsgBase
    batch_messages = py_batch_messages
    consume = py_consume
    untrack_instances = _untrack_nothing
else:
    BatchBase = getattr(core, "FlowBatch", PyBatchBase)
    SenderBase = getattr(core, "FlowSenderBase", PySenderBase)
    ChannelBase = getattr(core, "FlowChannelBase", PyChannelBase)
    FlowMsgBase = getattr(core, "FlowMsgBase", PyFlowMsgBase)
    consume = getattr(core, "flow_consume", py_consume)
    untrack_instances = getattr(core, "flow_untrack_instances", _untrack_nothing)
    if _c_batch is None:
        batch_messages = py_batch_messages
    else:

        def batch_messages(cls, frame, rec, _c=_c_batch, _general=py_batch_messages):
            """py_batch_messages in C (which leaves it what it does not read)."""
            return _c(cls, frame, rec, _general)


# Does ChannelBase.send take its fast case without the session lock? (The
# backend's, with the GIL; never in Python, nor on a free-threaded build.)
SEND_LOCK_FREE: bool = getattr(core, "FLOW_SEND_LOCK_FREE", False)
