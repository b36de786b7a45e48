"""spread.flow's sender channel, receiver and FlowCore, piece by piece."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spread
from flow_sim import (
    DISCONNECT,
    JOIN,
    LEAVE,
    NETWORK,
    REG_MEMB_MESS,
    TRANSITION_MESS,
    Membership,
    Regular,
)
from spread.flow import (
    ACTIVE,
    FOREIGN,
    JOINING,
    UNTETHERED,
    DataLoss,
    FlowCore,
    FlowMsg,
    MemberRetethered,
    MemberStalled,
    MemberUntethered,
    MessageTooLarge,
    ProtocolErrorEvent,
    SendTimeout,
    StreamEnded,
    StreamGap,
)
from spread.flow import _frame as fr

A, B, C = "#a#d", "#b#d", "#c#d"
G = "g"


def view(core: FlowCore, members: tuple[str, ...], cause: int = JOIN, changed: str | None = None):
    changed = changed or core.me
    return core.on_message(Membership(REG_MEMB_MESS | cause, G, members, changed, (changed,)), 0.0)


def wire(frm: FlowCore, to: FlowCore | None, now: float = 0.0) -> list:
    """Deliver frm's actions: to the group (to, and frm itself) or to private groups."""
    out = []
    for a in frm.actions():
        msg = Regular(frm.me, (a.group,), a.data, a.msg_type, a.service_type)
        if a.group == G:
            frm.on_message(msg, now)  # our own delivery
            if to is not None:
                out += to.on_message(msg, now)
        elif to is not None and a.group == to.me:
            out += to.on_message(msg, now)
    return out


def pair(**options):
    """A sender core a with a channel, a receiver core b, both in G, b a speaker."""
    a, b = FlowCore(A), FlowCore(B)
    a.join(G)
    a.actions()
    ch = a.channel(G, stream=7, **options)
    view(a, (A,))
    b.join(G)
    hello = b.actions()[0]
    a.on_message(Regular(B, (G,), hello.data, hello.msg_type, hello.service_type), 0.0)
    a.actions()  # our HELLO answer
    view(a, (A, B), changed=B)
    view(b, (A, B), changed=B)
    assert ch.members[B].state == ACTIVE
    return a, b, ch


def back(b: FlowCore, a: FlowCore, now: float = 0.0) -> list:
    return wire(b, a, now)


# ---- options --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, error",
    [
        (dict(service_type=spread.RELIABLE_MESS), ValueError),
        (dict(service_type=spread.UNRELIABLE_MESS), ValueError),
        (dict(service_type=spread.AGREED_MESS | spread.SELF_DISCARD), ValueError),
        (dict(window=0), ValueError),
        (dict(window=1.5), TypeError),
        (dict(window_bytes=0), ValueError),
        (dict(max_frame=fr.MAX_WIRE_DATA + 1), ValueError),
        (dict(max_frame=40), ValueError),
        (dict(max_batch_bytes=200_000), ValueError),
        (dict(on_stall="ignore"), ValueError),
        (dict(stall_timeout=0), ValueError),
        (dict(stall_timeout=-1.0), ValueError),
        (dict(linger=float("nan")), ValueError),
        (dict(max_message_bytes=-1), ValueError),
        (dict(stream=0), ValueError),
    ],
)
def test_bad_options_raise_at_once(options: dict, error: type) -> None:
    core = FlowCore(A)
    with pytest.raises(error):
        core.channel(G, **options)
    assert not core.channels


@pytest.mark.parametrize("group", ["", "#priv", "x" * 32, "a\0b"])
def test_bad_groups(group: str) -> None:
    with pytest.raises(ValueError):
        FlowCore(A).channel(group)


def test_bad_core_options() -> None:
    with pytest.raises(ValueError):
        FlowCore("alice")
    with pytest.raises(ValueError):
        FlowCore(A, report_delay=-1)
    core = FlowCore(A)
    core.channel(G, stream=3)
    with pytest.raises(ValueError):
        core.channel(G, stream=3)


