"""Members that lose touch and come back (issue 17, gap (c)), sans-IO over
test_flow_recovery's tiny daemon: the sender remembers where each departed
member stood and tells it on its return (a HELLO with bases), so it gets
even the frames of a stream it never saw a frame of; a returning receiver
holds the live frames of such a stream until that answer; a new process
under the old name starts live and holds nobody up."""

from __future__ import annotations

import pytest

from flow_sim import NETWORK, REG_MEMB_MESS, Membership, Regular
from spread.flow import DataLoss, FlowCore, StreamEnded
from spread.flow import _frame as fr
from test_flow_recovery import A, B, G, Net, events, expect, held, payloads, send, setup

pytestmark = pytest.mark.timeout(30)


def _deliver(net, frames) -> None:
    """Delivers A's frames (taken from its outbox earlier) to G, in order."""
    for a in frames:
        msg = Regular(A, (a.group,), a.data, a.msg_type, a.service_type)
        for m in list(net.members):
            net._to(m, msg)


def test_a_hello_with_bases_carries_five_numbers_per_stream() -> None:
    flags = fr.F_REPLY | fr.F_BASES | fr.F_REJOIN
    data = fr.hello(G, [(5, 10, 999, 3, 300)], flags)
    hdr = fr.decode_header(data)
    assert hdr.flags == flags
    assert fr.decode_hello_body(data[32:], hdr.flags) == (G, [(5, 10, 999, 3, 300)])
    with pytest.raises(fr.FrameError):  # a plain table read as one with bases
        fr.decode_hello_body(fr.hello(G, [(5, 10, 999)])[32:], fr.F_BASES)


def test_a_member_lost_again_before_it_spoke_keeps_its_first_base() -> None:
    # B misses frames 1..5, comes back and is lost again before the answer
    # reached it (so it asked nothing): the sender must not take the
    # position it charged B from at that return for where B stood.
    net, a, b, ch = setup(retention_frames=200)
    net.lose(B)
    send(net, ch, 0, 5)
    net.up.add(B)
    net.join(B)  # A's answer is queued, not yet delivered ...
    net.lose(B)  # ... and B is gone again
    send(net, ch, 5, 5)
    net.back(B)
    net.settle()
    assert payloads(net.got[B]) == expect(0, 10)
    assert not events(net.got[B], DataLoss)


def test_live_frames_ahead_of_the_answer_wait_for_it() -> None:
    # Frames A sent before it saw B's join reach B before A's answer: B
    # never saw the stream, so it holds them until the answer says where it
    # stood, then asks for 1..4 and hands everything on in order.
    net, a, b, ch = setup(retention_frames=200)
    net.lose(B)
    send(net, ch, 0, 4)  # B misses these
    early = held(ch, a, 4, 4, net.now)  # sent, still on their way
    net.up.add(B)
    net.join(B)
    _deliver(net, early)  # they arrive first ...
    assert payloads(net.got[B]) == []  # ... and wait
    net.settle()  # then A's answer, B's request, the resends
    assert payloads(net.got[B]) == expect(0, 8)
    assert not events(net.got[B], DataLoss)


def test_without_an_answer_held_frames_go_on_after_answer_wait() -> None:
    net, a, b, ch = setup(retention_frames=200)
    net.lose(B)
    send(net, ch, 0, 1)  # B never sees the stream's first frame
    early = held(ch, a, 1, 3, net.now)
    net.up.add(B)
    b.join(G, net.now)
    net.flush(B)
    net.members.append(B)
    net.members.sort()
    for name in (B,):  # only B sees its join: A never answers
        net._to(name, Membership(REG_MEMB_MESS | 0x100, G, tuple(net.members), B, (B,)))
    _deliver(net, early)
    assert payloads(net.got[B]) == []
    assert b.next_deadline() <= net.now + b.receiver.answer_wait
    net.now += b.receiver.answer_wait
    for item in b.tick(net.now):
        net.got[B].append(item)
    # (begun at the first frame held, as a joiner's: only an answer could
    # have said that frame 1 was B's)
    assert payloads(net.got[B]) == expect(1, 3)


