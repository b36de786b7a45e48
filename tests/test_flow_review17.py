"""Review of issue 17 (recovery): each test proves one finding, named in the
comment above it. Tests of bugs fixed in this branch pass; those of bugs
left open are ``xfail(strict=True)`` with the reason (the report says how
to fix them). Sans-IO over test_flow_recovery's tiny daemon, except where
the front ends' threads or tasks are the point."""

from __future__ import annotations

import pytest

from flow_sim import DISCONNECT, JOIN, REG_MEMB_MESS, Membership, Regular
from spread.flow import DataLoss, StreamEnded
from spread.flow import _frame as fr
from spread.flow._repair import Lost, StreamRepair
from test_flow_recovery import A, B, G, Net, events, expect, payloads, send, setup

X = "#x#d"  # a stranger: not a member of G


def _private(net: Net, sender: str, to: str, data: bytes) -> None:
    """Delivers one flow frame from sender to the private group ``to``."""
    net._to(to, Regular(sender, (to,), data, fr.FLOW_MSG_TYPE, fr.AGREED_MESS))


# ---- hostile or absurd values ---------------------------------------------------
#
# BUG (fixed here): StreamRepair._skip_to walked the lost range one seq at a
# time, so a GAP naming U64 (or a stream end after a HELLO, BYE or frame that
# announced seq U64) spun for 2**64 steps: one malformed frame from a member
# hung every receiver of the group. Even an honest loss of N frames cost O(N)
# Python steps. _skip_to now jumps from held frame to held frame.


@pytest.mark.timeout(10)
def test_a_gap_naming_u64_does_not_hang_the_receiver() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    # A hole: frame 5 arrives, 4 did not (a repair is under way).
    net.flush(A)
    for i in (3, 4):
        assert ch.offer(b"m%05d" % i, 0, net.now)
    acts = a.actions()
    live = [x for x in acts if x.group == G]
    net._to(B, Regular(A, (G,), live[-1].data, fr.FLOW_MSG_TYPE, fr.AGREED_MESS))
    st = b.receiver.streams[(A, 5)]
    assert st.repair is not None
    _private(net, A, B, fr.header(fr.GAP, 5, fr.U64))
    losses = events(net.got[B], DataLoss)
    # (what the sender said: everything before U64 is gone; frame 5 was held)
    assert [(d.first, d.last) for d in losses] == [(4, 4), (6, fr.U64 - 1)]


@pytest.mark.timeout(10)
def test_a_stream_announced_at_u64_ends_without_hanging() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    # The sender's HELLO names its stream's last frame as U64, then it leaves.
    _private(net, A, B, fr.hello(G, [(5, fr.U64, 0)], fr.F_REPLY))
    net.members.remove(A)
    net._view(0x200, A)  # CAUSED_BY_LEAVE: the stream ends unclean
    ended = events(net.got[B], StreamEnded)
    assert len(ended) == 1 and not ended[0].clean
    assert [(d.first, d.last) for d in events(net.got[B], DataLoss)] == [(4, fr.U64)]


def test_skip_to_hands_out_held_frames_between_lost_runs() -> None:
    r = StreamRepair(1, reorder_window=100)
    assert r.arrive(3, "f3", 0.0) == []
    assert r.arrive(7, "f7", 0.0) == []
    assert r.gone(10, 0.0) == [Lost(1, 2), "f3", Lost(4, 6), "f7", Lost(8, 9)]
    assert r.expected == 10 and r.waiting == 0
    r2 = StreamRepair(5, reorder_window=8)
    r2.arrive(6, "f6", 0.0)
    r2.announce(1 << 40, 0.0)
    assert r2.ended() == [Lost(5, 5), "f6", Lost(7, 1 << 40)]


# BUG (fixed here): a NACK asked for frames the asker had already consumed
# (its own REPORT said so), and the Resender resent them: a client, even one
# not in the group, that alternates REPORT(last) and NACK(1..last) makes
# the sender resend its whole retention (up to window_bytes) per pair of
# 48-byte messages, without bound. A request now starts after the asker's
# consumed position.


def test_report_nack_pairs_do_not_make_the_sender_resend_without_bound() -> None:
    net, a, b, ch = setup(window=64, retention_frames=256)
    send(net, ch, 0, 200)
    last = ch.last_seq
    before = ch.stats["resent"]
    for _ in range(50):
        _private(net, X, A, fr.header(fr.REPORT, 5, last, ch.sent_bytes))
        _private(net, X, A, fr.nack(5, 1, last, (0, 0)))
    net.settle()
    assert ch.stats["resent"] - before <= 64  # at most the first answer's window


# ---- a sender back from a lost connection ---------------------------------------
#
# BUG (fixed here): after FlowCore.on_connection_lost, a membership of the
# group that the old connection still delivered (the sync Session reads the
# old receiver until it fails; the asyncio feed task can get a batch read
# before the loss) made the channel a member again (SenderChannel.on_view
# sets member=True): it sent frames into the outage (dropped by the front
# end), and its own deliveries of them never came back, so after the
# reconnect the own-delivery tether held it for ever: a sender blocked for
# good. FlowCore now ignores a group's memberships from the loss until the
# group is join()ed again.


def test_a_stale_membership_after_the_loss_does_not_block_the_sender_for_ever() -> None:
    net, a, b, ch = setup()
    send(net, ch, 0, 3)
    # A's send sees the loss; its old receiver still holds a membership of G.
    net.up.discard(A)
    a.actions()
    a.on_connection_lost(net.now)
    a.on_message(Membership(REG_MEMB_MESS | JOIN, G, tuple(net.members), B, (B,)), net.now)
    for i in range(3, 20):
        assert ch.offer(b"m%05d" % i, 0, net.now)
    a.actions()  # the front end drops them: nowhere to send them
    net.members.remove(A)
    net._view(DISCONNECT, A)
    net.back(A)
    net.settle()
    for i in range(20, 25):
        for _ in range(100):
            if ch.offer(b"m%05d" % i, 0, net.now):
                break
            net.tick(0.5)
        else:
            raise AssertionError(f"send {i} blocked for ever: {ch.laggards(net.now)}")
        net.settle()
    net.tick(1.0)
    assert payloads(net.got[B]) == expect(0, 25)
    assert not events(net.got[B], DataLoss)


# BUG (open): a member's NACK repeated without progress is answered again
# in full each time: Resender.due() bounds a member's resends by
# consumed + window frames and window_bytes of unconsumed resent bytes, but
# counts a frame resent twice twice, so the same window of small frames
# goes again on every NACK until window_bytes of copies are out (8 MiB by
# default: thousands of copies of a 256-frame window). A resent frame goes
# to the member's private group and can't be lost while it stays in the
# view (Resender.keep drops it when it goes): each frame needs resending at
# most once per member per view.


@pytest.mark.xfail(strict=True, reason="Resender resends the same frames on every repeated NACK")
def test_a_repeated_nack_is_not_answered_again_in_full() -> None:
    net, a, b, ch = setup(window=16, retention_frames=256)
    send(net, ch, 0, 100)
    before = ch.stats["resent"]
    # (an asker that consumed nothing: X; a member behind by a window is the same)
    for _ in range(50):
        _private(net, X, A, fr.nack(5, 1, 16, (0, 0)))
    assert ch.stats["resent"] - before <= 16
