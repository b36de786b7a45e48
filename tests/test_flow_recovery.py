"""Recovery in the flow core (issue 17), sans-IO: a receiver or a sender that
loses its connection and comes back, a restarted sender, resends that
overlap, retention exceeded. Every message once, in order, or a DataLoss
naming exactly what can't be had. A tiny deterministic daemon routes the
cores' actions (one total order, FIFO per sender)."""

from __future__ import annotations

import pytest

from flow_sim import DISCONNECT, JOIN, LEAVE, REG_MEMB_MESS, Membership, Regular
from spread.flow import DataLoss, FlowCore, FlowMsg, StreamEnded
from spread.flow import _frame as fr
from spread.flow._retention import RetentionRing

G = "g"
A, B = "#a#d", "#b#d"


class Net:
    """One group G; cores deliver when flushed, in the order flushed."""

    def __init__(self) -> None:
        self.cores: dict[str, FlowCore] = {}
        self.members: list[str] = []
        self.up: set[str] = set()  # connected
        self.got: dict[str, list] = {}
        self.now = 0.0

    def add(self, core: FlowCore) -> FlowCore:
        self.cores[core.me] = core
        self.up.add(core.me)
        self.got.setdefault(core.me, [])
        return core

    def _to(self, name: str, msg) -> None:
        if name in self.up:
            core = self.cores[name]
            for item in core.on_message(msg, self.now):
                self.got[name].append(item)
                if isinstance(item, FlowMsg):
                    core.consumed(item, self.now)

    def _view(self, cause: int, changed: str) -> None:
        for name in list(self.members):
            members = tuple(self.members)
            self._to(name, Membership(REG_MEMB_MESS | cause, G, members, changed, (changed,)))

    def join(self, name: str) -> None:
        core = self.cores[name]
        core.join(G, self.now)
        self.flush(name)  # the HELLO first
        self.members.append(name)
        self.members.sort()
        self._view(JOIN, name)

    def flush(self, name: str, drop: int = 0) -> int:
        """Performs name's actions (the first ``drop`` of its frames to G are
        lost: they sat in a socket that died). Returns how many were sent."""
        n = 0
        for a in self.cores[name].actions():
            msg = Regular(name, (a.group,), a.data, a.msg_type, a.service_type)
            if a.group == G:
                if drop and fr.decode_header(a.data).kind in (fr.DATA, fr.BATCH, fr.CHUNK):
                    drop -= 1
                    continue
                for m in list(self.members):
                    self._to(m, msg)
            else:
                self._to(a.group, msg)
            n += 1
        return n

    def settle(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not sum(self.flush(n) for n in list(self.up)):
                return
        raise AssertionError("no quiet")

    def lose(self, name: str, cause: int = DISCONNECT) -> None:
        """name's connection dies: the others see it go; what it had not sent is gone."""
        self.up.discard(name)
        self.cores[name].actions()
        self.cores[name].on_connection_lost(self.now)  # the front end sees the loss
        if name in self.members:
            self.members.remove(name)
            self._view(cause, name)

    def restart(self, name: str) -> FlowCore:
        """name's process starts again: a new core (not yet joined)."""
        core = self.cores[name] = FlowCore(name)
        self.up.add(name)
        return core

    def back(self, name: str) -> None:
        """name reconnects (same session object) and joins again."""
        self.up.add(name)
        self.join(name)

    def tick(self, dt: float) -> None:
        self.now += dt
        for name in list(self.up):
            for item in self.cores[name].tick(self.now):
                self.got[name].append(item)
                if isinstance(item, FlowMsg):
                    self.cores[name].consumed(item, self.now)
        self.settle()


def payloads(items) -> list[bytes]:
    return [m.message for m in items if isinstance(m, FlowMsg)]


def events(items, kind) -> list:
    return [m for m in items if isinstance(m, kind)]


def setup(window: int = 8, **options):
    net = Net()
    a = net.add(FlowCore(A))
    b = net.add(FlowCore(B))
    net.join(A)
    ch = a.channel(G, stream=5, window=window, window_bytes=1 << 20, **options)
    net.join(B)
    net.settle()
    return net, a, b, ch


def send(net: Net, ch, first: int, n: int, sender: str = A) -> None:
    for i in range(first, first + n):
        while not ch.offer(b"m%05d" % i, 0, net.now):
            net.settle()
        net.settle()


def held(ch, core: FlowCore, first: int, n: int, now: float) -> list:
    """Messages first.. offered, and the frames they made: not delivered."""
    for i in range(first, first + n):
        assert ch.offer(b"m%05d" % i, 0, now)
    return core.actions()


def expect(first: int, n: int) -> list[bytes]:
    return [b"m%05d" % i for i in range(first, first + n)]


def test_a_receiver_back_from_a_lost_connection_gets_what_it_missed_once_in_order() -> None:
    net, a, b, ch = setup(retention_frames=200)
    send(net, ch, 0, 20)
    net.lose(B)
    send(net, ch, 20, 100)  # b is away: a is not held for it
    net.back(B)
    net.settle()
    send(net, ch, 120, 10)
    assert payloads(net.got[B]) == expect(0, 130)
    assert not events(net.got[B], DataLoss)
    assert ch.stats["resent"] >= 100 and ch.stats["nacks"] >= 1


def test_a_receivers_catch_up_stays_within_its_window() -> None:
    # b is back and far behind: resends go as it consumes, within its
    # window, and live sends wait for it (it is charged from its position).
    net, a, b, ch = setup(window=4)
    send(net, ch, 0, 4)
    net.lose(B)
    send(net, ch, 4, 60)
    net.back(B)
    held = []
    rx = b.receiver
    for _ in range(500):
        if not sum(net.flush(n) for n in (A, B)):
            break
        for st in rx.streams.values():
            held.append(st.unconsumed_frames)
    assert payloads(net.got[B]) == expect(0, 64)
    assert max(held) <= 2 * 4


def test_a_sender_whose_socket_died_with_frames_in_it_resends_them() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 5)
    for i in range(5, 12):
        assert ch.offer(b"m%05d" % i, 0, net.now)
    net.flush(A, drop=7)  # never reached the daemon
    net.lose(A)
    net.back(A)  # its HELLO names the stream's last frame: b asks for 6..12
    net.settle()
    assert payloads(net.got[B]) == expect(0, 12)
    assert not events(net.got[B], DataLoss)