def test_a_new_process_under_the_old_name_starts_live_and_holds_nobody() -> None:
    net, a, b, ch = setup(window=4, retention_frames=200)
    send(net, ch, 0, 3)
    net.lose(B)
    send(net, ch, 3, 3)  # the old B never had these
    b2 = net.restart(B)
    net.join(B)
    net.settle()
    send(net, ch, 6, 20)  # five windows: B's reports must free them
    got = net.got[B]
    assert payloads(got)[-20:] == expect(6, 20)
    assert expect(3, 3)[0] not in payloads(got)[3:]  # not given the old life's frames
    assert not events(got, DataLoss)
    assert b2.receiver.stats["requests"] == 0
    assert ch.members[B].seq == ch.last_seq


def test_a_stream_begun_during_a_partition_reaches_the_other_side_at_the_merge() -> None:
    net, a, b, ch0 = setup(retention_frames=200)
    ch0.close(net.now)
    net.settle()

    def view(members, continuing) -> None:
        for name in members:
            extra = tuple(m for m in members if m in continuing[name])
            net._to(name, Membership(REG_MEMB_MESS | NETWORK, G, tuple(members), "", extra))

    net.members = [A]
    view([A], {A: {A}})
    net.members = [B]
    view([B], {B: {B}})
    net.members = [A, B]
    ch = a.channel(G, stream=7, window=8, window_bytes=1 << 20, retention_frames=200)
    for i in range(5):  # A's side: the new stream's first frames reach nobody else
        assert ch.offer(b"m%05d" % i, 0, net.now)
    frames = a.actions()
    for f in frames:
        a.on_message(Regular(A, (G,), f.data, f.msg_type, f.service_type), net.now)
    view([A, B], {A: {A}, B: {B}})
    net.settle()
    got = [p for p in payloads(net.got[B]) if p.startswith(b"m")]
    assert got == expect(0, 5)
    assert not events(net.got[B], DataLoss)
    assert not [e for e in events(net.got[B], StreamEnded) if e.stream == 7]


def test_a_leave_then_a_join_before_the_self_leave_sends_nothing_in_between() -> None:
    # Views still delivered before our self-leave must not make the channel
    # a member again: what it sent then would be ordered after the leave
    # and taken, at the self-leave, as delivered before the new join.
    a = FlowCore(A)
    a.join(G)
    a.on_message(Membership(REG_MEMB_MESS | 0x100, G, (A, B), A, (A,)), 0.0)
    ch = a.channel(G, window=8)
    a.actions()
    a.leave(G)
    a.join(G)
    a.on_message(Membership(REG_MEMB_MESS | NETWORK, G, (A, B), "", (A, B)), 0.0)
    assert ch.offer(b"x", 0, 0.0)
    assert [x for x in a.actions() if fr.decode_header(x.data).kind == fr.DATA] == []
    a.on_message(Membership(0x200, G), 0.0)  # the self-leave
    a.on_message(Membership(REG_MEMB_MESS | 0x100, G, (A, B), A, (A,)), 0.0)
    assert [fr.decode_header(x.data).seq for x in a.actions() if x.group == G][-1] == 1


# ---- closed channels kept while a member may still ask ----------------------------


def test_a_closed_channel_is_let_go_once_every_member_has_it_all() -> None:
    # (kept while B's last report may be behind; B's answer to the BYE, a
    # REPORT of what it received, frees the retention at the next tick)
    net, a, b, ch = setup(retention_frames=200)
    send(net, ch, 0, 5)
    a.close_channel(ch, net.now)
    net.settle()
    net.tick(0.01)
    assert a.closed == {}
    ended = events(net.got[B], StreamEnded)
    assert [(e.last, e.clean) for e in ended] == [(5, True)]


def test_a_closed_channel_without_retention_is_not_kept() -> None:
    net, a, b, ch = setup(retention=False)
    send(net, ch, 0, 5)
    net.lose(B)
    a.close_channel(ch, net.now)
    assert a.closed == {}


