"""The receiving side: per (sender, stream) sequence checks, absolute
consumed positions and when to report them, unbatching, and reassembly of
chunks in a bounded buffer. Pure state: time is an argument, reports go to
an outbox. A malformed frame never raises out of here.

Recovery (issue 17): a frame out of line (a hole: frames lost to a
reconnect, a partition, a sender's lost socket buffer) puts the stream under
a StreamRepair, which holds what came early, asks the sender for the hole
(NACK) and hands frames on in order, with a DataLoss in place of what the
sender no longer has. A sender that leaves the view by a disconnect or a
partition is waited for ``orphan_timeout``: when it comes back, its HELLO
names its streams' last frames and what we miss is asked for."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from . import _frame as fr
from ._events import DataLoss, FlowEvent, FlowMsg, Multicast, ProtocolErrorEvent, StreamEnded
from ._fast import batch_messages, consume
from ._repair import Lost, StreamRepair


class _Record:
    """One received frame, until every logical message in it is consumed
    (its messages read their sender, group, seq ... from here)."""

    __slots__ = (
        "stream",
        "seq",
        "end",
        "remaining",
        "flags",
        "service_type",
        "endian",
        "lost_frames",
        "lost_bytes",
    )

    def __init__(
        self,
        stream: Stream,
        seq: int,
        end: int,
        remaining: int,
        flags: int,
        service_type: int = 0,
        endian: int = 0,
    ) -> None:
        self.stream = stream
        self.seq = seq
        self.end = end  # the stream's byte position after this frame
        self.remaining = remaining  # logical messages not yet consumed
        self.flags = flags
        self.service_type = service_type
        self.endian = endian
        self.lost_frames = 0  # frames (bytes) lost before this record: held by nobody
        self.lost_bytes = 0


class Stream:
    """What a receiver knows of one sender's stream."""

    __slots__ = (
        "sender",
        "group",
        "stream",
        "expected",
        "received_end",
        "pos_seq",
        "pos_bytes",
        "records",
        "reported",
        "last_report",
        "report_due",
        "partial",
        "dropped",
        "repair",
        "repaired",
        "orphaned",
        "after_loss",
        "lost_frames",
        "lost_bytes",
        "held",
        "closing",
        "began",
    )

    def __init__(self, sender: str, group: str, stream: int, seq: int, offset: int) -> None:
        self.sender = sender
        self.group = group
        self.stream = stream
        # The first frame seen is the base: earlier ones were ordered before
        # our join (or before a merge) and were never ours.
        self.expected = seq
        self.received_end = offset
        self.pos_seq = seq - 1  # absolute consumed position: frames ...
        self.pos_bytes = offset  # ... and bytes
        self.records: deque[_Record] = deque()
        self.reported = (seq - 1, offset)
        self.last_report = -math.inf
        self.report_due = math.inf
        self.partial: tuple[int, int, bytearray] | None = None  # (total, msg_type, data)
        self.dropped = False
        self.repair: StreamRepair | None = None  # while a hole is being repaired
        # Under repair once, or adopted again after its sender was away: a
        # catch-up (or the unconsumed rest of before) may hold two windows.
        self.repaired = False
        self.orphaned = math.inf  # when the sender left the view (not by a leave)
        self.after_loss = False  # the next frame follows lost ones: its offset is new
        # Lost frames (and bytes) behind unconsumed ones: they count as
        # consumed once those are, and are held by nobody meanwhile.
        self.lost_frames = 0
        self.lost_bytes = 0
        # First seen after our own join following a lost connection, before
        # its sender's answer: frames held until that answer says where we
        # stood in it (we may have missed its first frames).
        self.held: list | None = None
        # Its sender closed it while it was being repaired, and still answers
        # (a BYE with F_KEPT): ended clean once repaired, or at this time.
        self.closing = math.inf
        self.began = seq  # its first frame we know of (ours or lost)

    @property
    def unconsumed_frames(self) -> int:
        return self.expected - 1 - self.pos_seq - self.lost_frames

    @property
    def unconsumed_bytes(self) -> int:
        return self.received_end - self.pos_bytes - self.lost_bytes


