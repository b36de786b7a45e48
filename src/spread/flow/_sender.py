"""One sending channel's state: one stream on one group (DESIGN.md, "The
credit rule"). Pure state: time is an argument, frames go to an outbox."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from . import _frame as fr
from ._events import (
    FlowEvent,
    Laggard,
    MemberForeign,
    MemberRetethered,
    MemberStalled,
    MemberUntethered,
    MessageTooLarge,
    Multicast,
    SendTimeout,
)
from ._fast import BatchBase, SenderBase, entry
from ._resend import Resender
from ._retention import RetentionRing, RetentionStore

JOINING, ACTIVE, UNTETHERED, FOREIGN = "joining", "active", "untethered", "foreign"
COUNTED = (JOINING, ACTIVE)  # the states a sender waits for
ON_STALL = ("untether", "wait", "raise")

MAX_MESSAGE_LIMIT = 1 << 40

HEADER_SIZE, MAGIC, VERSION, FLOW_MSG_TYPE = fr.HEADER_SIZE, fr.MAGIC, fr.VERSION, fr.FLOW_MSG_TYPE
DATA, BATCH, CHUNK = fr.DATA, fr.BATCH, fr.CHUNK
_pack = fr.HEADER_STRUCT.pack


class _Batch(BatchBase):
    """The accumulator's unit: messages that leave as one frame, a BATCH
    (or DATA when there is one). Its table entries and payloads are listed
    as messages join, so its framed size is always known and its frame is
    one join. (Its fields are BatchBase's: SenderBase.offer() adds to it.)"""

    __slots__ = ()

    def __init__(self, data: bytes, msg_type: int) -> None:
        self.count = 1
        self.first = data
        self.first_type = msg_type
        self.entries = bytearray(entry(len(data), msg_type))
        self.payloads = [data]
        n = len(data)
        # Framed size as a BATCH: header, count, table entries, payloads.
        self.size = HEADER_SIZE + 1 + len(self.entries) + n
        self.payload = n

    def add(self, data: bytes, msg_type: int, cost: int) -> None:
        self.entries += entry(len(data), msg_type)
        self.payloads.append(data)
        count = self.count
        self.size += cost + (
            0 if count + 1 < 0x80 else fr.uvarint_size(count + 1) - fr.uvarint_size(count)
        )
        self.count = count + 1
        self.payload += len(data)

    def framed_size(self) -> int:
        return HEADER_SIZE + len(self.first) if self.count == 1 else self.size

    def body(self) -> list[bytes | bytearray]:
        """The BATCH body, in parts (joined once, with the header)."""
        head = bytearray()
        fr.put_uvarint(self.count, head)
        return [head, self.entries, *self.payloads]


def _check_msg_type(msg_type: object) -> None:
    if isinstance(msg_type, bool) or not isinstance(msg_type, int):
        raise TypeError(f"msg_type must be an int, not {type(msg_type).__name__}")
    if not -32768 <= msg_type <= 32767:
        raise ValueError(f"msg_type is 16 bits signed (-32768 to 32767), not {msg_type}")


class Member:
    """What a sender knows of one member of its group."""

    __slots__ = (
        "name",
        "state",
        "seq",
        "nbytes",
        "progress",
        "blocking_since",
        "deadline",
        "told",
        "base",
    )

    def __init__(self, name: str, state: str, seq: int, nbytes: int, now: float) -> None:
        self.name = name
        self.state = state
        self.seq = seq  # absolute consumed position: frames ...
        self.nbytes = nbytes  # ... and bytes (only ever grows)
        self.progress = now  # when the position last grew (or the member arrived)
        self.blocking_since: float | None = None  # when it began to hold the sender
        self.deadline = math.inf  # JOINING: when it becomes FOREIGN
        self.told = False  # MemberStalled reported (wait/raise)
        # Back after losing touch: the position its HELLO gave it, until it
        # reports or asks (lost again before that, it is its base again).
        self.base: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"<Member {self.name} {self.state} at {self.seq}/{self.nbytes}>"


def _int_option(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _seconds(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {value}")
    return v


def check_group(group: object) -> str:
    if not isinstance(group, str):
        raise TypeError(f"group must be a str, not {type(group).__name__}")
    raw = group.encode("utf-8")
    if not 1 <= len(raw) <= 31 or b"\0" in raw or raw.startswith(b"#"):
        raise ValueError(
            f"a flow group name is 1 to 31 bytes, no NUL, not a private group: {group!r}"
        )
    return group


class SenderChannel(SenderBase):
    """The sending side of one flow channel: a stream of frames on a group,
    paced by the slowest tethered member's consumed position.

    Drive it with :meth:`offer` (the front end's send), and the core's
    on_message / tick (reports, membership, time). Frames go to ``outbox``
    as :class:`Multicast` actions."""

    def __init__(
        self,
        group: str,
        stream: int,
        me: str,
        outbox: list[Multicast],
        *,
        now: float = 0.0,
        window: int = 256,
        window_bytes: int = 8 << 20,
        service_type: int = fr.AGREED_MESS,
        max_frame: int = fr.DEFAULT_MAX_FRAME,
        max_batch_items: int = 4096,
        max_batch_bytes: int | None = None,
        linger: float = 0.0,
        max_pending_bytes: int | None = None,
        max_message_bytes: int = 64 << 20,
        stall_timeout: float | None = 5.0,
        on_stall: str = "untether",
        join_grace: float = 1.0,
        self_delivery: bool = True,
        max_inflight: int | None = None,
        retention: RetentionStore | bool = True,
        retention_frames: int | None = None,
        retention_bytes: int | None = None,
    ) -> None:
        self.group = check_group(group)
        self.stream = _int_option("stream", stream, 1, fr.U64)
        self.window = _int_option("window", window, 1, 1 << 20)
        self.window_bytes = _int_option("window_bytes", window_bytes, 1, 1 << 40)
        if service_type not in fr.ORDERED_SERVICES:
            raise ValueError(
                "a flow channel needs per-sender order: service_type is one of FIFO_MESS, "
                "CAUSAL_MESS, AGREED_MESS and SAFE_MESS (no SELF_DISCARD: the sender "
                f"counts its own deliveries), not {service_type!r}"
            )
        self.service_type = service_type
        min_frame = fr.HEADER_SIZE + fr.CHUNK_PREFIX + 1
        self.max_frame = _int_option("max_frame", max_frame, min_frame, fr.MAX_WIRE_DATA)
        self.max_batch_items = _int_option("max_batch_items", max_batch_items, 1, 1 << 20)
        if max_batch_bytes is None:
            # As large as a frame: a frame costs the sender ~50 us in Python
            # (its join, multicast, own delivery, pump) on top of its
            # messages' own cost, so fuller frames send more per second
            # (1 KB messages: 64 KiB batches 144k msg/s, 143 KB 185k).
            max_batch_bytes = self.max_frame
        self.max_batch_bytes = _int_option(
            "max_batch_bytes", max_batch_bytes, fr.HEADER_SIZE + 4, self.max_frame
        )
        self.linger = _seconds("linger", linger, allow_zero=True)
        self.max_message_bytes = _int_option(
            "max_message_bytes", max_message_bytes, 0, MAX_MESSAGE_LIMIT
        )
        if max_pending_bytes is None:
            max_pending_bytes = window_bytes
        self.max_pending_bytes = _int_option("max_pending_bytes", max_pending_bytes, 1, 1 << 40)
        self.stall_timeout = (
            math.inf
            if stall_timeout is None
            else _seconds("stall_timeout", stall_timeout, allow_zero=False)
        )
        if on_stall not in ON_STALL:
            raise ValueError(f"on_stall is one of {', '.join(ON_STALL)}, not {on_stall!r}")
        self.on_stall = on_stall
        self.join_grace = _seconds("join_grace", join_grace, allow_zero=True)
        self.self_delivery = bool(self_delivery)
        # Coalescing: with this many of our frames not yet delivered back to
        # us, new messages wait in the accumulator (they leave as one batch
        # when our own delivery returns): the daemon's turnaround, not the
        # application's call rate, sets how many daemon messages go out.
        self.max_inflight = (
            None
            if max_inflight is None or not self.self_delivery
            else _int_option("max_inflight", max_inflight, 1, 1 << 20)
        )
        self.me = me
        self._outbox = outbox
        self.store = self._retention(retention, retention_frames, retention_bytes)
        self._resender = (
            None if self.store is None else Resender(self.store, self.window, self.window_bytes)
        )

        # Batches never take more than a quarter of the byte window, so
        # credit for one returns before the window is used up.
        self._batch_bytes = max(fr.HEADER_SIZE + 4, min(self.max_batch_bytes, window_bytes // 4))
        self._q = max(1, window // 4)
        self._qb = max(1, window_bytes // 4)
        self._q16 = max(1, window // 16)  # report requests in the last quarter
        self._qb16 = max(1, window_bytes // 16)

        self.next_seq = 1
        self.sent_bytes = 0
        if self.store is not None and self.store.high() > 0:
            # A store that holds frames: the stream resumes after its newest.
            high = self.store.high()
            last = [f for seq, f in self.store.read(high, high)]
            if not last:
                raise ValueError(
                    f"the retention store says {high} is its newest frame, but has none"
                )
            hdr = fr.decode_header(last[0])
            if hdr.stream != self.stream or hdr.seq != high:
                raise ValueError(
                    f"the retention store holds frame {hdr.seq} of stream {hdr.stream:#x}, "
                    f"not {high} of {self.stream:#x}"
                )
            self.next_seq = high + 1
            self.sent_bytes = hdr.offset + len(last[0])
        self.members: dict[str, Member] = {}
        self._self = Member(me, ACTIVE, 0, 0, now)  # own deliveries: the in-flight bound
        self._floor = (0, 0)  # the highest position any member ever reported
        self.in_transition = False
        self.member = False  # sends only between our own join and our leave
        # Our leave was asked for, its self-leave not seen yet: views still
        # delivered before it do not make us a member again (what we sent
        # then would be ordered after the leave, uncounted by anyone).
        self._leaving = False
        self.closed = False
        # The accumulator: closed units (batches, chunked messages) in order,
        # then the open batch that new small messages join. Every size is
        # kept as it grows, so nothing ever rescans it.
        self._ready: deque[_Batch | tuple[memoryview, int]] = deque()
        self._open: _Batch | None = None
        self._items = 0  # logical messages accepted, not yet on the wire
        self._queued_bytes = 0
        self._chunk: tuple[memoryview, int] | None = None  # (message, msg_type) being sent
        self._chunk_pos = 0
        self._linger_since = math.inf
        # The credit rule as two integer bounds (recomputed when a position,
        # state or member changes): frame k of size L may go if k <= _lim_seq
        # and sent_bytes + L <= _lim_bytes; past them, blockers() decides
        # (it knows the exception for a member that consumed everything).
        self._dirty = True
        self._lim_seq = 0
        self._lim_bytes = 0
        self._min_seq = 0  # the slowest counted member's position (not ours) ...
        self._min_bytes = 0  # ... for the report-request rule
        self._has_members = False
        self._stuck = False  # the last pump stopped for want of credit
        self.stats = {
            "offered": 0,
            "frames": 0,
            "data": 0,
            "batches": 0,
            "batched_items": 0,
            "chunks": 0,
            "bytes": 0,
            "blocked": 0,
            "reports": 0,
            "stale_reports": 0,
            "bad_reports": 0,
            "untethered": 0,
            "retethered": 0,
            "nacks": 0,
            "resent": 0,
            "gaps_sent": 0,
        }
        self._self.seq, self._self.nbytes = self.last_seq, self.sent_bytes

    def _retention(
        self, retention: object, frames: int | None, nbytes: int | None
    ) -> RetentionStore | None:
        """The channel's retention: a ring sized from the window by default
        (four windows of frames, two of bytes), an application's store, or none."""
        if retention is True:
            return RetentionRing(
                _int_option("retention_frames", frames, 1, 1 << 30)
                if frames is not None
                else max(64, 4 * self.window),
                _int_option("retention_bytes", nbytes, 1, 1 << 42)
                if nbytes is not None
                else 2 * self.window_bytes,
            )
        if frames is not None or nbytes is not None:
            raise ValueError("retention_frames and retention_bytes size the default ring")
        if retention is False or retention is None:
            return None
        if not isinstance(retention, RetentionStore):
            raise TypeError(
                "retention is True (a ring), False (none) or a RetentionStore "
                f"(append/read/low/high/trim), not {type(retention).__name__}"
            )
        return retention

    # ---- what the front end asks ------------------------------------------

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def pending(self) -> int:
        """Logical messages accepted but not yet on the wire (a partly sent
        chunked message counts as one)."""
        return self._items

    def counted(self) -> Iterable[Member]:
        """The members the sender waits for (its own deliveries included)."""
        if self.self_delivery:
            yield self._self
        for m in self.members.values():
            if m.state in COUNTED:
                yield m

    def tethered(self) -> list[str]:
        return [m.name for m in self.members.values() if m.state in COUNTED]

    # offer(data, msg_type=0, now=0.0) -> bool is SenderBase's: it takes a
    # message that joins the open batch while credit is short, and passes
    # everything else here.
    def _offer(self, data: Any, msg_type: int = 0, now: float = 0.0) -> bool:
        """Accept one logical message, or say False: the accumulator is full
        (max_pending_bytes) and the caller must wait (for a report, a
        membership change or the next tick) and offer it again. An accepted
        message leaves at once while credit allows; otherwise it waits in
        the accumulator and leaves in a batch when credit returns."""
        if type(data) is not bytes:
            if self.closed:
                raise ValueError(f"the channel on {self.group!r} is closed")
            data = bytes(memoryview(data).cast("B"))  # the caller may reuse its buffer
        if type(msg_type) is not int or not -32768 <= msg_type <= 32767:
            _check_msg_type(msg_type)
        size = len(data)
        if (
            self._items == 0
            and size <= self._data_room
            and size <= self.max_message_bytes
            and self.member
            and not self.in_transition
            and not self.linger
        ):
            # The fast path: nothing waits, so the message may go at once.
            if self.closed:
                raise ValueError(f"the channel on {self.group!r} is closed")
            if self._dirty:
                self._limits()
            k = self.next_seq
            end = self.sent_bytes + HEADER_SIZE + size
            if (
                k <= self._lim_seq
                and end <= self._lim_bytes
                and (self.max_inflight is None or k - 1 - self._self.seq < self.max_inflight)
            ):
                self.stats["offered"] += 1
                self.stats["data"] += 1
                self._emit_data(DATA, 0, msg_type, (data,))
                return True
        elif self.closed:
            raise ValueError(f"the channel on {self.group!r} is closed")
        if size > self.max_message_bytes:
            raise MessageTooLarge(size, self.max_message_bytes)
        if self._items and self._queued_bytes + size > self.max_pending_bytes:
            self.stats["blocked"] += 1
            self.pump(now)
            if self._items and self._queued_bytes + size > self.max_pending_bytes:
                return False
        b = self._open
        if b is not None:
            # Into the open batch (the common case while credit is short).
            cost = (1 if size < 0x80 else fr.uvarint_size(size)) + 2 + size
            if (
                b.count != 0x7F  # nor 0x3FFF: the count's uvarint keeps its size
                and b.count != 0x3FFF
                and b.count < self.max_batch_items
                and b.size + cost <= self._batch_bytes
            ):
                b.entries += entry(size, msg_type)
                b.payloads.append(data)
                b.size += cost
                b.count += 1
                b.payload += size
            else:
                self._add(data, msg_type)
        else:
            if not self._items:
                self._linger_since = now
            self._add(data, msg_type)
        self._queued_bytes += size
        self._items += 1
        self.stats["offered"] += 1
        # Blocked at the last pump and nothing changed since (_dirty): a
        # message added behind the next frame (or to it: it only grows)
        # cannot unblock it.
        if not self._stuck or self._dirty:
            self.pump(now)
        return True

    def _add(self, data: bytes, msg_type: int) -> None:
        """Put one message in the accumulator: in the open batch, or (too
        large for a frame) as a chunked unit of its own."""
        size = len(data)
        b = self._open
        if size > self._data_room:
            if b is not None:
                self._ready.append(b)
                self._open = None
            self._ready.append((memoryview(data), msg_type))
            return
        cost = (1 if size < 0x80 else fr.uvarint_size(size)) + 2 + size
        if b is not None and (
            b.count >= self.max_batch_items
            or b.size + cost + (fr.uvarint_size(b.count + 1) - fr.uvarint_size(b.count))
            > self._batch_bytes
        ):
            self._ready.append(b)
            b = None
        if b is None:
            b = self._open = _Batch(data, msg_type)
        else:
            b.add(data, msg_type, cost)

    @property
    def _data_room(self) -> int:
        return self.max_frame - HEADER_SIZE

    def flush(self, now: float) -> None:
        """Send what credit allows now, ignoring linger."""
        self.pump(now, force=True)

    def close(self, now: float, kept: bool = False) -> None:
        """Say BYE (receivers free the stream); later offers raise ValueError.
        What was accepted and not sent is dropped (the BYE names the last
        frame sent). ``kept``: it still answers NACKs for a while (FlowCore
        keeps it), so a receiver being repaired finishes first."""
        if not self.closed:
            self.closed = True
            self._ready.clear()
            self._open = None
            self._chunk, self._chunk_pos = None, 0
            self._items = self._queued_bytes = 0
            self._linger_since = math.inf
            self._emit(self.bye(kept))

    def bye(self, kept: bool = False) -> bytes:
        """The BYE frame: the stream's last frame and bytes."""
        flags = fr.F_KEPT if kept else 0
        return fr.header(fr.BYE, self.stream, self.last_seq, self.sent_bytes, flags)

    # ---- the credit rule ----------------------------------------------------

    def blockers(self, size: int) -> list[Member]:
        """The members that forbid a frame of size bytes as the next one:
        frame k may go while k - seq <= window and the bytes not yet consumed
        stay within window_bytes, or the member has consumed everything."""
        k = self.next_seq
        out = []
        for m in self.counted():
            if k - m.seq > self.window or (
                m.seq != k - 1 and self.sent_bytes + size - m.nbytes > self.window_bytes
            ):
                out.append(m)
        return out

    def _next_frame_size(self, now: float, force: bool) -> int:
        """The size of the frame that would go next (0: none is ready)."""
        if self._chunk is not None:
            rest = len(self._chunk[0]) - self._chunk_pos
            return HEADER_SIZE + fr.CHUNK_PREFIX + min(rest, self._chunk_room)
        if self._ready:
            unit = self._ready[0]
            if not isinstance(unit, _Batch):
                return HEADER_SIZE + fr.CHUNK_PREFIX + min(len(unit[0]), self._chunk_room)
            return unit.framed_size()
        b = self._open
        if b is None:
            return 0
        if self.linger and not force and now - self._linger_since < self.linger:
            return 0  # hold the open batch a little longer
        return b.framed_size()

    @property
    def _chunk_room(self) -> int:
        return self.max_frame - HEADER_SIZE - fr.CHUNK_PREFIX

    def _limits(self) -> None:
        """Recompute the credit rule's integer bounds from the counted members."""
        lim_seq = lim_bytes = math.inf
        min_seq = min_bytes = math.inf
        for m in self.counted():
            lim_seq = min(lim_seq, m.seq + self.window)
            lim_bytes = min(lim_bytes, m.nbytes + self.window_bytes)
            if m is not self._self:
                min_seq = min(min_seq, m.seq)
                min_bytes = min(min_bytes, m.nbytes)
        big = 1 << 62
        self._lim_seq = big if lim_seq == math.inf else int(lim_seq)
        self._lim_bytes = big if lim_bytes == math.inf else int(lim_bytes)
        self._has_members = min_seq != math.inf
        self._min_seq = 0 if min_seq == math.inf else int(min_seq)
        self._min_bytes = 0 if min_bytes == math.inf else int(min_bytes)
        self._dirty = False

    def pump(self, now: float, force: bool = False) -> None:
        """Put frames on the wire while credit allows."""
        self._stuck = False
        while self.member and not self.in_transition:
            size = self._next_frame_size(now, force)
            if not size:
                break
            if self._dirty:
                self._limits()
            k = self.next_seq
            if k > self._lim_seq or self.sent_bytes + size > self._lim_bytes:
                blockers = self.blockers(size)
                if blockers:
                    for m in blockers:
                        if m.blocking_since is None:
                            m.blocking_since = now
                    self._stuck = True
                    return
            if self.max_inflight is not None and k - 1 - self._self.seq >= self.max_inflight:
                self._stuck = True
                return  # our own delivery brings us back here
            self._send_next()
        for m in self.counted():
            m.blocking_since = None

    def _send_next(self) -> None:
        if self._chunk is None:
            unit = self._ready.popleft() if self._ready else self._open
            if unit is self._open:
                self._open = None
            if not isinstance(unit, _Batch):
                assert unit is not None
                self._queued_bytes -= len(unit[0])
                self._chunk = unit
                self._chunk_pos = 0
            else:
                self._queued_bytes -= unit.payload
                self._items -= unit.count
                if unit.count == 1:
                    self.stats["data"] += 1
                    self._emit_data(DATA, 0, unit.first_type, (unit.first,))
                else:
                    self.stats["batches"] += 1
                    self.stats["batched_items"] += unit.count
                    self._emit_data(BATCH, 0, 0, unit.body())
                if self._items:
                    self._linger_since = -math.inf  # what is left waited already
                return
        view, msg_type = self._chunk
        total = len(view)
        piece = view[self._chunk_pos : self._chunk_pos + self._chunk_room]
        last = self._chunk_pos + len(piece) == total
        body = (fr.chunk_prefix(total, self._chunk_pos), piece)
        self._chunk_pos += len(piece)
        if last:
            self._chunk = None
            self._items -= 1
        self.stats["chunks"] += 1
        self._emit_data(CHUNK, fr.F_LAST if last else 0, msg_type, body)

    def _emit_data(
        self, kind: int, flags: int, msg_type: int, body: Sequence[bytes | bytearray | memoryview]
    ) -> None:
        """A data frame of the given body (its parts: one join makes the
        frame, so a batch's payloads are copied once)."""
        k = self.next_seq
        offset = self.sent_bytes
        end = offset + HEADER_SIZE + sum(map(len, body))
        # Ask for a report every quarter window (frames or bytes), and every
        # sixteenth once a frame leaves a member less than a quarter of its
        # credit. (Not every frame there: a receiver that lags by that much
        # would then report each frame, and fall further behind doing so.)
        if (
            k % self._q == 0
            or offset // self._qb != end // self._qb
            or (
                self._has_members
                and (
                    self.window - (k - self._min_seq) < self._q
                    or self.window_bytes - (end - self._min_bytes) < self._qb
                )
                and (k % self._q16 == 0 or offset // self._qb16 != end // self._qb16)
            )
        ):
            flags |= fr.F_REPORT
        self.next_seq = k + 1
        self.sent_bytes = end
        self.stats["frames"] += 1
        self.stats["bytes"] += end - offset
        head = _pack(MAGIC, VERSION, kind, flags, msg_type, self.stream, k, offset)
        frame = b"".join((head, *body))
        if self.store is not None:
            self.store.append(k, frame)
        self._outbox.append(Multicast(self.service_type, self.group, frame, FLOW_MSG_TYPE))

    def _emit(self, frame: bytes) -> None:
        self._outbox.append(Multicast(self.service_type, self.group, frame, fr.FLOW_MSG_TYPE))

    # ---- inputs from the core ----------------------------------------------------

    def on_self(self, seq: int, end: int, now: float) -> None:
        """Our own frame seq (ending at byte end) was delivered back to us."""
        self._dirty = True
        s = self._self
        if seq > s.seq and seq <= self.last_seq:
            s.seq, s.nbytes, s.progress = seq, end, now
        self.pump(now)

    def on_report(self, member: str, seq: int, nbytes: int, now: float) -> list[FlowEvent]:
        """A member's absolute consumed position: the highest position wins,
        so a lost, repeated or late report can neither mint nor leak credit."""
        resender = self._resender
        # (a member's position, or an asker's the Resender knows: a stranger's
        # REPORTs must not grow its tables until the next view)
        if (
            resender is not None
            and seq <= self.last_seq
            and (member in self.members or resender.knows(member))
        ):
            resender.consumed(member, seq)
            if resender.wants(member):
                self._serve(member, now)
        m = self.members.get(member)
        if m is None:
            self.stats["stale_reports"] += 1
            return []
        if m.state == FOREIGN:
            # A speaker after all (its HELLO took longer than join_grace):
            # followed from its reports, waited for once it has caught up.
            m.state = UNTETHERED
        if seq > self.last_seq or nbytes > self.sent_bytes:
            self.stats["bad_reports"] += 1
            return []
        self.stats["reports"] += 1
        if m.base is not None:  # (back, catching up: it stands there now)
            m.base = (seq, nbytes) if seq < m.seq else None
        self._dirty = True
        events: list[FlowEvent] = []
        if seq > m.seq:
            if nbytes < m.nbytes:
                self.stats["bad_reports"] += 1
                return []
            m.seq, m.nbytes, m.progress = seq, nbytes, now
            m.blocking_since = None
            m.told = False
            if (seq, nbytes) > self._floor:
                self._floor = (seq, nbytes)
        if m.state == JOINING:
            m.state = ACTIVE
        elif m.state == UNTETHERED and self._caught_up(m):
            m.state = ACTIVE
            self.stats["retethered"] += 1
            events.append(MemberRetethered(self.group, member))
        self.pump(now)
        return events

    def on_nack(
        self, member: str, first: int, last: int, consumed: tuple[int, int], now: float
    ) -> None:
        """``member`` asks for frames first..last again, having consumed up to
        ``consumed`` (seq, bytes): it is answered from the retention, within
        its window. A counted member is charged from that position from now
        on (lower than a rejoined member's base): live frames and resent
        ones together stay within one window of what it consumed."""
        self.stats["nacks"] += 1
        cseq, cbytes = consumed
        if cseq > self.last_seq or cbytes > self.sent_bytes or first < 1:
            self.stats["bad_reports"] += 1
            return
        self.charge_from(member, cseq, cbytes, now)
        if first > last:
            return  # only its position (after a merge): nothing asked
        if self._resender is None:
            # No retention: all of it is gone.
            self._gap(member, min(last, self.last_seq) + 1)
            return
        self._resender.request(member, first, last, cseq, now)
        self._serve(member, now)

    def charge_from(self, member: str, seq: int, nbytes: int, now: float) -> None:
        """A counted member is charged from (seq, nbytes), its NACK's consumed
        position, when that is below its position: live frames and resent
        ones together stay within a window of what it consumed."""
        m = self.members.get(member)
        if m is None:
            return
        m.base = None
        if m.state in COUNTED and seq < m.seq:
            m.seq, m.nbytes, m.progress = seq, nbytes, now
            self._dirty = True

    def departed_at(self, member: str) -> tuple[int, int] | None:
        """Where a member that lost touch stood: its position, or the base it
        was told on its return if it has said nothing since."""
        m = self.members.get(member)
        if m is None:
            return None
        if m.base is not None and m.base < (m.seq, m.nbytes):
            return m.base
        return m.seq, m.nbytes

    def _serve(self, member: str, now: float) -> None:
        """Resend to member what its window allows of what it asked for."""
        assert self._resender is not None
        due = self._resender.due(member, now)
        if due.gone is not None:
            self._gap(member, due.gone)
        if due.frames:
            self.stats["resent"] += len(due.frames)
            out = self._outbox
            st = self.service_type
            for _seq, frame in due.frames:
                out.append(Multicast(st, member, frame, FLOW_MSG_TYPE))

    def _gap(self, member: str, first_held: int) -> None:
        self.stats["gaps_sent"] += 1
        self._outbox.append(
            Multicast(
                fr.AGREED_MESS, member, fr.header(fr.GAP, self.stream, first_held), FLOW_MSG_TYPE
            )
        )

    def on_disconnected(self, now: float) -> None:
        """Our connection was lost (it is being made again): nobody is a
        member until our own join is seen again, and nothing we sent is
        still to come back to us (receivers ask again for what they miss).
        What waits in the accumulator stays."""
        self.on_left(now)
        if self._resender is not None:
            self._resender.clear()

    def _caught_up(self, m: Member) -> bool:
        return (
            self.last_seq - m.seq <= self.window // 2
            and self.sent_bytes - m.nbytes <= self.window_bytes // 2
        )

    def on_speaker(self, member: str, now: float) -> None:
        """The member said HELLO: a joining member is a speaker."""
        m = self.members.get(member)
        self._dirty = True
        if m is not None and m.state == JOINING:
            m.state = ACTIVE
            m.deadline = math.inf
        elif m is not None and m.state == FOREIGN:
            m.state = UNTETHERED  # late: it may hold more than a window until it catches up

    def _base(self) -> tuple[int, int]:
        """The position a new member is charged from. With our own deliveries
        seen, it is exact: every frame we had delivered back before the
        member's join was ordered before it, every later one after it
        (per-sender FIFO in one total order). Without, it is the highest
        position any member reported before the join: those frames were
        delivered, hence ordered, before the report, which came before the
        join (reports are AGREED, ordered with memberships)."""
        if self.self_delivery:
            return self._self.seq, self._self.nbytes
        return self._floor

    def on_transition(self, now: float) -> None:
        """TRANSITION_MESS: a network change; the regular membership that
        Spread delivers right after it says who stays. Until then nothing is
        sent, and nobody is waited for (nobody can stall us)."""
        self.in_transition = True
        self._dirty = True
        for m in self.counted():
            m.blocking_since = None

    def on_view(
        self,
        view: set[str],
        now: float,
        *,
        joiner: str | None = None,
        continuing: set[str] | None = None,
        speakers: set[str] | frozenset[str] = frozenset(),
        joined_at: float = -math.inf,
    ) -> None:
        """A regular membership of our group: view its members. ``joiner``
        the member of a CAUSED_BY_JOIN (others: our own join, network);
        ``continuing`` for CAUSED_BY_NETWORK our own vs-set (the members that
        come from our previous view: the others are new to us);
        ``joined_at`` when we joined."""
        self.in_transition = False
        self.member = not self._leaving
        self._dirty = True
        for name in list(self.members):
            if name not in view or (continuing is not None and name not in continuing):
                del self.members[name]
        if self._resender is not None:
            self._resender.keep(view)
        base_seq, base_bytes = self._base()
        for name in sorted(view):
            if name == self.me or name in self.members:
                continue
            if name == joiner and name not in speakers:
                # A speaker's HELLO comes ahead of its join (FIFO from one
                # connection): no HELLO, no speaker. Unless we joined just
                # before: its HELLO may have been ordered before our join.
                state = JOINING if now - joined_at < self.join_grace else FOREIGN
            else:
                state = ACTIVE if name in speakers else JOINING
            m = Member(name, state, base_seq, base_bytes, now)
            if state == JOINING:
                m.deadline = now + self.join_grace
            self.members[name] = m
        self.pump(now)

    def on_leave_request(self, now: float) -> None:
        """We are about to leave: nothing more is sent (what went before our
        leave request is delivered back to us before our self-leave)."""
        self.member = False
        self._leaving = True

    def on_left(self, now: float) -> None:
        """We left the group (self-leave): nobody is a member any more, and
        nothing sent is still to come back to us."""
        self.members.clear()
        self._dirty = True
        self.member = False
        self._leaving = False
        self.in_transition = False
        s = self._self
        s.seq, s.nbytes, s.progress = self.last_seq, self.sent_bytes, now

    # ---- time -----------------------------------------------------------------

    def tick(self, now: float) -> list[FlowEvent]:
        events: list[FlowEvent] = []
        self._dirty = True
        for m in list(self.members.values()):
            if m.state == JOINING and now >= m.deadline:
                m.state = FOREIGN
                events.append(MemberForeign(self.group, m.name))
            if m.state not in COUNTED or m.blocking_since is None:
                continue
            idle = now - max(m.progress, m.blocking_since)
            if idle < self.stall_timeout:
                continue
            lag_msgs, lag_bytes = self.last_seq - m.seq, self.sent_bytes - m.nbytes
            if self.on_stall == "untether":
                m.state = UNTETHERED
                m.blocking_since = None
                self.stats["untethered"] += 1
                events.append(MemberUntethered(self.group, m.name, lag_msgs, lag_bytes, idle))
            elif not m.told:
                m.told = True
                events.append(MemberStalled(self.group, m.name, lag_msgs, lag_bytes, idle))
        self.pump(now)
        return events

    def next_deadline(self) -> float:
        t = math.inf
        for m in self.members.values():
            if m.state == JOINING:
                t = min(t, m.deadline)
            if m.state in COUNTED and m.blocking_since is not None and not m.told:
                t = min(t, max(m.progress, m.blocking_since) + self.stall_timeout)
        if self.linger and self._items and self._chunk is None:
            t = min(t, self._linger_since + self.linger)
        return t

    # ---- what the front end tells the user ------------------------------------

    def laggards(self, now: float) -> tuple[Laggard, ...]:
        """Who holds the next frame back, with their lag."""
        size = self._next_frame_size(now, True) or fr.HEADER_SIZE
        return tuple(
            Laggard(
                m.name,
                self.last_seq - m.seq,
                self.sent_bytes - m.nbytes,
                now - m.progress,
            )
            for m in self.blockers(size)
        )

    def send_timeout(self, now: float, waited: float, outage: float | None = None) -> SendTimeout:
        """The exception for a send that waited ``waited`` seconds in vain
        (``outage``: for how long the session has been reconnecting)."""
        if outage is not None:
            return SendTimeout(
                self.group, (), waited, f"the session is reconnecting ({outage:.3g} s)"
            )
        return SendTimeout(self.group, self.laggards(now), waited)

    def stalled(self, now: float) -> SendTimeout | None:
        """With on_stall="raise": the exception to raise once a member that
        holds us has made no progress for stall_timeout, else None. The
        other modes never fail a send: "untether" frees it at the tick that
        finds the stall (a sender may wake just before it), "wait" waits."""
        if self.on_stall != "raise":
            return None
        size = self._next_frame_size(now, True)
        if not size:
            return None
        for m in self.blockers(size):
            if m is not self._self and m.blocking_since is not None:
                if now - max(m.progress, m.blocking_since) >= self.stall_timeout:
                    return self.send_timeout(now, now - m.blocking_since)
        return None