def test_a_kept_channel_goes_once_the_member_has_caught_up() -> None:
    net, a, b, ch = setup(window=4, retention_frames=200)
    send(net, ch, 0, 4)
    net.lose(B)
    send(net, ch, 4, 10)
    a.close_channel(ch, net.now)
    assert ch.stream in a.closed  # (B is away)
    net.back(B)
    net.settle()
    assert payloads(net.got[B]) == expect(0, 14)
    net.tick(0.01)
    assert a.closed == {}


def test_a_kept_channel_is_answered_for_orphan_timeout_then_the_rest_is_lost() -> None:
    net = Net()
    a = net.add(FlowCore(A, orphan_timeout=5.0))
    net.add(FlowCore(B, orphan_timeout=5.0))
    net.join(A)
    ch = a.channel(G, stream=5, window=4, window_bytes=1 << 20, retention_frames=200)
    net.join(B)
    net.settle()
    send(net, ch, 0, 2)
    net.lose(B)
    send(net, ch, 2, 3)
    a.close_channel(ch, net.now)
    net.tick(5.0)  # B stays away past orphan_timeout
    assert a.closed == {}
    net.back(B)
    net.settle()
    got = net.got[B]
    # (the sender no longer names the stream: B ends it at what it had)
    assert payloads(got) == expect(0, 2)
    assert [(e.last, e.clean) for e in events(got, StreamEnded)] == [(2, False)]


def test_closing_drops_what_was_accepted_and_not_sent() -> None:
    a = FlowCore(A)
    a.join(G)
    a.on_message(Membership(REG_MEMB_MESS | 0x100, G, (A,), A, (A,)), 0.0)
    ch = a.channel(G, window=8, linger=1.0)
    assert ch.offer(b"x", 0, 0.0) and ch.pending == 1  # (waits for its linger)
    a.actions()
    a.close_channel(ch, 0.0)
    (bye,) = a.actions()
    hdr = fr.decode_header(bye.data)
    assert (hdr.kind, hdr.seq, ch.pending) == (fr.BYE, 0, 0)
    with pytest.raises(ValueError, match="closed"):
        ch.offer(b"y", 0, 0.0)


def test_a_new_channel_at_the_hello_limit_evicts_the_oldest_kept_one() -> None:
    a = FlowCore(A)
    a.join(G)
    a.on_message(Membership(REG_MEMB_MESS | 0x100, G, (A,), A, (A,)), 0.0)
    a.on_connection_lost(0.0)  # (away: closed channels are kept)
    chans = [a.channel(G) for _ in range(fr.MAX_HELLO_STREAMS)]
    a.close_channel(chans[0], 0.0)
    a.close_channel(chans[1], 0.0)
    assert list(a.closed) == [chans[0].stream, chans[1].stream]
    a.channel(G)
    assert list(a.closed) == [chans[1].stream]
    assert len(fr.hello(G, a._streams(G))) == 32 + 2 + 24 * fr.MAX_HELLO_STREAMS


def test_an_answer_later_than_answer_wait_names_what_came_before_as_lost() -> None:
    # The held frames went on at answer_wait; when the answer comes at last,
    # the frames before the first one held can't be handed out in their
    # place any more: a DataLoss names them (never a silent gap).
    net, a, b, ch = setup(retention_frames=200)
    net.lose(B)
    send(net, ch, 0, 4)  # B misses these
    net.up.add(B)
    b.join(G, net.now)
    net.flush(B)
    net.members.append(B)
    net.members.sort()
    net._view(0x100, B)  # both see the join: A's answer and frames are queued
    answer = a.actions()
    early = held(ch, a, 4, 2, net.now)
    _deliver(net, early)
    net.now += b.receiver.answer_wait
    net.got[B].extend(b.tick(net.now))
    assert payloads(net.got[B]) == expect(4, 2)  # (begun at the first held)
    for x in answer:  # the answer, at last
        net._to(x.group, Regular(A, (x.group,), x.data, x.msg_type, x.service_type))
    net.settle()
    assert [(d.first, d.last) for d in events(net.got[B], DataLoss)] == [(1, 4)]
    send(net, ch, 6, 2)
    assert payloads(net.got[B]) == expect(4, 4)