class Receiver:
    """Every stream a session receives, with its report schedule."""

    def __init__(
        self,
        outbox: list[Multicast],
        *,
        strict: bool = False,
        max_message_bytes: int = 64 << 20,
        max_reassembly_bytes: int | None = None,
        report_delay: float = 0.002,
        reorder_window: int = 256,
        repair_retry: float = 0.2,
        orphan_timeout: float = 30.0,
        answer_wait: float = 1.0,
    ) -> None:
        self._outbox = outbox
        self.answer_wait = answer_wait
        # (sender, group) -> until when a stream of it we never saw is held:
        # after our join following a lost connection, until its answer.
        self._awaiting: dict[tuple[str, str], float] = {}
        self._ended: dict[tuple[str, int], None] = {}  # recently ended streams (bounded)
        self._closing: dict[Stream, None] = {}  # streams to end once repaired
        self.reorder_window = reorder_window
        self.repair_retry = repair_retry
        self.orphan_timeout = orphan_timeout
        self._repairing: dict[Stream, None] = {}
        self._orphans: dict[Stream, None] = {}
        self.strict = strict
        self.max_message_bytes = max_message_bytes
        self.max_reassembly_bytes = (
            4 * max_message_bytes if max_reassembly_bytes is None else max_reassembly_bytes
        )
        self.report_delay = report_delay
        self.streams: dict[tuple[str, int], Stream] = {}
        self._by_group: dict[str, set[tuple[str, int]]] = {}
        self._due: dict[Stream, None] = {}  # (a dict: a set's order varies by run)
        self.reassembly_bytes = 0
        self.stats = {
            "frames": 0,
            "messages": 0,
            "duplicates": 0,
            "gaps": 0,
            "requests": 0,
            "lost": 0,
            "stray_resends": 0,
            "malformed": 0,
            "abandoned_chunks": 0,
            "reports": 0,
        }

    # ---- frames in ------------------------------------------------------------

    def malformed(self, group: str, sender: str, reason: str) -> list[FlowEvent]:
        self.stats["malformed"] += 1
        return [ProtocolErrorEvent(group, sender, reason)] if self.strict else []

    def on_frame(
        self,
        sender: str,
        group: str,
        hdr: fr.Header,
        frame: memoryview,
        service_type: int,
        endian: int,
        now: float,
        resent: bool = False,
    ) -> list[FlowMsg | FlowEvent]:
        """A DATA, BATCH or CHUNK frame (header decoded): the logical
        messages it completes, and any events, in order. ``resent``: sent
        again to our private group (``group`` is then ours, not the stream's)."""
        key = (sender, hdr.stream)
        st = self.streams.get(key)
        if st is None:
            if resent:
                self.stats["stray_resends"] += 1  # a stream we never had (or ended)
                return []
            if hdr.seq < 1:
                return list(self.malformed(group, sender, "frame seq 0"))
            st = self._new_stream(sender, group, hdr.stream, hdr.seq, hdr.offset)
            if hdr.seq > 1 and (sender, group) in self._awaiting:
                st.held = []  # (from frame 1 on, nothing before can be missed)
                st.repaired = True  # (held, then maybe caught up: two windows)
        elif st.group != group and not resent:
            return list(self.malformed(group, sender, "stream moved to another group"))
        if st.held is not None:
            if len(st.held) < self.reorder_window:  # (beyond: asked for once released)
                st.held.append((hdr, frame, service_type, endian, resent))
            return []
        repair = st.repair
        if repair is None:
            if hdr.seq == st.expected:
                return self._take(st, hdr, frame, service_type, endian, now)
            if hdr.seq < st.expected:
                self.stats["duplicates"] += 1
                return []
            self.stats["gaps"] += 1
            repair = self._repair_of(st)
        elif hdr.seq < repair.expected:
            self.stats["duplicates"] += 1
            return []
        items = repair.arrive(hdr.seq, (hdr, frame, service_type, endian), now)
        out = self._deliver(st, items, now)
        self._repaired(st, now, out)
        return out

    # ---- repair -------------------------------------------------------------------

    def _repair_of(self, st: Stream) -> StreamRepair:
        if st.repair is None:
            st.repair = StreamRepair(
                st.expected, reorder_window=self.reorder_window, retry=self.repair_retry
            )
            self._repairing[st] = None
            st.repaired = True
        return st.repair

    def _deliver(self, st: Stream, items: list, now: float) -> list[FlowMsg | FlowEvent]:
        """What a repair hands on, in order: frames taken as live ones, and
        a DataLoss for each run of lost frames."""
        out: list[FlowMsg | FlowEvent] = []
        for item in items:
            if type(item) is Lost:
                out.append(DataLoss(st.group, st.sender, st.stream, item.first, item.last))
                self.stats["lost"] += item.last - item.first + 1
                st.expected = item.last + 1
                st.after_loss = True
                self._abandon(st)  # a chunked message across the loss can't be whole
                # What can't be had counts as consumed (the sender is not held
                # for it); its bytes are known once the next frame comes.
                rec = _Record(st, item.last, st.received_end, 0, 0)
                rec.lost_frames = item.last - item.first + 1
                st.lost_frames += rec.lost_frames
                st.records.append(rec)
                self._advance(st, now)
            else:
                hdr, frame, service_type, endian = item
                out.extend(self._take(st, hdr, frame, service_type, endian, now))
        return out

    def _repaired(self, st: Stream, now: float = 0.0, out: list | None = None) -> None:
        """Sends what the stream's repair asks for; forgets the repair once
        nothing is missing (and, given ``out``, ends a stream closed while
        it was repaired, once it is)."""
        repair = st.repair
        if repair is None:
            return
        for r in repair.actions:
            self.stats["requests"] += 1
            self._outbox.append(
                Multicast(
                    fr.AGREED_MESS,
                    st.sender,
                    fr.nack(st.stream, r.first, r.last, (st.pos_seq, st.pos_bytes)),
                    fr.FLOW_MSG_TYPE,
                )
            )
        repair.actions.clear()
        if repair.complete and not repair.waiting:
            st.repair = None
            self._repairing.pop(st, None)
            if out is not None and st.closing != math.inf:
                out.extend(self._end_kept(st, now))

    def on_gap(self, sender: str, hdr: fr.Header, now: float) -> list[FlowMsg | FlowEvent]:
        """The sender's GAP: it no longer holds the stream's frames before hdr.seq."""
        st = self.streams.get((sender, hdr.stream))
        if st is None or st.repair is None:
            return []
        out = self._deliver(st, st.repair.gone(hdr.seq, now), now)
        self._repaired(st, now, out)
        return out

    def _new_stream(self, sender: str, group: str, stream: int, seq: int, offset: int) -> Stream:
        st = Stream(sender, group, stream, seq, offset)
        key = (sender, stream)
        self.streams[key] = st
        self._by_group.setdefault(group, set()).add(key)
        self._ended.pop(key, None)
        return st

    def await_answers(self, group: str, senders: set[str], now: float) -> None:
        """Our join after a lost connection: until each sender's answer (or
        answer_wait), a stream of it we never saw is held, not begun at the
        first frame that came (the answer may say we missed its first ones)."""
        for sender in senders:
            self._awaiting[(sender, group)] = now + self.answer_wait

    def _release(
        self, sender: str, group: str, bases: dict[int, tuple[int, int]], now: float
    ) -> list[FlowMsg | FlowEvent]:
        """Its answer came (or the wait ended): held streams begin at their
        base when it is earlier than the first frame held, and take what
        they hold as any frame."""
        self._awaiting.pop((sender, group), None)
        out: list[FlowMsg | FlowEvent] = []
        for key in sorted(self._by_group.get(group, ())):
            st = self.streams.get(key)
            if key[0] != sender or st is None or st.held is None:
                continue
            held, st.held = st.held, None
            base = bases.get(key[1])
            if base is not None and base[0] + 1 < st.expected:
                self._rebase(st, base)
            for hdr, frame, service_type, endian, resent in held:
                out.extend(
                    self.on_frame(sender, group, hdr, frame, service_type, endian, now, resent)
                )
        return out

    @staticmethod
    def _rebase(st: Stream, base: tuple[int, int]) -> None:
        """Nothing of st taken yet: it begins after base instead."""
        st.expected = st.began = base[0] + 1
        st.received_end = base[1]
        st.pos_seq, st.pos_bytes = base
        st.reported = base

    def on_streams(
        self,
        sender: str,
        group: str,
        streams: list[tuple[int, ...]],
        now: float,
        *,
        answer: bool = False,
        based: bool = False,
    ) -> list[FlowMsg | FlowEvent]:
        """A HELLO of sender on group names its streams there and their last
        frames: what we miss of them is asked for; a stream of its we hold
        that it does not name is over (a restarted sender: unclean).
        ``answer``: it answers our HELLO; ``based``: its entries carry the
        position we had in each stream before we (or it) lost touch, and a
        stream we never saw is taken up there."""
        listed = {e[0]: e[1] for e in streams}
        bases: dict[int, tuple[int, int]] = {}
        if based:
            for e in streams:
                if len(e) == 5 and e[3] <= e[1] and e[4] <= e[2]:
                    bases[e[0]] = (e[3], e[4])
        out: list[FlowMsg | FlowEvent] = []
        if answer and (sender, group) in self._awaiting:
            out.extend(self._release(sender, group, bases, now))
        for stream, base in sorted(bases.items()):
            key = (sender, stream)
            st = self.streams.get(key)
            if st is not None and st.held is None and base[0] + 1 < st.began:
                # Begun at a frame that came before this answer, later than
                # answer_wait: what came before it is out of reach now (it
                # would come after what we handed out). Not silently.
                out.append(DataLoss(group, sender, stream, base[0] + 1, st.began - 1))
                self.stats["lost"] += st.began - 1 - base[0]
                st.began = base[0] + 1
            if base[0] < listed[stream] and key not in self.streams and key not in self._ended:
                # (caught up from there: it may hold two windows meanwhile)
                self._new_stream(sender, group, stream, base[0] + 1, base[1]).repaired = True
        for key in sorted(self._by_group.get(group, ())):
            if key[0] != sender:
                continue
            st = self.streams[key]
            if st.held is not None:
                continue  # (until its answer)
            last = listed.get(key[1])
            if last is None:
                out.extend(self._end(st, now, clean=False))
                continue
            self._adopt(st)
            if last >= (st.repair.expected if st.repair is not None else st.expected):
                self._repair_of(st).announce(last, now)
                self._repaired(st)
        return out

    def _adopt(self, st: Stream) -> None:
        """The stream's sender is back (in the view, or says HELLO). It
        charges us afresh (from its own position at the merge or our
        rejoin): what we had not consumed of it before is beyond that."""
        if st.orphaned != math.inf:
            st.orphaned = math.inf
            st.repaired = True
            self._orphans.pop(st, None)
            # Our position, as an empty NACK: the sender charges us from what
            # we consumed, not from its own position at the merge (what we
            # had not consumed of it would then be beyond the window).
            self._outbox.append(
                Multicast(
                    fr.AGREED_MESS,
                    st.sender,
                    fr.nack(st.stream, st.expected, st.expected - 1, (st.pos_seq, st.pos_bytes)),
                    fr.FLOW_MSG_TYPE,
                )
            )

    def _end(self, st: Stream, now: float, *, clean: bool) -> list[FlowMsg | FlowEvent]:
        """The stream is over: what its repair still holds, a DataLoss for
        what is known to exist and never came, then StreamEnded."""
        out: list[FlowMsg | FlowEvent] = []
        if st.repair is not None:
            out = self._deliver(st, st.repair.ended(), now)
            st.repair = None
            self._repairing.pop(st, None)
        self._drop((st.sender, st.stream))
        out.append(StreamEnded(st.group, st.sender, st.stream, st.expected - 1, clean))
        return out

    # ---- frames in order ------------------------------------------------------------

    def _take(
        self,
        st: Stream,
        hdr: fr.Header,
        frame: memoryview,
        service_type: int,
        endian: int,
        now: float,
    ) -> list[FlowMsg | FlowEvent]:
        """The stream's next frame (hdr.seq == st.expected)."""
        group, sender = st.group, st.sender
        out: list[FlowMsg | FlowEvent] = []
        if hdr.offset != st.received_end:
            if not st.after_loss:
                out.extend(self.malformed(group, sender, "frame offset out of line"))
            # What never came counts as consumed, so the sender is not held
            # for it; a partial message across the hole is abandoned.
            rec = _Record(st, hdr.seq - 1, hdr.offset, 0, 0)
            if st.after_loss and hdr.offset > st.received_end:
                rec.lost_bytes = hdr.offset - st.received_end
                st.lost_bytes += rec.lost_bytes
            st.records.append(rec)
            self._abandon(st)
        st.after_loss = False
        self.stats["frames"] += 1
        st.expected = hdr.seq + 1
        end = hdr.offset + len(frame)
        st.received_end = end
        rec = _Record(st, hdr.seq, end, 0, hdr.flags, service_type, endian)
        st.records.append(rec)
        kind = hdr.kind
        if kind == fr.DATA:
            out.append(self._msg(rec, hdr.msg_type, bytes(frame[fr.HEADER_SIZE :]), 0))
        elif kind == fr.BATCH:
            data = frame.obj if type(frame.obj) is bytes else bytes(frame)
            try:
                # The hot loop of the receive path (in C where the backend
                # has it: _fast.py): one FlowMsg per item, and only what
                # differs between items is stored in it.
                msgs = batch_messages(FlowMsg, data, rec)
            except fr.FrameError as e:
                out.extend(self.malformed(group, sender, str(e)))
            else:
                out.extend(msgs)
                rec.remaining = len(msgs)
                self.stats["messages"] += len(msgs)
        else:
            msg = self._chunk(st, rec, hdr, frame[fr.HEADER_SIZE :], out)
            if msg is not None:
                out.append(msg)
        self._advance(st, now)
        return out

    def _msg(self, rec: _Record, msg_type: int, data: bytes, index: int) -> FlowMsg:
        m = FlowMsg.__new__(FlowMsg)
        m.message = data
        m.msg_type = msg_type
        m.index = index
        m._record = rec
        m._open = True
        rec.remaining += 1
        self.stats["messages"] += 1
        return m

    def _abandon(self, st: Stream) -> None:
        if st.partial is not None:
            self.reassembly_bytes -= len(st.partial[2])
            st.partial = None
            self.stats["abandoned_chunks"] += 1

    def _chunk(
        self,
        st: Stream,
        rec: _Record,
        hdr: fr.Header,
        body: memoryview,
        out: list[FlowMsg | FlowEvent],
    ) -> FlowMsg | None:
        """Take a CHUNK into the reassembly buffer. Its frame counts as
        consumed at once (so a message larger than the byte window cannot
        deadlock); the message's last piece is consumed with the message."""
        try:
            total, position, piece = fr.decode_chunk_body(body)
        except fr.FrameError as e:
            self._abandon(st)
            out.extend(self.malformed(st.group, st.sender, str(e)))
            return None
        last = position + len(piece) == total
        if bool(hdr.flags & fr.F_LAST) != last:
            self._bad_chunk(st, out, "chunk's last flag and length disagree")
            return None
        if total > self.max_message_bytes:
            self._bad_chunk(st, out, f"chunked message of {total} bytes is too large")
            return None
        if position == 0:
            if st.partial is not None:
                self._bad_chunk(st, out, "new chunked message before the last one ended")
            st.partial = (total, hdr.msg_type, bytearray())
        elif st.partial is None or st.partial[0] != total or len(st.partial[2]) != position:
            self._bad_chunk(st, out, "chunk out of line")
            return None
        if self.reassembly_bytes + len(piece) > self.max_reassembly_bytes:
            self._bad_chunk(st, out, "reassembly buffer full")
            return None
        st.partial[2].extend(piece)
        self.reassembly_bytes += len(piece)
        if not last:
            return None
        _, msg_type, data = st.partial
        self.reassembly_bytes -= len(data)
        st.partial = None
        return self._msg(rec, msg_type, bytes(data), 0)

    def _bad_chunk(self, st: Stream, out: list[FlowMsg | FlowEvent], reason: str) -> None:
        self._abandon(st)
        out.extend(self.malformed(st.group, st.sender, reason))

    # ---- consumption and reports -----------------------------------------------

    def consumed(self, msg: FlowMsg, now: float) -> None:
        """The application took msg: the stream's position may advance."""
        if not msg._open:
            return  # taking twice counts once
        msg._open = False
        rec = msg._record
        rec.remaining -= 1
        if rec.remaining == 0 and not rec.stream.dropped:
            self._advance(rec.stream, now)

    def consume_many(self, items: list[Any], now: float) -> None:
        """consumed() for each FlowMsg among items, in one call (each stream
        advances once its records are all counted)."""
        for rec in consume(FlowMsg, items):
            if not rec.stream.dropped:
                self._advance(rec.stream, now)

    def _advance(self, st: Stream, now: float) -> None:
        want = False
        records = st.records
        while records and records[0].remaining == 0:
            rec = records.popleft()
            st.pos_seq, st.pos_bytes = rec.seq, rec.end
            if rec.lost_frames or rec.lost_bytes:
                st.lost_frames -= rec.lost_frames
                st.lost_bytes -= rec.lost_bytes
            want = want or bool(rec.flags & fr.F_REPORT)
        if (st.pos_seq, st.pos_bytes) == st.reported:
            return
        if want:
            self._report(st, now)
        elif not records:
            # Drained with progress unreported: report, at most once per
            # report_delay (a trickle does not cost a report per message).
            if now - st.last_report >= self.report_delay:
                self._report(st, now)
            elif st.report_due == math.inf:
                st.report_due = st.last_report + self.report_delay
                self._due[st] = None

    def _report(self, st: Stream, now: float) -> None:
        st.reported = (st.pos_seq, st.pos_bytes)
        st.last_report = now
        st.report_due = math.inf
        self._due.pop(st, None)
        self.stats["reports"] += 1
        self._outbox.append(
            Multicast(
                fr.AGREED_MESS,
                st.sender,
                fr.header(fr.REPORT, st.stream, st.pos_seq, st.pos_bytes),
                fr.FLOW_MSG_TYPE,
            )
        )

    def tick(self, now: float) -> list[FlowMsg | FlowEvent]:
        """Delayed reports, repair requests asked again, orphaned streams
        whose sender did not come back (what they end is returned)."""
        for st in list(self._due):
            if now >= st.report_due:
                st.report_due = math.inf
                self._due.pop(st, None)
                if not st.dropped and (st.pos_seq, st.pos_bytes) != st.reported:
                    self._report(st, now)
        for st in list(self._repairing):
            repair = st.repair
            if repair is not None and now >= repair.next_deadline():
                repair.tick(now)
                self._repaired(st)
        out: list[FlowMsg | FlowEvent] = []
        for st in list(self._orphans):
            if now >= st.orphaned + self.orphan_timeout:
                out.extend(self._end(st, now, clean=False))
        for st in list(self._closing):
            if now >= st.closing:  # (no longer answered: the rest is lost)
                out.extend(self._end(st, now, clean=True))
        for (sender, group), until in list(self._awaiting.items()):
            if now >= until:  # no answer: held streams begin where they began
                out.extend(self._release(sender, group, {}, now))
        return out

    def next_deadline(self) -> float:
        t = min((st.report_due for st in self._due), default=math.inf)
        for st in self._repairing:
            if st.repair is not None:
                t = min(t, st.repair.next_deadline())
        for st in self._orphans:
            t = min(t, st.orphaned + self.orphan_timeout)
        if self._awaiting:
            t = min(t, min(self._awaiting.values()))
        for st in self._closing:
            t = min(t, st.closing)
        return t

    # ---- checkpoints --------------------------------------------------------------

    def positions(self) -> list[tuple[str, str, int, int, int]]:
        """Every stream's consumed position, (group, sender, stream, seq,
        bytes): what a receiver that restarts passes to restore()."""
        return sorted(
            (st.group, st.sender, st.stream, st.pos_seq, st.pos_bytes)
            for st in self.streams.values()
        )

    def restore(self, positions: list[tuple[str, str, int, int, int]], now: float) -> None:
        """Streams taken up at checkpointed positions (before joining): the
        senders' HELLOs then say what we miss of them, and it is asked for.
        A stream whose sender never says it exists ends after orphan_timeout."""
        for entry in positions:
            try:
                group, sender, stream, seq, nbytes = entry
            except (TypeError, ValueError):
                raise ValueError(
                    f"a position is (group, sender, stream, seq, bytes): {entry!r}"
                ) from None
            for name, value in (("stream", stream), ("seq", seq), ("bytes", nbytes)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"a position's {name} is an int >= 0: {entry!r}")
            if not isinstance(group, str) or not isinstance(sender, str):
                raise ValueError(f"a position's group and sender are str: {entry!r}")
            key = (sender, stream)
            if key in self.streams:
                continue
            st = self._new_stream(sender, group, stream, seq + 1, nbytes)
            st.orphaned = now  # until its sender is seen
            self._orphans[st] = None

    # ---- membership ---------------------------------------------------------------

    def _drop(self, key: tuple[str, int]) -> Stream | None:
        st = self.streams.pop(key, None)
        if st is not None:
            self._ended[key] = None  # (a late HELLO with bases must not begin it again)
            while len(self._ended) > 4096:
                del self._ended[next(iter(self._ended))]
            st.dropped = True
            self._abandon(st)
            self._due.pop(st, None)
            self._repairing.pop(st, None)
            self._orphans.pop(st, None)
            self._closing.pop(st, None)
            st.repair = None
            keys = self._by_group.get(st.group)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_group[st.group]
        return st

    def on_bye(
        self, sender: str, group: str | None, hdr: fr.Header, now: float = 0.0
    ) -> list[FlowMsg | FlowEvent]:
        """The sender closed the stream after frame hdr.seq (``group`` None:
        a BYE after a HELLO to us). A closed channel that is kept (F_KEPT)
        still answers: what we miss is asked for and the stream ends clean
        once repaired (or after orphan_timeout). Else what never came is lost."""
        st = self.streams.get((sender, hdr.stream))
        if st is None or (group is not None and st.group != group):
            return []
        out: list[FlowMsg | FlowEvent] = []
        if st.held is not None:  # (no answer before its end: it began where it began)
            out = self._release(sender, st.group, {}, now)
        kept = bool(hdr.flags & fr.F_KEPT)
        if hdr.seq >= (st.repair.expected if st.repair is not None else st.expected):
            self._repair_of(st).announce(hdr.seq, now)
            if not kept:
                st.repair.actions.clear()  # type: ignore[union-attr]
            self._repaired(st)
        if not kept:
            return out + self._end(st, now, clean=True)
        if st.repair is None:
            return out + self._end_kept(st, now)
        if st.closing == math.inf:
            st.closing = now + self.orphan_timeout
            self._closing[st] = None
        return out

    def _end_kept(self, st: Stream, now: float) -> list[FlowMsg | FlowEvent]:
        """A kept closed stream we now have all of: its sender hears so (a
        REPORT of what we received: a closed stream's credit no longer
        matters), and lets its retention go; then it ends clean."""
        self._outbox.append(
            Multicast(
                fr.AGREED_MESS,
                st.sender,
                fr.header(fr.REPORT, st.stream, st.expected - 1, st.received_end),
                fr.FLOW_MSG_TYPE,
            )
        )
        return self._end(st, now, clean=True)

    def on_view(
        self,
        group: str,
        view: set[str],
        now: float = 0.0,
        left: str | None = None,
    ) -> list[FlowMsg | FlowEvent]:
        """A regular membership: the stream of a sender that left (``left``,
        CAUSED_BY_LEAVE) without closing it ends unclean; those of senders
        gone by a disconnect or a partition are orphaned, waited for
        ``orphan_timeout``, and adopted again if they come back (their HELLO
        then says what we miss); senders in the view are here."""
        out: list[FlowMsg | FlowEvent] = []
        for sender, g in [k for k in self._awaiting if k[1] == group and k[0] not in view]:
            out.extend(self._release(sender, g, {}, now))  # it left: no answer comes
        for key in sorted(self._by_group.get(group, ())):
            st = self.streams[key]
            sender = key[0]
            if sender in view:
                # (back from another component too: its HELLO follows)
                self._adopt(st)
            elif sender == left:
                out.extend(self._end(st, now, clean=False))
            elif st.orphaned == math.inf:
                st.orphaned = now
                self._orphans[st] = None
        return out

    def on_left(self, group: str) -> None:
        for waited in [k for k in self._awaiting if k[1] == group]:
            del self._awaiting[waited]
        for key in list(self._by_group.get(group, ())):
            self._drop(key)

    def group_senders(self, group: str) -> set[str]:
        return {k[0] for k in self._by_group.get(group, ())}