def test_sends_during_the_outage_wait_then_go() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    net.lose(A)
    for i in range(3, 9):
        assert ch.offer(b"m%05d" % i, 0, net.now)  # accepted, held: not a member
    assert a.actions() == [] and ch.pending == 6
    net.back(A)
    net.settle()
    assert payloads(net.got[B]) == expect(0, 9)


def test_overlapping_and_repeated_resends_are_never_delivered_twice() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    frames = held(ch, a, 3, 7, net.now)
    # b gets 4, 6, 9 live (the others lost), then every frame twice, resent
    # in two overlapping answers, and the live ones again.
    for k in (1, 3, 6):
        net._to(B, Regular(A, (G,), frames[k].data, frames[k].msg_type, 16))
    for k in list(range(7)) + list(range(2, 7)):
        net._to(B, Regular(A, (B,), frames[k].data, frames[k].msg_type, 16))
    assert payloads(net.got[B]) == expect(0, 10)
    assert b.receiver.stats["duplicates"] >= 8


def test_retention_exceeded_is_data_loss_of_exactly_that_range_then_nothing_else() -> None:
    net, a, b, ch = setup(retention_frames=16)
    send(net, ch, 0, 10)
    net.lose(B)
    send(net, ch, 10, 50)  # frames 11..60 sent; the ring holds 45..60
    net.back(B)
    net.settle()
    send(net, ch, 60, 5)
    got = net.got[B]
    (loss,) = events(got, DataLoss)
    assert (loss.group, loss.sender, loss.stream, loss.first, loss.last) == (G, A, 5, 11, 44)
    at = got.index(loss)
    assert payloads(got[:at]) == expect(0, 10)
    assert payloads(got[at:]) == expect(44, 21)  # frame 45 on: message 44 on


def test_a_restarted_sender_ends_its_old_stream_unclean_then_starts_a_new_one() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 5)
    net.lose(A)
    a2 = net.restart(A)  # a new process: a new stream
    ch2 = a2.channel(G, stream=6, window=8)
    net.join(A)
    net.settle()
    send(net, ch2, 100, 3)
    got = net.got[B]
    ended = events(got, StreamEnded)
    assert ended == [StreamEnded(G, A, 5, 5, False)]
    assert payloads(got) == expect(0, 5) + expect(100, 3)
    assert got.index(ended[0]) < got.index(
        next(m for m in got if isinstance(m, FlowMsg) and m.message == b"m00100")
    )


def test_a_restarted_sender_with_a_retention_store_loses_nothing() -> None:
    store = RetentionRing(1000)
    net, a, b, ch = setup(retention=store)
    send(net, ch, 0, 5)
    for i in range(5, 9):
        ch.offer(b"m%05d" % i, 0, net.now)
    net.flush(A, drop=4)  # the process died with them unsent
    net.lose(A)
    a2 = net.restart(A)
    with pytest.raises(ValueError, match="stream="):
        a2.channel(G, retention=store)
    ch2 = a2.channel(G, stream=5, window=8, retention=store)
    assert ch2.last_seq == 9
    net.join(A)
    net.settle()
    send(net, ch2, 9, 3)
    assert payloads(net.got[B]) == expect(0, 12)
    assert not events(net.got[B], (DataLoss, StreamEnded))


def test_an_orphaned_stream_whose_sender_never_returns_ends_with_its_holes_lost() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    msgs = held(ch, a, 3, 3, net.now)
    net._to(B, Regular(A, (G,), msgs[2].data, msgs[2].msg_type, 16))  # 6 without 4, 5
    net.lose(A)
    net.settle()
    net.tick(29.0)
    assert not events(net.got[B], StreamEnded)
    net.tick(1.0)  # orphan_timeout: 30 s
    got = net.got[B]
    assert events(got, DataLoss) == [DataLoss(G, A, 5, 4, 5)]
    assert payloads(got) == expect(0, 3) + [b"m00005"]
    assert got[-1] == StreamEnded(G, A, 5, 6, False)


