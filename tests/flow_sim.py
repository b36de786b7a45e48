"""A deterministic simulator of spread.flow's sans-IO core (tests only).

N sessions share one group over a fake daemon with one total order: each
session's requests (multicasts, joins, leaves) wait in its own pipe until the
daemon "reads" them, in a random interleaving across sessions (reordering
across senders, FIFO per sender); each session then processes its inbox (the
total order) at random moments, and its application consumes at random
moments, or stalls. Membership scripts: join, leave, kill (disconnect),
partition (TRANSITION_MESS then CAUSED_BY_NETWORK with one vs-set, SPEC
§6.8) and merge (one CAUSED_BY_NETWORK with a vs-set per component).

Checked on EVERY frame arrival: the window invariant (no receiver holds more
than window frames, or more than window_bytes in more than one frame,
unconsumed from one sender, unless that sender has untethered it). Checked
on every consumption: per-sender order with no loss and no duplicate within a
stream, byte-exact payloads. Checked on every membership: a channel's member
table is exactly its view less itself, and speakers stay within the view.
``finish()`` drains everything and checks that members present throughout
got every message.
"""

from __future__ import annotations

import math
import random
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from spread.flow import (
    DataLoss,
    FlowCore,
    FlowMsg,
    MemberForeign,
    MemberRetethered,
    MemberUntethered,
    Multicast,
)
from spread.flow import _frame as fr

REG_MEMB_MESS, TRANSITION_MESS = 0x1000, 0x2000
JOIN, LEAVE, DISCONNECT, NETWORK = 0x100, 0x200, 0x400, 0x800
GROUP = "g"
_PAY = struct.Struct("<HII")  # sender index, logical number, size


