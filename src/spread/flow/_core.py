"""FlowCore: one session's flow protocol, sans-IO (events in, actions out).

The front end feeds it every message the mailbox receives
(``on_message``), tells it what the application took (``consumed``) and
what time it is (``tick``, and ``now`` on every call), performs the
``actions()`` it hands out, and sends through ``SenderChannel.offer``. Nothing
in here reads a clock, a socket or a thread."""

from __future__ import annotations

import math
import random
from typing import Any

from .._messages import (
    CAUSED_BY_JOIN,
    CAUSED_BY_LEAVE,
    CAUSED_BY_NETWORK,
    REG_MEMB_MESS,
    TRANSITION_MESS,
    is_self_leave,
)
from . import _frame as fr
from ._events import FlowMsg, Multicast
from ._receiver import Receiver
from ._sender import SenderChannel, _int_option, _seconds, check_group


class _Group:
    """What the session knows of one flow group."""

    __slots__ = (
        "name",
        "view",
        "speakers",
        "hints",
        "joined_at",
        "lost",
        "departed",
        "member_before",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.view: set[str] | None = None  # None until our own join is seen
        self.speakers: set[str] = set()  # members known to speak the protocol
        self.hints: dict[str, float] = {}  # HELLOs of joiners not yet in view: expiry
        self.joined_at = -math.inf  # when our own join was seen
        # Our connection was lost and the group not join()ed again: its
        # memberships are the old connection's, and no longer say who we
        # send to (one would make our channels members in the outage).
        self.lost = False
        # Members that lost touch with us (a disconnect, a partition, our own
        # lost connection), waited for orphan_timeout: name -> (expiry, the
        # position each of our streams had charged it, None where it was
        # not counted). When one comes back, a HELLO with bases tells it
        # where it stood, so it asks even for frames of a stream it never saw.
        self.departed: dict[str, tuple[float, dict[int, tuple[int, int] | None]]] = {}
        # We were a member in an earlier connection (or restored a
        # checkpoint of it): an answer to our join may give us bases.
        self.member_before = False


class FlowCore:
    """The protocol state of one session (one mailbox, private group ``me``).

    Inputs: ``join(group)`` before ``mbox.join(group)``, ``on_message(msg,
    now)`` for every RegularMsg and MembershipMsg received, ``consumed(msg,
    now)`` for every FlowMsg the application takes, ``tick(now)`` at
    ``next_deadline()``. Outputs: ``actions()`` (Multicast to perform, in
    order), and what on_message/tick return (FlowMsg, events, and the
    received plain and membership messages, unchanged, in order)."""

    def __init__(
        self,
        me: str,
        *,
        strict: bool = False,
        max_message_bytes: int = 64 << 20,
        max_reassembly_bytes: int | None = None,
        report_delay: float = 0.002,
        hint_ttl: float = 10.0,
        max_hints: int = 4096,
        rng: random.Random | None = None,
        reorder_window: int = 256,
        repair_retry: float = 0.2,
        orphan_timeout: float = 30.0,
    ) -> None:
        if not isinstance(me, str) or not me.startswith("#"):
            raise ValueError(f"me is our private group name ('#name#daemon'), not {me!r}")
        self.me = me
        self.strict = bool(strict)
        self.max_message_bytes = _int_option("max_message_bytes", max_message_bytes, 0, 1 << 40)
        if max_reassembly_bytes is not None:
            _int_option("max_reassembly_bytes", max_reassembly_bytes, 0, 1 << 42)
        self.hint_ttl = _seconds("hint_ttl", hint_ttl, allow_zero=False)
        self.max_hints = _int_option("max_hints", max_hints, 1, 1 << 20)
        self._rng = rng or random.Random()
        self._outbox: list[Multicast] = []
        self.receiver = Receiver(
            self._outbox,
            strict=self.strict,
            max_message_bytes=self.max_message_bytes,
            max_reassembly_bytes=max_reassembly_bytes,
            report_delay=_seconds("report_delay", report_delay, allow_zero=True),
            reorder_window=_int_option("reorder_window", reorder_window, 1, 1 << 20),
            repair_retry=_seconds("repair_retry", repair_retry, allow_zero=False),
            orphan_timeout=_seconds("orphan_timeout", orphan_timeout, allow_zero=True),
        )
        self.groups: dict[str, _Group] = {}
        self.channels: dict[int, SenderChannel] = {}  # by stream id
        self._origins: dict[int, tuple[int, int]] = {}  # where each channel began
        # Closed channels kept while a member may still ask for their frames
        # (one that lags, one away): stream -> (until when, channel). They
        # answer NACKs and are named in HELLOs, each followed by its BYE.
        self.closed: dict[int, tuple[float, SenderChannel]] = {}
        self.stats = {
            "plain": 0,
            "malformed": 0,
            "hellos": 0,
            "reports_ignored": 0,
            "outsiders": 0,
        }

    # ---- set-up -------------------------------------------------------------

    def join(self, group: str, now: float = 0.0) -> None:
        """Before ``mbox.join(group)``: queue our HELLO to the group. Sent
        first on the same connection, it reaches every member before our
        join does, so they count us at once."""
        check_group(group)
        self.groups.setdefault(group, _Group(group)).lost = False
        self._hello_to(group, group, fr.hello(group, self._streams(group)))

    def _streams(self, group: str) -> list[tuple[int, int, int]]:
        """Our streams on group, as a HELLO names them: (stream, last seq, bytes)."""
        return [(ch.stream, ch.last_seq, ch.sent_bytes) for ch in self._on(group)]

    def _on(self, group: str) -> list[SenderChannel]:
        """Our channels on group: the open ones, then the closed ones kept."""
        out = [ch for ch in self.channels.values() if ch.group == group and not ch.closed]
        out.extend(ch for _, ch in self.closed.values() if ch.group == group)
        return out

    def _channel_of(self, stream: int) -> SenderChannel | None:
        ch = self.channels.get(stream)
        if ch is None and stream in self.closed:
            ch = self.closed[stream][1]
        return ch

    def _hello_to(self, to: str, group: str, data: bytes) -> None:
        """Queues a HELLO to ``to``, then the BYE of each closed stream it
        names: a member that missed a BYE repairs the stream, then ends it
        clean (one that had it ignores it)."""
        self._outbox.append(Multicast(fr.AGREED_MESS, to, data, fr.FLOW_MSG_TYPE))
        for _, ch in self.closed.values():
            if ch.group == group:
                self._outbox.append(
                    Multicast(fr.AGREED_MESS, to, ch.bye(kept=True), fr.FLOW_MSG_TYPE)
                )

    def _needed(self, ch: SenderChannel) -> bool:
        """Whether a closed channel may still be asked for frames: it
        retains, and a member has not consumed all of it, or is away (or
        we are)."""
        g = self.groups.get(ch.group)
        if ch.store is None or self.receiver.orphan_timeout <= 0 or g is None:
            return False
        if g.departed or g.view is None:
            return True  # (someone is away, or we are)
        # (a member back is charged from our position until it speaks: where
        # it stood is its base, departed_at)
        for name in ch.members:
            at = ch.departed_at(name)
            if at is not None and at[0] < ch.last_seq:
                return True
        return False

    def on_connection_lost(self, now: float = 0.0) -> None:
        """Our connection was lost (the front end makes it again): what we
        knew of every group's members goes (our own join will be seen
        again), channels send nothing until then (they accept, and hold),
        actions not yet performed are dropped (receivers ask again for the
        frames). Streams received so far stay, with their positions: once
        connected again, the front end join()s every group, and what we
        miss is repaired."""
        for g in self.groups.values():
            if g.view is not None:
                self._depart(g, g.view, now)
                g.member_before = True
            g.view = None
            g.speakers.clear()
            g.hints.clear()
            g.lost = True
        for ch in self.channels.values():
            ch.on_disconnected(now)
        for _, ch in self.closed.values():
            ch.on_disconnected(now)
        self._outbox.clear()

    def leave(self, group: str, now: float = 0.0) -> None:
        """Before ``mbox.leave(group)``: our channels on it stop sending."""
        for ch in self.channels.values():
            if ch.group == group:
                ch.on_leave_request(now)
        g = self.groups.get(group)
        if g is not None and g.lost:
            # Left in an outage: the connection that joined it is gone, so
            # no self-leave will come to drop its streams (or end the leave).
            self.receiver.on_left(group)
            for ch in self.channels.values():
                if ch.group == group:
                    ch.on_left(now)

    def channel(
        self, group: str, *, stream: int | None = None, now: float = 0.0, **options: Any
    ) -> SenderChannel:
        """A sending channel on group (SenderChannel's options; ValueError for
        a bad one). ``stream`` defaults to a random 64-bit id."""
        check_group(group)
        store = options.get("retention")
        if stream is None and store not in (None, True, False) and store.high() > 0:
            raise ValueError(
                "a retention store that holds frames resumes its stream: pass its stream= id"
            )
        if sum(ch.group == group for ch in self.channels.values()) >= fr.MAX_HELLO_STREAMS:
            # (a HELLO names them all: members end a stream it does not name)
            raise ValueError(f"at most {fr.MAX_HELLO_STREAMS} channels of one session per group")
        kept = [k for k, (_, ch) in self.closed.items() if ch.group == group]
        if kept and len(self._on(group)) >= fr.MAX_HELLO_STREAMS:
            del self.closed[kept[0]]  # (the oldest closed one gives way)
        if stream is None:
            stream = self._rng.getrandbits(64) or 1
            while stream in self.channels or stream in self.closed:
                stream = self._rng.getrandbits(64) or 1
        elif stream in self.channels:
            raise ValueError(f"stream {stream:#x} is in use")
        self.closed.pop(stream, None)  # (a stream resumed after its close)
        ch = SenderChannel(group, stream, self.me, self._outbox, now=now, **options)
        self.channels[stream] = ch
        self._origins[stream] = (ch.last_seq, ch.sent_bytes)
        g = self.groups.setdefault(group, _Group(group))
        if g.view is not None:
            ch.on_view(g.view, now, speakers=g.speakers, joined_at=g.joined_at)
        return ch

    def close_channel(self, ch: SenderChannel, now: float = 0.0) -> None:
        """Says BYE. A channel a member may still ask frames of (it lags, or
        is away) is kept for orphan_timeout: it answers NACKs, HELLOs name
        it (each followed by its BYE), and its BYE says so (F_KEPT: a
        receiver being repaired finishes first)."""
        if ch.closed:
            return
        kept = self._needed(ch)
        ch.close(now, kept=kept)
        if self.channels.get(ch.stream) is ch:
            del self.channels[ch.stream]
            if kept:
                self.closed[ch.stream] = (now + self.receiver.orphan_timeout, ch)
            else:
                self._origins.pop(ch.stream, None)

    def actions(self) -> list[Multicast]:
        """What to send, in order (and forget)."""
        out = self._outbox[:]
        self._outbox.clear()
        return out

    # ---- input ----------------------------------------------------------------

    def _malformed(self, group: str, sender: str, reason: str) -> list[Any]:
        self.stats["malformed"] += 1
        return list(self.receiver.malformed(group, sender, reason))

    def on_message(self, msg: Any, now: float) -> list[Any]:
        """Any message the mailbox received. Returns what the application
        receives, in order: FlowMsg, events, and plain data and membership
        messages unchanged. A malformed frame never raises."""
        st = msg.service_type
        if st & (REG_MEMB_MESS | TRANSITION_MESS) or is_self_leave(st):
            return self._on_membership(msg, now)
        data = msg.message
        if not fr.is_frame(msg.msg_type, data):
            self.stats["plain"] += 1
            return [msg]
        sender = msg.sender
        groups = msg.groups
        group = groups[0] if len(groups) == 1 else ""
        try:
            hdr = fr.decode_header(data)
        except fr.FrameError as e:
            return self._malformed(group, sender, str(e))
        if len(groups) != 1:
            return self._malformed(group, sender, "a flow frame names exactly one group")
        frame = memoryview(data)
        kind = hdr.kind
        if kind in (fr.DATA, fr.BATCH, fr.CHUNK):
            if sender == self.me:
                ch = self._channel_of(hdr.stream)
                if ch is not None and ch.group == group:
                    ch.on_self(hdr.seq, hdr.offset + len(frame), now)
                return []
            if group == self.me:  # resent to us: the stream says its group
                return list(
                    self.receiver.on_frame(
                        sender, group, hdr, frame, st, getattr(msg, "endian", 0), now, True
                    )
                )
            g = self.groups.get(group)
            if g is not None and g.view is not None:
                if sender not in g.view:
                    # Ordered after its leave (or before our join): not ours.
                    self.stats["outsiders"] += 1
                    return []
                self._speaker(g, sender, now)
            return list(
                self.receiver.on_frame(
                    sender, group, hdr, frame, st, getattr(msg, "endian", 0), now
                )
            )
        if kind == fr.REPORT:
            ch = self._channel_of(hdr.stream)
            if group != self.me or ch is None:
                self.stats["reports_ignored"] += 1
                return []
            return list(ch.on_report(sender, hdr.seq, hdr.offset, now))
        if kind == fr.HELLO:
            return self._on_hello(sender, group, hdr, frame, now)
        if kind == fr.NACK:
            ch = self._channel_of(hdr.stream)
            if group != self.me or ch is None:
                self.stats["reports_ignored"] += 1
                return []
            try:
                consumed = fr.decode_nack_body(frame[fr.HEADER_SIZE :])
            except fr.FrameError as e:
                return self._malformed(group, sender, str(e))
            ch.on_nack(sender, hdr.seq, hdr.offset, consumed, now)
            return []
        if kind == fr.GAP:
            if group != self.me:
                return self._malformed(group, sender, "a GAP goes to a private group")
            return list(self.receiver.on_gap(sender, hdr, now))
        # BYE (to the group, or after a HELLO to us: any group)
        if sender == self.me:
            return []
        return list(self.receiver.on_bye(sender, None if group == self.me else group, hdr, now))

    def _hello(self, to: str, group: str) -> None:
        """A HELLO that asks no answer (to a member, or to the group after a
        merge), naming our streams on group as they stand."""
        data = fr.hello(group, self._streams(group), fr.F_REPLY)
        self._hello_to(to, group, data)

    # ---- members that lost touch and came back --------------------------------------

    def _depart(self, g: _Group, names: set[str], now: float) -> None:
        """names lost touch with us (not by a leave): remember where each of
        our streams had it, for orphan_timeout."""
        ttl = self.receiver.orphan_timeout
        if ttl <= 0:
            return
        chans = self._on(g.name)
        for name in sorted(names):
            if name == self.me:
                continue
            at = {ch.stream: ch.departed_at(name) for ch in chans}
            g.departed.pop(name, None)
            g.departed[name] = (now + ttl, at)
        while len(g.departed) > self.max_hints:
            del g.departed[next(iter(g.departed))]

    def _welcome_back(
        self, g: _Group, name: str, now: float, rejoin: bool, always: bool = False
    ) -> dict[int, tuple[int, int]] | None:
        """Queues the HELLO with bases for a departed member back in our view
        and returns them (None: it is not one, or too late): each stream named
        with the position it had been charged from, so what it never got
        (even a stream's first frames, or a stream begun meanwhile) is asked
        for. ``rejoin``: the answer to its join (a receiver that is a new
        process under the old name ignores the bases); else we came back, or
        the network merged. ``always``: a joiner that is not one is answered
        too, with nothing before now (that answer ends a returning
        receiver's wait for what it never saw of us)."""
        entry = g.departed.pop(name, None)
        at = None if entry is None or entry[0] <= now else entry[1]
        if at is None and not always:
            return None
        table = []
        bases: dict[int, tuple[int, int]] = {}
        for ch in self._on(g.name):
            last, nbytes = ch.last_seq, ch.sent_bytes
            # (a channel begun while it was away: all of it; one that did
            # not count it: nothing before now)
            base = (last, nbytes)
            if at is not None:
                base = at.get(ch.stream, self._origins.get(ch.stream, (0, 0))) or base
            bases[ch.stream] = base = (min(base[0], last), min(base[1], nbytes))
            table.append((ch.stream, last, nbytes, *base))
        flags = fr.F_REPLY | fr.F_BASES | (fr.F_REJOIN if rejoin else 0)
        self._hello_to(name, g.name, fr.hello(g.name, table, flags))
        return None if at is None else bases

    def _speaker(self, g: _Group, name: str, now: float) -> None:
        if name not in g.speakers:
            g.speakers.add(name)
            for ch in self.channels.values():
                if ch.group == g.name:
                    ch.on_speaker(name, now)

    def _on_hello(
        self, sender: str, group: str, hdr: fr.Header, frame: memoryview, now: float
    ) -> list[Any]:
        if sender == self.me:
            return []
        flags = hdr.flags
        try:
            named, streams = fr.decode_hello_body(frame[fr.HEADER_SIZE :], flags)
            check_group(named)
        except fr.FrameError as e:
            return self._malformed(group, sender, str(e))
        except ValueError:
            return self._malformed(group, sender, "HELLO without a group name")
        if group not in (named, self.me):
            return self._malformed(group, sender, "HELLO for another group")
        g = self.groups.get(named)
        if g is None:
            return []
        self.stats["hellos"] += 1
        if g.view is not None and sender in g.view:
            self._speaker(g, sender, now)  # an answer, or an announcement after a merge
        else:
            # A joiner's HELLO, ahead of its join: remember it (for a while).
            g.hints.pop(sender, None)
            g.hints[sender] = now + self.hint_ttl
            while len(g.hints) > self.max_hints:
                del g.hints[next(iter(g.hints))]
        if not hdr.flags & fr.F_REPLY and g.view is not None and self.me in g.view:
            self._hello(sender, named)
        if streams is None:
            return []
        # Bases for us: taken unless they answer our own join and this is
        # our first membership (a new process under an old name starts live).
        based = bool(flags & fr.F_BASES) and (not flags & fr.F_REJOIN or g.member_before)
        return list(
            self.receiver.on_streams(
                sender, named, streams, now, answer=bool(flags & fr.F_BASES), based=based
            )
        )

    def _on_membership(self, msg: Any, now: float) -> list[Any]:
        group = msg.group
        g = self.groups.get(group)
        st = msg.service_type
        if g is None or g.lost:
            return [msg]
        chans = self._on(group)
        if is_self_leave(st):
            g.view = None
            g.speakers.clear()
            g.hints.clear()
            self.receiver.on_left(group)
            for ch in chans:
                ch.on_left(now)
            return [msg]
        if st & TRANSITION_MESS:
            for ch in chans:
                ch.on_transition(now)
            return [msg]
        view = set(msg.members)
        cause = msg.reason
        joiner = None
        continuing = None
        ours = msg.changed_member == self.me or g.view is None
        welcomed: dict[str, dict[int, tuple[int, int]]] = {}
        if g.view is not None:
            gone = g.view - view
            if cause & CAUSED_BY_LEAVE:
                for name in gone:
                    g.departed.pop(name, None)  # left: not waited for
            elif gone:
                self._depart(g, gone, now)  # a disconnect, a partition
        if cause & CAUSED_BY_JOIN:
            if ours:
                g.joined_at = now
            else:
                joiner = msg.changed_member
                if (
                    joiner not in g.hints
                    or joiner in g.departed
                    or any(ch.last_seq for ch in chans)
                ):
                    # Its HELLO missed us (or it is foreign): tell it we
                    # speak. With streams: where they stood at its join, and
                    # where it stood if it is back (it asks for the rest; it
                    # waits for this answer before it begins a stream of
                    # ours it never saw past frame 1).
                    back = self._welcome_back(g, joiner, now, rejoin=True, always=True)
                    if back is not None:
                        welcomed[joiner] = back
        if cause & CAUSED_BY_NETWORK:
            continuing = set(msg.extra) if msg.extra else None
            # Everyone from another component must hear of us again.
            if continuing is not None and view - continuing:
                self._hello(group, group)
        if (ours or continuing is not None) and g.departed:
            # Back with us (we reconnected, or the network merged): each
            # departed member hears where it stood.
            for name in sorted(view - (continuing or set())):
                back = self._welcome_back(g, name, now, rejoin=False)
                if back is not None:
                    welcomed[name] = back
        if ours and g.member_before:
            # Our join after a lost connection: a stream we never saw may
            # have frames we missed; its sender's answer says.
            self.receiver.await_answers(group, view - {self.me}, now)
        # Speakers: HELLOs of members now present become knowledge; members
        # from another component are unknown again until they speak.
        hinted = {name for name in view if g.hints.pop(name, None) is not None}
        g.speakers &= view if continuing is None else continuing
        g.speakers |= hinted
        g.view = view
        for ch in chans:
            ch.on_view(
                view,
                now,
                joiner=joiner,
                continuing=continuing,
                speakers=g.speakers,
                joined_at=g.joined_at,
            )
            # (a member back keeps its base until it reports or asks: lost
            # again before that, it is still where it stood)
            for name, bases in welcomed.items():
                m = ch.members.get(name)
                if m is not None and ch.stream in bases:
                    m.base = bases[ch.stream]
        left = msg.changed_member if cause & CAUSED_BY_LEAVE else None
        return [msg, *self.receiver.on_view(group, view, now, left)]

    def positions(self) -> list[tuple[str, str, int, int, int]]:
        """A checkpoint of what we consumed: (group, sender, stream, seq,
        bytes) per stream. A receiver process that restarts passes it to
        restore() before it joins, and is repaired from there."""
        return self.receiver.positions()

    def restore(self, positions: Any, now: float = 0.0) -> None:
        """Take streams up at a checkpoint's positions (before join())."""
        positions = list(positions)
        self.receiver.restore(positions, now)
        for entry in positions:
            self.groups.setdefault(entry[0], _Group(entry[0])).member_before = True

    def consumed(self, msg: FlowMsg, now: float) -> None:
        """The application took msg (in any order; each counts once)."""
        self.receiver.consumed(msg, now)

    # ---- time -----------------------------------------------------------------

    def tick(self, now: float) -> list[Any]:
        """Time passed: stalls, join grace, linger, delayed reports, repair
        requests asked again, orphaned streams ended (with what they held)."""
        events: list[Any] = []
        for g in self.groups.values():
            for name in [n for n, t in g.hints.items() if t <= now]:
                del g.hints[name]
            for name in [n for n, (t, _) in g.departed.items() if t <= now]:
                del g.departed[name]
        for ch in list(self.channels.values()):
            events.extend(ch.tick(now))
        for stream, (until, ch) in list(self.closed.items()):
            if now >= until or not self._needed(ch):
                del self.closed[stream]
                self._origins.pop(stream, None)
        events.extend(self.receiver.tick(now))
        return events

    def next_deadline(self) -> float:
        """When tick() next has something to do (math.inf: nothing)."""
        t = self.receiver.next_deadline()
        for ch in self.channels.values():
            t = min(t, ch.next_deadline())
        for until, _ in self.closed.values():
            t = min(t, until)
        for g in self.groups.values():
            if g.hints:
                t = min(t, min(g.hints.values()))
        return t if t < math.inf else math.inf