def test_offer_checks_its_arguments() -> None:
    a, b, ch = pair(max_message_bytes=100)
    with pytest.raises(MessageTooLarge) as e:
        ch.offer(b"x" * 101)
    assert isinstance(e.value, spread.MessageTooLong)
    with pytest.raises(ValueError):
        ch.offer(b"x", 40000)
    with pytest.raises(TypeError):
        ch.offer(b"x", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ch.offer("text")
    assert not a.actions()


# ---- the credit rule ------------------------------------------------------------


def test_window_in_messages_then_batch_when_credit_returns() -> None:
    a, b, ch = pair(window=4, window_bytes=1 << 20)
    for i in range(4):
        assert ch.offer(b"m%d" % i)
    got = wire(a, b)
    assert [m.message for m in got] == [b"m0", b"m1", b"m2", b"m3"]
    for i in range(4, 10):
        assert ch.offer(b"m%d" % i)  # accepted, held: no credit
    assert not a.actions() and ch.pending == 6
    assert [lg.member for lg in ch.laggards(0.0)] == [B]
    for m in got:
        b.consumed(m, 0.0)
    back(b, a)  # the report
    more = wire(a, b)
    assert [m.message for m in more] == [b"m%d" % i for i in range(4, 10)]
    assert ch.stats["batches"] == 1 and {m.seq for m in more} == {5}
    assert [m.index for m in more] == list(range(6))


def test_window_in_bytes_and_one_big_frame_when_all_consumed() -> None:
    a, b, ch = pair(window=100, window_bytes=300)
    ch.offer(b"x" * 200)
    ch.offer(b"y" * 200)  # over the byte window: waits
    first = wire(a, b)
    assert len(first) == 1
    b.consumed(first[0], 0.0)
    back(b, a)
    assert [m.message for m in wire(a, b)] == [b"y" * 200]


def test_accumulator_is_bounded() -> None:
    a, b, ch = pair(window=1, window_bytes=1 << 20, max_pending_bytes=100)
    assert ch.offer(b"a")  # sent
    assert ch.offer(b"b" * 60)
    assert not ch.offer(b"c" * 60)  # would pass max_pending_bytes
    assert ch.stats["blocked"] == 1


def test_chunks_reassemble_and_bigger_than_byte_window_cannot_deadlock() -> None:
    a, b, ch = pair(window=4, window_bytes=1000, max_frame=300)
    data = bytes(range(256)) * 40  # 10240 bytes: 10x the byte window
    assert ch.offer(data, 5)
    got: list[FlowMsg] = []
    for _ in range(100):
        got += wire(a, b)
        back(b, a)
        if got:
            break
    assert len(got) == 1 and got[0].message == data and got[0].msg_type == 5
    assert ch.stats["chunks"] == fr.chunk_pieces(len(data), 300)
    # the completed message holds the stream until it is taken
    assert ch.offer(b"after")
    wire(a, b)
    st = b.receiver.streams[(A, 7)]
    assert st.unconsumed_frames == 2
    b.consumed(got[0], 0.0)
    assert st.unconsumed_frames == 1


@pytest.mark.parametrize("size", [0, 1, 300 - 32, 300 - 32 + 1, 4096])
def test_boundary_sizes_round_trip(size: int) -> None:
    a, b, ch = pair(max_frame=300)
    data = bytes(i % 251 for i in range(size))
    ch.offer(data)
    got = wire(a, b)
    assert [m.message for m in got] == [data]


def test_reports_are_absolute_and_monotonic() -> None:
    a, b, ch = pair(window=8)
    for _i in range(3):
        ch.offer(b"z")
    for m in wire(a, b):
        b.consumed(m, 0.0)
    b.tick(1.0)  # the drained stream's report, after report_delay
    reports = b.actions()
    assert [fr.decode_header(r.data).seq for r in reports] == [2, 3]  # a flagged frame, then idle
    rep = reports[-1]
    assert rep.group == A and rep.service_type == spread.AGREED_MESS
    msg = Regular(B, (A,), rep.data, rep.msg_type, rep.service_type)
    a.on_message(msg, 0.0)
    assert (ch.members[B].seq, ch.members[B].nbytes) == (3, ch.sent_bytes)
    a.on_message(msg, 0.0)  # repeated: nothing changes
    old = Regular(B, (A,), fr.header(fr.REPORT, 7, 1, 33), fr.FLOW_MSG_TYPE, 16)
    a.on_message(old, 0.0)  # late: nothing changes
    assert ch.members[B].seq == 3
    minted = Regular(B, (A,), fr.header(fr.REPORT, 7, 99, 10), fr.FLOW_MSG_TYPE, 16)
    a.on_message(minted, 0.0)  # beyond what was sent: refused
    assert ch.members[B].seq == 3 and ch.stats["bad_reports"] == 1


def test_a_receive_of_many_frames_reports_once_at_its_end() -> None:
    # consume_many counts every message first, then advances each stream
    # once: a receive that takes several flagged frames at once sends one
    # report, at the newest position (reports are absolute: it covers the
    # rest), not one per flagged frame.
    a, b, ch = pair(window=8, max_batch_items=1)
    for _i in range(8):
        assert ch.offer(b"z")
    msgs = wire(a, b)
    assert len(msgs) == 8
    frames = [f for _seq, f in ch.store.read(1, 8)]
    assert sum(bool(fr.decode_header(f).flags & fr.F_REPORT) for f in frames) >= 4
    b.receiver.consume_many(msgs, 0.0)
    reports = [fr.decode_header(r.data) for r in b.actions() if r.group == A]
    assert [(h.kind, h.seq, h.offset) for h in reports] == [(fr.REPORT, 8, ch.sent_bytes)]


# ---- stalls ------------------------------------------------------------------------


def test_stall_untethers_then_retethers() -> None:
    a, b, ch = pair(window=2, stall_timeout=1.0)
    ch.offer(b"1")
    ch.offer(b"2")
    ch.offer(b"3")
    got = wire(a, b)
    assert ch.pending == 1 and a.next_deadline() == 1.0
    assert a.tick(0.5) == []
    # A sender that wakes past stall_timeout before the tick is not failed:
    # the tick frees it (CI once raised SendTimeout here).
    assert ch.stalled(1.0) is None and ch.stalled(5.0) is None
    events = a.tick(1.0)
    assert isinstance(events[0], MemberUntethered) and events[0].member == B
    assert ch.members[B].state == UNTETHERED
    got += wire(a, b, 1.0)  # sent without waiting for b
    for m in got:
        b.consumed(m, 2.0)
    events = back(b, a, 2.0)
    assert any(isinstance(e, MemberRetethered) for e in events)
    assert ch.members[B].state == ACTIVE


def test_stall_wait_and_raise() -> None:
    for mode in ("wait", "raise"):
        a, b, ch = pair(window=1, stall_timeout=1.0, on_stall=mode)
        ch.offer(b"1")
        ch.offer(b"2")
        wire(a, b)
        assert ch.stalled(0.5) is None
        events = a.tick(1.5)
        assert [type(e) for e in events] == [MemberStalled]
        assert a.tick(2.0) == []  # said once
        assert ch.members[B].state == ACTIVE  # still waited for
        err = ch.stalled(2.0)
        if mode == "wait":
            assert err is None  # the send keeps waiting
            continue
        assert isinstance(err, SendTimeout) and isinstance(err, TimeoutError)
        assert err.laggards[0].member == B and err.laggards[0].lag_msgs == 1
        assert B in str(err) and err.args[0] == spread.flow.FLOW_SEND_TIMEOUT


# ---- membership --------------------------------------------------------------------


def test_leave_and_disconnect_free_the_sender_at_once() -> None:
    for cause in (LEAVE, DISCONNECT):
        a, b, ch = pair(window=1)
        ch.offer(b"1")
        ch.offer(b"2")
        wire(a, b)
        assert ch.pending == 1
        view(a, (A,), cause, B)
        assert B not in ch.members
        wire(a, None)
        assert ch.pending == 0


def test_transition_holds_sends_until_the_regular_membership() -> None:
    a, b, ch = pair(window=8)
    a.on_message(Membership(TRANSITION_MESS, G), 0.0)
    ch.offer(b"held")
    assert not a.actions()
    # the network membership: b is cut off
    a.on_message(Membership(REG_MEMB_MESS | NETWORK, G, (A,), None, (A,)), 0.0)
    assert B not in ch.members
    assert len(a.actions()) == 1


def test_network_membership_keeps_continuing_positions_and_charges_merged_members() -> None:
    a, b, ch = pair(window=8)
    ch.offer(b"1")
    for m in wire(a, b):
        b.consumed(m, 0.0)
    back(b, a)
    assert ch.members[B].seq == 1
    a.on_message(Membership(TRANSITION_MESS, G), 0.0)
    a.on_message(Membership(REG_MEMB_MESS | NETWORK, G, (A, B, C), None, (A, B)), 0.0)
    assert ch.members[B].seq == 1 and ch.members[B].state == ACTIVE
    assert ch.members[C].state == JOINING and ch.members[C].seq == 1  # our own deliveries
    # a merge re-announces us to the newcomers
    assert any(x.data[3] == fr.HELLO for x in a.actions())


def test_joiner_with_hello_is_counted_foreign_joiner_never_waited_for() -> None:
    a, b, ch = pair(window=2, join_grace=1.0)
    # a classic client joins long after us: no HELLO came first
    a.on_message(Membership(REG_MEMB_MESS | JOIN, G, (A, B, C), C, (C,)), 5.0)
    assert ch.members[C].state == FOREIGN
    assert C not in ch.tethered()
    ch.offer(b"1")
    ch.offer(b"2")
    for m in wire(a, b):
        b.consumed(m, 5.0)
    back(b, a, 5.0)
    assert ch.offer(b"3") and len(wire(a, b, 5.0)) == 1  # C never holds us


def test_member_table_follows_the_view() -> None:
    a, b, ch = pair()
    for i in range(50):
        name = f"#x{i}#d"
        a.on_message(Membership(REG_MEMB_MESS | JOIN, G, (A, B, name), name, (name,)), 9.0)
        a.on_message(Membership(REG_MEMB_MESS | LEAVE, G, (A, B), name, (name,)), 9.0)
    assert set(ch.members) == {B}
    a.on_message(Membership(LEAVE, G), 9.0)  # our own leave
    assert ch.members == {} and a.groups[G].view is None


# ---- receiving -------------------------------------------------------------------------


def test_plain_messages_pass_through_unchanged() -> None:
    b = FlowCore(B)
    plain = Regular(A, (G,), b"hello", 3, spread.AGREED_MESS)
    assert b.on_message(plain, 0.0) == [plain]
    odd = Regular(A, (G,), b"not a frame", fr.FLOW_MSG_TYPE, spread.AGREED_MESS)
    assert b.on_message(odd, 0.0) == [odd]  # the reserved type by chance
    other = Membership(REG_MEMB_MESS | JOIN, "other", (A,), A, (A,))
    assert b.on_message(other, 0.0) == [other]


def malformed_frames() -> list[bytes]:
    h = fr.header
    return [
        fr.MAGIC + b"\x01",
        fr.MAGIC + b"\x09" + bytes(40),
        h(fr.BATCH, 7, 1) + b"\x05\x01",
        h(fr.CHUNK, 7, 1) + b"abc",
        h(fr.CHUNK, 7, 1) + fr.chunk_prefix(10, 5) + b"abc",
        h(fr.CHUNK, 7, 1, flags=fr.F_LAST) + fr.chunk_prefix(10, 0) + b"abc",
        h(fr.CHUNK, 7, 1) + fr.chunk_prefix(1 << 40, 0) + b"abc",
        h(fr.HELLO, 0, 0) + b"\xff\xfe",
    ]


@pytest.mark.parametrize("frame", malformed_frames())
def test_malformed_frames_are_counted_or_strict_events(frame: bytes) -> None:
    for strict in (False, True):
        b = FlowCore(B, strict=strict)
        b.join(G)
        view(b, (A, B), changed=B)
        out = b.on_message(Regular(A, (G,), frame, fr.FLOW_MSG_TYPE, 16), 0.0)
        if strict:
            assert out and isinstance(out[-1], ProtocolErrorEvent)
            assert isinstance(out[-1].error(), spread.flow.ProtocolError)
        else:
            assert out == []
        assert b.stats["malformed"] + b.receiver.stats["malformed"] >= 1


def test_duplicates_dropped_and_a_hole_asked_for_then_filled_in_order() -> None:
    a, b, ch = pair(window=16)
    for i in range(3):
        ch.offer(b"%d" % i)
    acts = a.actions()
    msgs = [Regular(A, (G,), x.data, x.msg_type, x.service_type) for x in acts]
    got = b.on_message(msgs[0], 0.0)
    assert b.on_message(msgs[0], 0.0) == []
    assert b.receiver.stats["duplicates"] == 1
    assert b.on_message(msgs[2], 0.0) == []  # held: frame 2 is asked for
    (nack,) = b.actions()
    assert nack.group == A and fr.decode_header(nack.data)[:1] == (fr.NACK,)
    assert fr.decode_header(nack.data)[4:] == (2, 2)
    assert a.on_message(Regular(B, (A,), nack.data, nack.msg_type, nack.service_type), 0.0) == []
    assert ch.stats["resent"] == 1
    out = wire(a, b)  # frame 2 again, to b's private group
    assert [m.message for m in got + out] == [b"0", b"1", b"2"]
    assert b.on_message(msgs[1], 0.0) == []  # the live one, late: a duplicate
    for m in got + out:
        b.consumed(m, 0.0)
    st = b.receiver.streams[(A, 7)]
    assert st.pos_seq == 3 and st.pos_bytes == ch.sent_bytes
    assert st.repair is None  # nothing missing: the repair is gone


def test_without_retention_a_hole_is_data_loss_in_its_place() -> None:
    a, b, ch = pair(window=16, retention=False)
    for i in range(3):
        ch.offer(b"%d" % i)
    msgs = [Regular(A, (G,), x.data, x.msg_type, x.service_type) for x in a.actions()]
    got = b.on_message(msgs[0], 0.0) + b.on_message(msgs[2], 0.0)
    wire(b, a)  # the NACK
    got += wire(a, b)  # the GAP
    assert [type(m) for m in got] == [FlowMsg, DataLoss, FlowMsg]
    assert got[1] == DataLoss(G, A, 7, 2, 2) and StreamGap is DataLoss
    assert isinstance(got[1], spread.SpreadError) and "2..2" in str(got[1])
    for m in (got[0], got[2]):
        b.consumed(m, 0.0)
    st = b.receiver.streams[(A, 7)]
    assert st.pos_seq == 3 and st.pos_bytes == ch.sent_bytes


def test_idle_report_waits_report_delay_then_tick_sends_it() -> None:
    a, b, ch = pair(window=64)
    ch.offer(b"1")
    (m1,) = wire(a, b)
    b.consumed(m1, 0.0)
    assert len(b.actions()) == 1  # drained: report
    ch.offer(b"2")
    (m2,) = wire(a, b)
    b.consumed(m2, 0.0005)
    assert b.actions() == []  # too soon after the last one
    assert b.next_deadline() == pytest.approx(0.002)
    b.tick(0.002)
    assert len(b.actions()) == 1


def test_bye_ends_the_stream() -> None:
    a, b, ch = pair()
    ch.offer(b"1")
    wire(a, b)
    a.close_channel(ch)
    out = wire(a, b)
    assert isinstance(out[0], StreamEnded) and out[0].last == 1
    assert b.receiver.streams == {}
    with pytest.raises(ValueError):
        ch.offer(b"late")


def test_sender_leaving_frees_partial_reassembly() -> None:
    a, b, ch = pair(max_frame=100, window=2, window_bytes=1 << 20)
    ch.offer(b"x" * 1000)
    wire(a, b)
    assert b.receiver.reassembly_bytes > 0
    # A disconnect orphans the stream (its sender may come back and resend):
    # the partial message is kept until orphan_timeout, then freed.
    view(b, (B,), DISCONNECT, A)
    assert b.receiver.reassembly_bytes > 0
    assert b.next_deadline() == pytest.approx(30.0)
    (ended,) = b.tick(30.0)
    assert ended == StreamEnded(G, A, 7, ch.last_seq, False)
    assert b.receiver.reassembly_bytes == 0 and b.receiver.streams == {}
    # A leave without BYE frees it at once (and says the end was unclean).
    a, b, ch = pair(max_frame=100, window=2, window_bytes=1 << 20)
    ch.offer(b"x" * 1000)
    wire(a, b)
    out = view(b, (B,), LEAVE, A)
    assert out[1:] == [StreamEnded(G, A, 7, ch.last_seq, False)]
    assert b.receiver.reassembly_bytes == 0 and b.receiver.streams == {}


def test_reassembly_buffer_is_bounded() -> None:
    a, b, ch = pair(max_frame=100, window=64, window_bytes=1 << 20)
    b.receiver.max_reassembly_bytes = 200
    ch.offer(b"x" * 1000)
    wire(a, b)
    assert b.receiver.reassembly_bytes <= 200
    assert b.receiver.stats["malformed"] >= 1
    # the stream goes on: credit came back for every piece
    assert ch.offer(b"small")
    for _ in range(5):
        wire(a, b)
        back(b, a)
    assert ch.pending == 0


# ---- found by the front end ------------------------------------------------------


def test_offers_while_blocked_do_not_rescan_the_accumulator(monkeypatch):
    # The sync front end's send_many of small messages ran at 3,000 msg/s:
    # every offer() while credit was short scanned the whole accumulator
    # for the next batch's size. Now a blocked channel is left alone until
    # something that can unblock it happens (a report, own delivery, a view,
    # a tick, a flush).
    a, b, ch = pair(window=2, max_pending_bytes=1 << 20, max_batch_items=100_000)
    ch.offer(b"x", 0, 0.0)
    ch.offer(b"y", 0, 0.0)
    held = [m for m in wire(a, b) if isinstance(m, FlowMsg)]  # b consumes nothing: blocked
    # The accumulator keeps its open batch's size as it grows: an offer
    # never reads what is already queued.
    calls = []
    real = ch._next_frame_size
    monkeypatch.setattr(ch, "_next_frame_size", lambda *a: calls.append(1) or real(*a))
    for i in range(2000):
        assert ch.offer(b"%d" % i, 0, 0.0)
    assert len(calls) <= 2000, len(calls)  # one O(1) look per offer
    assert ch._open is not None and ch._open.count == 2000 and not ch._ready
    assert ch.pending == 2000
    # Credit returns: everything still leaves, in order.
    got = []
    for m in held:
        got.append(m.message)
        b.consumed(m, 0.0)
    for _ in range(100):
        for m in wire(a, b):
            if isinstance(m, FlowMsg):
                got.append(m.message)
                b.consumed(m, 0.0)
        back(b, a)
        if not ch.pending and len(got) == 2002:
            break
        ch.flush(0.0)
    assert got == [b"x", b"y"] + [b"%d" % i for i in range(2000)]


# ---- fuzzed fragment sequences ------------------------------------------------------


def _pattern(position: int, n: int) -> bytes:
    """The bytes at position .. position + n of every fuzzed message."""
    return bytes((position + i) % 251 for i in range(n))


_piece = st.tuples(
    st.integers(0, 3000),  # total
    st.integers(0, 3000),  # position
    st.integers(0, 600),  # piece length
    st.booleans(),  # F_LAST
    st.sampled_from([0, 0, 0, 1, 1, 2, -1, 5]),  # seq step (0 repeats, >1 skips)
    st.sampled_from([0, 0, 0, 1, -5]),  # offset error
    st.booleans(),  # a junk frame in between
)


@settings(max_examples=300, deadline=1000)
@given(st.lists(_piece, max_size=40), st.booleans())
def test_fuzzed_fragment_sequences_never_crash_and_stay_bounded(pieces, strict) -> None:
    # CHUNK frames with any total, position, length, last flag, repeated,
    # skipped or reordered seqs and wrong offsets, junk in between: the
    # receiver never raises, its reassembly buffer stays within bounds, any
    # message it completes is byte-exact, and the stream works afterwards.
    limit = 4000
    b = FlowCore(B, strict=strict, max_message_bytes=2500, max_reassembly_bytes=limit)
    b.join(G)
    view(b, (A, B), changed=B)
    seq, offset = 1, 0
    high = 0
    out: list = []
    for total, position, n, last, step, off_err, junk in pieces:
        high = max(high, seq)
        piece = _pattern(position, n)
        flags = fr.F_LAST if last else 0
        frame = (
            fr.header(fr.CHUNK, 9, max(1, seq), max(0, offset + off_err), flags, 3)
            + fr.chunk_prefix(total, position)
            + piece
        )
        out += b.on_message(Regular(A, (G,), frame, fr.FLOW_MSG_TYPE, 16), 0.0)
        if junk:
            out += b.on_message(Regular(A, (G,), frame[: 32 + n % 20], fr.FLOW_MSG_TYPE, 16), 0.0)
        assert 0 <= b.receiver.reassembly_bytes <= limit
        seq += step
        offset += len(frame)
    for m in out:
        if isinstance(m, FlowMsg):
            assert m.message == _pattern(0, len(m.message)) and len(m.message) <= 2500
            b.consumed(m, 0.0)
        else:
            assert isinstance(m, (StreamGap, ProtocolErrorEvent)), m
    # A well-formed chunked message still goes through on the same stream,
    # once the sender says (GAP) it holds nothing before it: the holes the
    # repair waited for are lost, each in its place.
    seq, offset = high + 1, offset + 1000
    got = b.on_message(Regular(A, (B,), fr.header(fr.GAP, 9, seq), fr.FLOW_MSG_TYPE, 16), 0.0)
    for m in got:
        if isinstance(m, FlowMsg):
            b.consumed(m, 0.0)
    assert all(isinstance(m, (FlowMsg, DataLoss, ProtocolErrorEvent)) for m in got), got
    for position in (0, 1000, 2000):
        n = 1000 if position < 2000 else 400
        flags = fr.F_LAST if position == 2000 else 0
        frame = (
            fr.header(fr.CHUNK, 9, seq, offset, flags, 3)
            + fr.chunk_prefix(2400, position)
            + _pattern(position, n)
        )
        got += b.on_message(Regular(A, (G,), frame, fr.FLOW_MSG_TYPE, 16), 0.0)
        seq += 1
        offset += len(frame)
    msgs = [m for m in got if isinstance(m, FlowMsg) and len(m.message) == 2400]
    assert [m.message for m in msgs] == [_pattern(0, 2400)]
    assert b.receiver.reassembly_bytes == 0


def test_open_batch_size_is_exact_across_count_varint_boundaries() -> None:
    # The accumulator keeps each batch's framed size as messages join; it
    # must match the encoder's size exactly as the item count's uvarint
    # grows (127 -> 128, 16383 -> 16384 items), or frames could pass max_frame.
    a, b, ch = pair(
        window=1,
        window_bytes=1 << 30,
        max_batch_items=1 << 20,
        max_batch_bytes=fr.DEFAULT_MAX_FRAME,
        max_pending_bytes=1 << 30,
    )
    ch.offer(b"first")  # the window's one frame: everything after waits
    # Mostly empty messages (3 bytes each in a batch): 17,000 fit one frame.
    items = [(b"" if i % 1000 else b"x" * 200, i % 5 - 2) for i in range(17_000)]
    for n, (data, mt) in enumerate(items, 1):
        assert ch.offer(data, mt)
        if n in (127, 128, 129, 16383, 16384, 16385) or n % 4999 == 0:
            assert ch._open.count == n and not ch._ready
            assert ch._open.size == fr.batch_size(items[:n]), n
    got = [m for m in wire(a, b) if isinstance(m, FlowMsg)]
    while len(got) < len(items) + 1:
        for m in got:
            b.consumed(m, 0.0)
        back(b, a)
        more = [m for m in wire(a, b) if isinstance(m, FlowMsg)]
        assert more, "no progress"
        got += more
    assert [(m.message, m.msg_type) for m in got[1:]] == items
    assert ch.stats["frames"] == 2


def test_report_requests_every_quarter_then_every_sixteenth_of_the_window() -> None:
    # A receiver a quarter window behind was asked for a report on every
    # frame, so it reported every frame (a multicast each) and lagged more.
    a, b, ch = pair(window=64, window_bytes=1 << 30, max_batch_items=1)
    for i in range(64):
        assert ch.offer(b"m%d" % i)
    flagged = [
        fr.decode_header(x.data).seq
        for x in a.actions()
        if fr.decode_header(x.data).flags & fr.F_REPORT
    ]
    # Quarters (16, 32, 48, 64), then every fourth frame in the last quarter.
    assert flagged == [16, 32, 48, 52, 56, 60, 64]