def payload(sender: int, no: int, size: int) -> bytes:
    head = _PAY.pack(sender, no, size)
    if size <= len(head):
        return head
    body = bytes((sender * 7 + no + i) & 0xFF for i in range(min(size - len(head), 64)))
    body = (body * ((size - len(head)) // max(1, len(body)) + 1))[: size - len(head)]
    return head + body


@dataclass
class Regular:
    sender: str
    groups: tuple[str, ...]
    message: bytes
    msg_type: int
    service_type: int
    endian: int = 0


@dataclass
class Membership:
    service_type: int
    group: str
    members: tuple[str, ...] = ()
    changed_member: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def reason(self) -> int:
        return self.service_type & (JOIN | LEAVE | DISCONNECT | NETWORK)


@dataclass
class Node:
    index: int
    name: str
    core: FlowCore
    ch: Any = None
    alive: bool = True
    member: bool = False  # in the daemon's group
    pipe: deque = field(default_factory=deque)  # requests the daemon has not read
    inbox: deque = field(default_factory=deque)  # delivered, not yet processed
    app: deque = field(default_factory=deque)  # FlowMsgs not yet consumed
    stalled_until: float = 0.0
    sent: int = 0
    backlog: deque = field(default_factory=deque)  # sizes the app wants to send
    last: dict = field(default_factory=dict)  # sender -> (stream object, last no)
    got: dict = field(default_factory=dict)  # sender index -> set of numbers
    comp: int = 0
    stable: bool = True  # a member since the start, never partitioned, left or killed


class Violation(AssertionError):
    pass


class Sim:
    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 4,
        senders: int = 2,
        window: int = 8,
        window_bytes: int = 4000,
        max_frame: int = 700,
        on_stall: str = "untether",
        stall_timeout: float = 0.5,
        self_delivery: bool = True,
        large: float = 0.03,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.window = window
        self.window_bytes = window_bytes
        self.large = large
        self.comps: dict[int, set[str]] = {0: set()}
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self.figures = {
            "steps": 0,
            "arrivals": 0,
            "window_checks": 0,
            "exempt_arrivals": 0,
            "consumed": 0,
            "memberships": 0,
            "table_checks": 0,
            "untethered": 0,
            "foreign": 0,
            "retethered": 0,
            "kills": 0,
            "partitions": 0,
            "merges": 0,
            "joins": 0,
            "leaves": 0,
            "lost_frames": 0,
            "resent": 0,
            "max_unconsumed_frames": 0,
            "max_unconsumed_bytes": 0,
        }
        self.events: list[Any] = []
        self.exempt: dict[tuple[str, str], Any] = {}
        for i in range(nodes):
            name = f"#n{i}#d"
            core = FlowCore(name, report_delay=0.001, rng=random.Random(seed * 31 + i))
            node = Node(i, name, core)
            if i < senders:
                node.ch = core.channel(
                    GROUP,
                    stream=1000 + i,
                    window=window,
                    window_bytes=window_bytes,
                    max_frame=max_frame,
                    max_batch_bytes=max_frame,
                    max_pending_bytes=2 * window_bytes,
                    max_message_bytes=20_000,
                    stall_timeout=stall_timeout,
                    on_stall=on_stall,
                    join_grace=5.0,
                    self_delivery=self_delivery,
                )
            self.nodes.append(node)
            self.by_name[name] = node
        for node in self.nodes:
            self.join(node.index)
        self.settle()
        for node in self.nodes:
            node.stable = node.member

    # ---- plumbing -------------------------------------------------------------

    def _flush(self, node: Node) -> None:
        for a in node.core.actions():
            node.pipe.append(("mcast", a))

    def _deliver_to(self, name: str, msg: Any) -> None:
        node = self.by_name.get(name)
        if node is not None and node.alive:
            node.inbox.append(msg)

    def _component_members(self, comp: int) -> list[str]:
        return sorted(self.comps.get(comp, set()))

    def order(self, i: int) -> bool:
        """The daemon reads the next request of node i (if any)."""
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or not node.pipe:
            return False
        kind, arg = node.pipe.popleft()
        comp = node.comp
        if kind == "mcast":
            a: Multicast = arg
            msg = Regular(node.name, (a.group,), a.data, a.msg_type, a.service_type)
            if a.group.startswith("#"):
                target = self.by_name.get(a.group)
                if target is not None and target.comp == comp:
                    self._deliver_to(a.group, msg)
            else:
                for name in self._component_members(comp):
                    self._deliver_to(name, msg)
        elif kind == "join":
            if not node.member:
                node.member = True
                self.comps.setdefault(comp, set()).add(node.name)
                members = tuple(self._component_members(comp))
                for name in members:
                    self._deliver_to(
                        name,
                        Membership(REG_MEMB_MESS | JOIN, GROUP, members, node.name, (node.name,)),
                    )
        elif kind == "leave":
            if node.member:
                node.member = False
                self.comps[comp].discard(node.name)
                node.inbox.append(Membership(LEAVE, GROUP))  # self-leave
                members = tuple(self._component_members(comp))
                for name in members:
                    self._deliver_to(
                        name,
                        Membership(REG_MEMB_MESS | LEAVE, GROUP, members, node.name, (node.name,)),
                    )
        return True

    def _check_tables(self, node: Node) -> None:
        g = node.core.groups.get(GROUP)
        self.figures["table_checks"] += 1
        if g is None or g.view is None:
            if node.ch is not None and node.ch.members:
                raise Violation(f"{node.name}: members {set(node.ch.members)} without a view")
            return
        if not g.speakers <= g.view:
            raise Violation(f"{node.name}: speakers {g.speakers} outside view {g.view}")
        if node.ch is not None and set(node.ch.members) != g.view - {node.name}:
            raise Violation(
                f"{node.name}: member table {set(node.ch.members)} != view {g.view} less itself"
            )
        rx = node.core.receiver
        for (sender, _), stream in rx.streams.items():
            if sender not in g.view and stream.orphaned == math.inf:
                # (a sender gone by a disconnect or a partition is waited
                # for orphan_timeout: its stream is orphaned, not dropped)
                raise Violation(f"{node.name}: stream of {sender}, outside the view, not orphaned")

    def deliver(self, i: int) -> bool:
        """Node i processes the next message of its inbox."""
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or not node.inbox:
            return False
        msg = node.inbox.popleft()
        out = node.core.on_message(msg, self.now)
        self._flush(node)
        for item in out:
            if isinstance(item, Membership):
                self.figures["memberships"] += 1
            else:
                self._out(node, item)
        if isinstance(msg, Membership):
            if msg.service_type & REG_MEMB_MESS or not msg.service_type & TRANSITION_MESS:
                self._check_tables(node)
        elif (
            msg.msg_type == fr.FLOW_MSG_TYPE
            and msg.sender != node.name
            and fr.decode_header(msg.message).kind in (fr.DATA, fr.BATCH, fr.CHUNK)
        ):
            self._check_window(node, msg)
        return True

    def _out(self, node: Node, item: Any) -> None:
        """What the core handed out: messages, and a DataLoss in its place
        among them, wait for the application; other events are seen now."""
        if isinstance(item, (FlowMsg, DataLoss)):
            node.app.append(item)
        else:
            self._event(node, item)

    def _event(self, node: Node, ev: Any) -> None:
        self.events.append((node.name, ev))
        if isinstance(ev, MemberUntethered):
            self.figures["untethered"] += 1
            r = self.by_name[ev.member]
            key = (ev.member, node.name)
            self.exempt[key] = r.core.receiver.streams.get((node.name, node.ch.stream))
        elif isinstance(ev, MemberRetethered):
            self.figures["retethered"] += 1
            self.exempt.pop((ev.member, node.name), None)
        elif isinstance(ev, DataLoss):
            # Legitimate only for a member that was away (a partition, a
            # kill, a leave) while the sender sent more than it retains, or
            # left before the hole was repaired: never for a stable member.
            if node.stable:
                raise Violation(f"{node.name}: {ev} though present throughout")
            self.figures["lost_frames"] += ev.last - ev.first + 1
            s = self.by_name[ev.sender].index
            prev = node.last.get(s)
            if prev is not None:
                node.last[s] = (None, prev[1])  # the next one may skip what was lost
        elif isinstance(ev, MemberForeign):
            # Only when its HELLO took longer than join_grace: then it is on its
            # own, as an untethered member, until it has caught up.
            self.figures["foreign"] += 1
            r = self.by_name[ev.member]
            key = (ev.member, node.name)
            self.exempt[key] = r.core.receiver.streams.get((node.name, node.ch.stream))

    def _check_window(self, node: Node, msg: Regular) -> None:
        self.figures["arrivals"] += 1
        hdr = fr.decode_header(msg.message)
        st = node.core.receiver.streams.get((msg.sender, hdr.stream))
        if st is None:
            return
        frames, nbytes = st.unconsumed_frames, st.unconsumed_bytes
        sender = self.by_name[msg.sender]
        sender.ch.members.get(node.name) if sender.ch is not None else None
        # Untethered: the backlog it holds from then on is its own, until the
        # sender re-tethers it or its stream of that sender starts anew.
        key = (node.name, msg.sender)
        if key in self.exempt:
            then = self.exempt[key]
            if then is None:
                self.exempt[key] = then = st
            if then is st:
                self.figures["exempt_arrivals"] += 1
                return
            del self.exempt[key]
        self.figures["window_checks"] += 1
        f = self.figures
        f["max_unconsumed_frames"] = max(f["max_unconsumed_frames"], frames)
        f["max_unconsumed_bytes"] = max(f["max_unconsumed_bytes"], nbytes)
        # A stream that had a hole repaired: the live frames sent before the
        # receiver's NACK (one window, held beyond the hole) and the resent
        # ones (one window of what it consumed) meet when the hole closes.
        k = 2 if st.repaired else 1
        if frames > k * self.window or (nbytes > k * self.window_bytes and frames > 1):
            raise Violation(
                f"{node.name} holds {frames} frames / {nbytes} bytes unconsumed from "
                f"{msg.sender} (window {self.window} / {self.window_bytes}) at seq {hdr.seq}"
            )

    def consume(self, i: int, n: int = 1) -> int:
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or self.now < node.stalled_until:
            return 0
        done = 0
        while node.app and done < n:
            msg = node.app.popleft()
            if isinstance(msg, DataLoss):
                self._event(node, msg)  # (in its place: after the messages before it)
                continue
            self._take(node, msg)
            node.core.consumed(msg, self.now)
            done += 1
        self._flush(node)
        return done

    def _take(self, node: Node, msg: FlowMsg) -> None:
        self.figures["consumed"] += 1
        s, no, size = _PAY.unpack_from(msg.message)
        if msg.message != payload(s, no, size):
            raise Violation(f"{node.name}: payload of {s}/{no} damaged")
        stream = msg._record.stream
        prev = node.last.get(s)
        if prev is not None:
            pstream, pno = prev
            if no <= pno:
                raise Violation(f"{node.name}: {s}/{no} after {s}/{pno} (duplicate or reorder)")
            if pstream is stream and no != pno + 1:
                raise Violation(f"{node.name}: lost {s}/{pno + 1}..{no - 1} inside one stream")
        node.last[s] = (stream, no)
        node.got.setdefault(s, set()).add(no)

    def send(self, i: int, size: int | None = None) -> bool:
        node = self.nodes[i % len(self.nodes)]
        if node.ch is None or not node.alive:
            return False
        if size is None:
            r = self.rng.random()
            if r < self.large:
                size = self.rng.randint(700, 6000)
            elif r < 0.2:
                size = self.rng.randint(100, 600)
            else:
                size = self.rng.randint(10, 60)
        node.backlog.append(size)
        return self._offer(node)

    def _offer(self, node: Node) -> bool:
        sent = False
        while node.backlog and node.alive:
            size = node.backlog[0]
            if not node.ch.offer(payload(node.index, node.sent + 1, size), 0, self.now):
                break
            node.backlog.popleft()
            node.sent += 1
            sent = True
        self._flush(node)
        return sent

    def tick(self, dt: float) -> None:
        self.now += dt
        for node in self.nodes:
            if node.alive:
                for ev in node.core.tick(self.now):
                    self._out(node, ev)  # (an orphan's end hands out what it held)
                if node.ch is not None:
                    self._offer(node)
                self._flush(node)

    # ---- membership scripts ---------------------------------------------------

    def join(self, i: int) -> None:
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or node.member or any(k == "join" for k, _ in node.pipe):
            return
        node.core.join(GROUP, self.now)
        self._flush(node)  # the HELLO goes ahead of the join
        node.pipe.append(("join", None))
        self.figures["joins"] += 1

    def leave(self, i: int) -> None:
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or not node.member:
            return
        node.core.leave(GROUP, self.now)
        node.pipe.append(("leave", None))
        node.stable = False
        self.figures["leaves"] += 1

    def kill(self, i: int) -> None:
        node = self.nodes[i % len(self.nodes)]
        if not node.alive or sum(n.alive for n in self.nodes) <= 2:
            return
        node.alive = False
        node.stable = False
        node.pipe.clear()
        node.inbox.clear()
        self.figures["kills"] += 1
        if node.member:
            node.member = False
            self.comps[node.comp].discard(node.name)
            members = tuple(self._component_members(node.comp))
            for name in members:
                self._deliver_to(
                    name,
                    Membership(REG_MEMB_MESS | DISCONNECT, GROUP, members, node.name, (node.name,)),
                )

    def stall(self, i: int, seconds: float) -> None:
        node = self.nodes[i % len(self.nodes)]
        node.stalled_until = max(node.stalled_until, self.now + seconds)

    def partition(self, mask: int) -> None:
        """Cut the nodes selected by mask out of their component (all nodes of
        the new part come from one component: the one of the lowest selected)."""
        alive = [n for n in self.nodes if n.alive]
        chosen = [n for n in alive if mask >> n.index & 1]
        if not chosen:
            return
        comp = chosen[0].comp
        part = [n for n in chosen if n.comp == comp]
        rest = [n for n in alive if n.comp == comp and n not in part]
        if not rest:
            return
        new = max(self.comps) + 1
        self.comps[new] = set()
        for n in part:
            n.comp = new
            n.stable = False
            if n.member:
                self.comps[comp].discard(n.name)
                self.comps[new].add(n.name)
        for n in rest:
            n.stable = False if n.member and part and any(p.member for p in part) else n.stable
        self.figures["partitions"] += 1
        for c in (comp, new):
            members = tuple(self._component_members(c))
            for name in members:
                self._deliver_to(name, Membership(TRANSITION_MESS, GROUP))
                self._deliver_to(
                    name, Membership(REG_MEMB_MESS | NETWORK, GROUP, members, None, members)
                )

    def merge(self) -> None:
        comps = [c for c in self.comps if any(self.by_name[n].alive for n in self.comps[c])]
        alive = [n for n in self.nodes if n.alive]
        if len({n.comp for n in alive}) <= 1:
            return
        before = {c: tuple(sorted(self.comps[c])) for c in comps}
        everyone: set[str] = set()
        for c in comps:
            everyone |= self.comps[c]
        for n in alive:
            n.comp = 0
        self.comps = {0: everyone}
        self.figures["merges"] += 1
        members = tuple(sorted(everyone))
        for old in before.values():
            for name in old:
                self._deliver_to(
                    name, Membership(REG_MEMB_MESS | NETWORK, GROUP, members, None, old)
                )

    # ---- running --------------------------------------------------------------

    def busy(self) -> bool:
        for n in self.nodes:
            if n.alive and (n.pipe or n.inbox or n.app):
                return True
            if not n.alive or not n.member or any(k == "leave" for k, _ in n.pipe):
                continue
            if n.backlog:
                return True
            if n.alive and n.ch is not None and n.ch.pending:
                return True
        return False

    def settle(self, limit: int = 200_000) -> None:
        """Run every queue empty, every application consuming."""
        for node in self.nodes:
            node.stalled_until = 0.0
        steps = 0
        while self.busy():
            steps += 1
            if steps > limit:
                raise Violation("no progress: the senders never got their credit back")
            moved = False
            for n in self.nodes:
                moved |= self.order(n.index)
                moved |= self.deliver(n.index)
                moved |= self.consume(n.index, 4) > 0
            if not moved:
                self.tick(0.002)

    def random_step(self, p_membership: float = 0.01) -> None:
        self.figures["steps"] += 1
        rng = self.rng
        i = rng.randrange(len(self.nodes))
        r = rng.random()
        if r < 0.25:
            self.order(i)
        elif r < 0.55:
            self.deliver(i)
        elif r < 0.70:
            self.consume(i, rng.choice((1, 1, 2, 8)))
        elif r < 0.88:
            self.send(i)
        elif r < 1 - p_membership:
            self.tick(rng.choice((0.0005, 0.001, 0.004, 0.02)))
        else:
            self.membership_step()

    def membership_step(self) -> None:
        rng = self.rng
        i = rng.randrange(len(self.nodes))
        what = rng.random()
        if what < 0.3:
            self.stall(i, rng.choice((0.01, 0.2, 1.0)))
        elif what < 0.5:
            self.leave(i)
        elif what < 0.7:
            self.join(i)
        elif what < 0.8:
            self.kill(i)
        elif what < 0.9:
            self.partition(rng.randrange(1, 1 << len(self.nodes)))
        else:
            self.merge()

    def finish(self) -> None:
        """Drain and check completeness for members present throughout."""
        self.merge()
        self.settle()
        for node in self.nodes:
            self.join(node.index)  # everyone alive back in, with what they still hold
        self.settle()
        senders = [n for n in self.nodes if n.ch is not None and n.stable]
        for r in self.nodes:
            if not r.stable:
                continue
            for s in senders:
                if s is r:
                    continue
                got = r.got.get(s.index, set())
                if got != set(range(1, s.sent + 1)):
                    missing = sorted(set(range(1, s.sent + 1)) - got)[:5]
                    raise Violation(f"{r.name} lacks {s.name}'s {missing}... of {s.sent}")

    def run(self, steps: int, p_membership: float = 0.01) -> dict[str, int]:
        for _ in range(steps):
            self.random_step(p_membership)
        self.finish()
        self.figures["resent"] = sum(n.ch.stats["resent"] for n in self.nodes if n.ch is not None)
        return self.figures