def test_a_sender_that_leaves_mid_repair_ends_its_stream_with_the_hole_lost() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 2)
    for i in range(2, 5):
        ch.offer(b"m%05d" % i, 0, net.now)
    msgs = a.actions()
    net._to(B, Regular(A, (G,), msgs[2].data, msgs[2].msg_type, 16))
    b.actions()  # its NACK goes nowhere
    net.lose(A, LEAVE)
    got = net.got[B]
    assert events(got, DataLoss) == [DataLoss(G, A, 5, 3, 4)]
    assert got[-1] == StreamEnded(G, A, 5, 5, False)


def test_hello_and_nack_bodies_round_trip_and_bad_ones_are_refused() -> None:
    data = fr.hello(G, [(5, 10, 999), (7, 0, 0)], fr.F_REPLY)
    hdr = fr.decode_header(data)
    assert hdr.kind == fr.HELLO and hdr.flags == fr.F_REPLY
    assert fr.decode_hello_body(data[32:]) == (G, [(5, 10, 999), (7, 0, 0)])
    assert fr.decode_hello_body(fr.hello(G)[32:]) == (G, [])
    assert fr.decode_hello_body(G.encode()) == (G, None)  # names no streams: nothing known
    with pytest.raises(fr.FrameError):
        fr.decode_hello_body(G.encode() + b"\0" + b"x" * 23)
    with pytest.raises(fr.FrameError):
        fr.decode_hello_body(b"\xff\0")
    nack = fr.nack(5, 3, 9, (2, 120))
    assert fr.decode_header(nack)[:1] == (fr.NACK,) and fr.decode_nack_body(nack[32:]) == (2, 120)
    with pytest.raises(fr.FrameError):
        fr.decode_nack_body(b"\0" * 15)


def test_malformed_recovery_frames_never_raise() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 2)
    bad = [
        (A, (B,), fr.header(fr.NACK, 5, 1, 2) + b"\0"),  # short body, to b: no channel 5
        (B, (A,), fr.header(fr.NACK, 5, 1, 2) + b"\0"),  # short body
        (B, (A,), fr.nack(5, 1, 2, (99, 0))),  # consumed beyond what was sent
        (B, (A,), fr.nack(99, 1, 2, (0, 0))),  # no such stream
        (A, (G,), fr.header(fr.GAP, 5, 2)),  # a GAP to the group
        (A, (B,), fr.header(fr.GAP, 77, 2)),  # a GAP for nothing under repair
        (A, (G,), fr.header(fr.HELLO, 0, 0) + G.encode() + b"\0abc"),
    ]
    for sender, groups, data in bad:
        net._to(
            groups[0] if groups[0].startswith("#") else B,
            Regular(sender, groups, data, fr.FLOW_MSG_TYPE, 16),
        )
    net.settle()
    send(net, ch, 2, 2)
    assert payloads(net.got[B]) == expect(0, 4)


def test_a_restarted_receiver_given_its_checkpoint_is_repaired_from_there() -> None:
    net, a, b, ch = setup(retention_frames=200)
    send(net, ch, 0, 20)
    checkpoint = b.positions()
    assert checkpoint == [(G, A, 5, 20, ch.sent_bytes)]
    net.lose(B)  # the process dies
    send(net, ch, 20, 30)
    b2 = FlowCore(B)
    b2.restore(checkpoint)
    net.cores[B] = b2
    net.got[B] = []
    net.up.add(B)
    net.join(B)
    net.settle()
    assert payloads(net.got[B]) == expect(20, 30)
    assert not events(net.got[B], (DataLoss, StreamEnded))


@pytest.mark.parametrize(
    "bad", [[("g", A, 5, 1)], [("g", A, -1, 1, 0)], [(1, A, 5, 1, 0)], [("g", A, 5, True, 0)]]
)
def test_a_bad_checkpoint_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="position"):
        FlowCore(B).restore(bad)


def test_a_checkpointed_stream_whose_sender_never_comes_ends_after_orphan_timeout() -> None:
    b = FlowCore(B, orphan_timeout=5.0)
    b.restore([(G, A, 9, 3, 100)])
    assert b.next_deadline() == 5.0
    assert b.tick(5.0) == [StreamEnded(G, A, 9, 3, False)]


def test_a_session_has_at_most_as_many_channels_on_a_group_as_a_hello_names() -> None:
    core = FlowCore(A)
    for _ in range(fr.MAX_HELLO_STREAMS):
        core.channel(G)
    with pytest.raises(ValueError, match="channels"):
        core.channel(G)
    core.channel("other")  # another group: its own count
    assert len(fr.hello(G, core._streams(G))) == 32 + 2 + 24 * fr.MAX_HELLO_STREAMS
