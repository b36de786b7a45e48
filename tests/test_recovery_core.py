"""The sans-IO pieces of recovery (issue 17): a sender's retention ring, a
receiver's per-stream repair, and the reconnect policy. The property that matters: whatever the
network drops, repeats or reorders, and whatever the sender's retention has
forgotten, a receiver hands out each frame exactly once, in order, and every
frame it can't have as a Lost range in its place: never a silent gap, never
a duplicate, never a loss that could have been repaired."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spread
from spread.flow._reconnect import Backoff, Reconnected, ReconnectFailed, Reconnecting, retryable
from spread.flow._repair import Lost, Request, StreamRepair
from spread.flow._resend import Resender
from spread.flow._retention import RetentionRing, RetentionStore, answer

pytestmark = pytest.mark.timeout(120)


# ---- the ring --------------------------------------------------------------------


def test_the_ring_keeps_the_newest_frames_within_its_bounds():
    ring = RetentionRing(max_frames=3, max_bytes=100)
    assert (ring.low(), ring.high(), len(ring)) == (1, 0, 0)
    for seq in range(1, 6):
        ring.append(seq, bytes([seq]) * 10)
    assert (ring.low(), ring.high(), len(ring), ring.held_bytes) == (3, 5, 3, 30)
    assert ring.read(1, 9) == [(3, b"\x03" * 10), (4, b"\x04" * 10), (5, b"\x05" * 10)]
    ring.append(6, b"x" * 95)  # bytes: only the newest fits
    assert (ring.low(), ring.high(), ring.held_bytes) == (6, 6, 95)
    ring.append(7, b"y" * 500)  # larger than the bound: still kept, alone
    assert (ring.low(), ring.high(), ring.held_bytes) == (7, 7, 500)
    assert isinstance(ring, RetentionStore)


def test_the_ring_starts_anywhere_then_takes_only_the_next_frame():
    ring = RetentionRing()
    ring.append(41, b"a")
    assert (ring.low(), ring.high()) == (41, 41)
    with pytest.raises(ValueError, match="does not follow 41"):
        ring.append(43, b"c")
    with pytest.raises(ValueError, match="does not follow 41"):
        ring.append(41, b"a")
    assert ring.read(0, 100) == [(41, b"a")]  # nothing lost by the refusals
    with pytest.raises(ValueError, match="start at 1"):
        RetentionRing().append(0, b"")
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError, match="max_frames"):
            RetentionRing(max_frames=bad)


def test_trim_forgets_what_every_receiver_has():
    ring = RetentionRing()
    for seq in range(1, 11):
        ring.append(seq, b"f")
    ring.trim(4)
    assert (ring.low(), ring.high(), len(ring), ring.held_bytes) == (4, 10, 7, 7)
    ring.trim(100)  # past the end: empty, and the next frame still follows
    assert (ring.low(), ring.high(), len(ring)) == (11, 10, 0)
    ring.append(11, b"g")
    assert ring.read(1, 20) == [(11, b"g")]


def test_the_answer_names_what_is_gone_and_sends_what_is_held():
    ring = RetentionRing(max_frames=4)
    for seq in range(1, 11):
        ring.append(seq, b"%d" % seq)
    assert answer(ring, 2, 8) == (7, [(7, b"7"), (8, b"8")])
    assert answer(ring, 8, 9) == (None, [(8, b"8"), (9, b"9")])
    assert answer(ring, 9, 50) == (None, [(9, b"9"), (10, b"10")])  # cut at high
    assert answer(ring, 1, 3) == (7, [])


# ---- the repair, case by case ----------------------------------------------------------


def test_frames_in_order_pass_straight_through():
    r = StreamRepair(1)
    assert [r.arrive(s, s, 0.0) for s in (1, 2, 3)] == [[1], [2], [3]]
    assert (r.expected, r.actions, r.complete) == (4, [], True)


def test_a_duplicate_is_dropped_wherever_it_is():
    r = StreamRepair(1)
    r.arrive(1, "a", 0.0)
    r.arrive(3, "c", 0.0)  # held beyond the hole
    assert r.arrive(1, "a", 0.0) == [] and r.arrive(3, "c", 0.0) == []
    assert r.stats["duplicates"] == 2
    assert r.arrive(2, "b", 0.0) == ["b", "c"]


def test_a_hole_is_asked_for_once_and_filled_in_order():
    r = StreamRepair(5)
    assert r.arrive(8, 8, 1.0) == []
    assert r.actions == [Request(5, 7)]
    r.arrive(9, 9, 1.0)
    assert r.actions == [Request(5, 7)]  # one outstanding request
    assert r.arrive(6, 6, 1.1) == [] and r.arrive(5, 5, 1.1) == [5, 6]
    assert r.arrive(7, 7, 1.2) == [7, 8, 9]
    assert r.complete and r.next_deadline() == float("inf")


def test_an_unanswered_request_is_asked_again_backing_off():
    r = StreamRepair(1, retry=0.1, max_retry=0.4)
    r.arrive(3, 3, 0.0)
    assert r.actions == [Request(1, 2)] and r.next_deadline() == pytest.approx(0.1)
    r.tick(0.05)
    assert len(r.actions) == 1
    times = []
    now = 0.1
    for _ in range(4):
        r.tick(now)
        times.append(now)
        now = r.next_deadline()
    assert r.actions == [Request(1, 2)] * 5
    assert [round(times[i + 1] - times[i], 3) for i in range(3)] == [0.2, 0.4, 0.4]
    r.arrive(1, 1, 1.0)  # progress: what is still missing stays asked
    assert r.actions[-1] == Request(1, 2) and len(r.actions) == 5
    r.tick(r.next_deadline())
    assert r.actions[-1] == Request(2, 2)


def test_frames_beyond_the_window_are_dropped_and_asked_for_later():
    r = StreamRepair(1, reorder_window=4)
    for s in range(2, 11):
        r.arrive(s, s, 0.0)
    assert r.waiting == 3 and r.stats["dropped_ahead"] == 6  # 2, 3, 4 held
    assert r.actions == [Request(1, 1)]
    assert r.arrive(1, 1, 0.0) == [1, 2, 3, 4]
    assert r.actions[-1] == Request(5, 8)  # the next hole, capped at the window
    for s in range(5, 9):
        r.arrive(s, s, 0.0)
    assert r.actions[-1] == Request(9, 10)
    assert r.arrive(10, 10, 0.0) == [] and r.arrive(9, 9, 0.0) == [9, 10]
    assert r.complete


def test_an_announced_tail_is_asked_for():
    r = StreamRepair(1)
    r.arrive(1, 1, 0.0)
    r.announce(4, 0.0)  # a HELLO after a reconnect, or a BYE
    assert r.actions == [Request(2, 4)] and not r.complete
    r.announce(3, 0.0)  # an older announcement changes nothing
    assert r.actions == [Request(2, 4)]


def test_what_the_sender_no_longer_holds_is_lost_in_its_place():
    r = StreamRepair(1)
    r.arrive(6, 6, 0.0)
    assert r.gone(4, 0.1) == [Lost(1, 3)]
    # (the answer resends what it holds of the range: 4..5 stay asked, not again)
    assert r.actions == [Request(1, 5)]
    r.tick(r.next_deadline())
    assert r.actions[-1] == Request(4, 5)
    assert r.arrive(5, 5, 0.1) == [] and r.arrive(4, 4, 0.1) == [4, 5, 6]
    assert r.stats["lost"] == 3 and r.complete
    assert r.gone(2, 0.2) == []  # before what we have: nothing


def test_a_sender_that_ends_leaves_its_holes_lost_between_what_arrived():
    r = StreamRepair(1)
    for s in (2, 4, 5, 8):
        r.arrive(s, s, 0.0)
    r.announce(9, 0.0)
    assert r.ended() == [Lost(1, 1), 2, Lost(3, 3), 4, 5, Lost(6, 7), 8, Lost(9, 9)]
    assert r.complete and r.next_deadline() == float("inf")
    r.announce(12, 1.0)
    r.tick(100.0)
    assert len(r.actions) == 1  # nothing more is asked of a sender that is gone
    assert r.arrive(3, 3, 1.0) == []


def test_bad_options_are_refused():
    for kw in ({"expected": 0}, {"expected": 1.0}, {"reorder_window": 0}, {"retry": 0}):
        args = {"expected": 1, **kw}
        with pytest.raises(ValueError):
            StreamRepair(args.pop("expected"), **args)
    with pytest.raises(ValueError):
        StreamRepair(1, retry=2.0, max_retry=1.0)


# ---- the property, over a simulated network ---------------------------------------------


def simulate(seed: int, frames: int, ring: int, window: int, drop: float, end_early: bool):
    """A sender streams `frames` frames while its ring keeps `ring` of them;
    the network drops, repeats and delays live frames and resends alike.
    Returns (what the receiver handed out, what was truly unavailable)."""
    rnd = random.Random(seed)
    store = RetentionRing(max_frames=ring)
    repair = StreamRepair(1, reorder_window=window, retry=0.05, max_retry=0.4)
    pending: list[tuple[float, int, str, object]] = []  # (time, order, kind, payload)
    order = 0
    out: list = []
    unavailable: set[int] = set()
    now = 0.0

    def send(at, kind, payload):
        nonlocal order
        order += 1
        pending.append((at, order, kind, payload))

    sent = 0
    ended = False
    while True:
        dies = end_early and sent > frames // 2 and rnd.random() < 0.01
        if not ended and sent < frames and not dies:
            sent += 1
            store.append(sent, b"%d" % sent)
            if rnd.random() >= drop:
                send(now + rnd.expovariate(100), "frame", sent)
                if rnd.random() < 0.05:
                    send(now + rnd.expovariate(50), "frame", sent)  # repeated
        elif not ended:
            if end_early and sent < frames:
                ended = True  # the sender dies: nothing more is answered
                unavailable.update(s for s in range(1, sent + 1))
                pending = [p for p in pending if p[2] == "frame"]  # in flight still arrives
            else:
                send(now + 0.01, "announce", sent)  # a BYE
                ended = True
        for req in repair.actions:
            if not (end_early and ended and sent < frames):
                send(now + rnd.expovariate(200), "request", req)
        repair.actions.clear()
        if not pending:
            if ended and (repair.complete or (end_early and sent < frames)):
                break
            deadline = repair.next_deadline()
            now = deadline if ended and deadline != float("inf") else now + 0.001
            repair.tick(now)
            continue
        pending.sort()
        at, _, kind, payload = pending.pop(0)
        now = max(now, at)
        repair.tick(now)
        if kind == "frame":
            out.extend(repair.arrive(payload, payload, now))
        elif kind == "announce":
            repair.announce(payload, now)
        elif kind == "gone":
            out.extend(repair.gone(payload, now))
        else:
            gone, held = answer(store, payload.first, payload.last)
            if gone is not None:
                unavailable.update(range(payload.first, gone))
                send(now + rnd.expovariate(200), "gone", gone)
            for seq, _frame in held:
                if rnd.random() >= drop:
                    send(now + rnd.expovariate(200), "frame", seq)
        assert repair.waiting <= window
        if now > 100_000:  # (simulated seconds: a window of 1 over a 90 % lossy network is slow)
            raise AssertionError("the repair never completed")
    died = end_early and sent < frames
    if died:
        out.extend(repair.ended())
    return out, unavailable, sent, died


def check(out, unavailable, sent, died):
    """The outputs partition 1..sent, in order; losses only where unavoidable.
    A sender that died without a BYE: a tail that never reached the receiver
    is unknowable to it (the stream ends unclean), so a prefix of 1..sent."""
    seq = 1
    for entry in out:
        if isinstance(entry, Lost):
            assert entry.first == seq and entry.last >= entry.first, (entry, seq)
            missing = set(range(entry.first, entry.last + 1))
            assert missing <= unavailable, sorted(missing - unavailable)[:5]
            seq = entry.last + 1
        else:
            assert entry == seq, (entry, seq)
            seq += 1
    if died:
        assert seq <= sent + 1, (seq, sent)
    else:
        assert seq == sent + 1, (seq, sent)


@pytest.mark.parametrize("seed", range(30))
def test_every_frame_once_in_order_or_lost_in_its_place(seed):
    rnd = random.Random(seed)
    result = simulate(
        seed,
        frames=rnd.choice([1, 10, 300, 2000]),
        ring=rnd.choice([1, 8, 64, 10_000]),
        window=rnd.choice([1, 4, 32, 256]),
        drop=rnd.choice([0.0, 0.05, 0.3, 0.7]),
        end_early=seed % 5 == 4,
    )
    check(*result)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    frames=st.integers(1, 400),
    ring=st.integers(1, 500),
    window=st.integers(1, 64),
    drop=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
    end_early=st.booleans(),
)
def test_the_property_holds_for_any_network(seed, frames, ring, window, drop, end_early):
    check(*simulate(seed, frames, ring, window, drop, end_early))


def test_nothing_is_lost_while_the_ring_covers_the_drops():
    """A ring as long as the stream: a lossy network loses nothing."""
    for seed in range(10):
        out, unavailable, sent, died = simulate(seed, 500, 500, 32, 0.5, False)
        check(out, unavailable, sent, died)
        assert not unavailable and out == list(range(1, sent + 1))


# ---- reconnecting ---------------------------------------------------------------------


def rejected(name: str):
    from spread import _constants

    code = getattr(_constants, name)
    return spread.error_class(code)(code, name)


def test_the_waits_grow_to_their_bound_with_jitter_below_each():
    backoff = Backoff(first=0.1, most=1.0, factor=2.0, jitter=0.5)
    rnd = random.Random(7)
    for attempt, full in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], start=1):
        waits = [backoff.wait(attempt, rnd) for _ in range(200)]
        assert full * 0.5 <= min(waits) and max(waits) <= full
        assert max(waits) - min(waits) > full * 0.4  # really spread
    assert Backoff(jitter=0.0).wait(3, rnd) == pytest.approx(0.4)
    assert Backoff().wait(10_000, rnd) <= 5.0  # no overflow however long the outage


def test_an_outage_is_retried_until_the_daemon_returns():
    rnd = random.Random(1)
    outage = Reconnecting(Backoff(first=0.1, most=0.4, jitter=0.0), since=10.0, rnd=rnd)
    at = outage.first_attempt(spread.ConnectionClosed(-8, "closed"))
    assert at == pytest.approx(10.1)
    for error in (
        spread.CouldNotConnect(-2, "no daemon"),  # restarting
        rejected("REJECT_NOT_UNIQUE"),  # the old session not yet gone
        rejected("REJECT_QUOTA"),
        rejected("REJECT_AUTH"),  # a handshake slower than the daemon's 1 s wait
        spread.ConnectTimeout(-2, "slow"),
    ):
        nxt = outage.failed(error, at)
        assert nxt > at
        at = nxt
    event = outage.succeeded(at)
    assert event == Reconnected(attempts=6, downtime=pytest.approx(at - 10.0))


def test_bounded_attempts_give_up_naming_the_last_error():
    outage = Reconnecting(Backoff(attempts=3), since=0.0)
    last = spread.CouldNotConnect(-2, "no daemon at 4803")
    outage.failed(last, 1.0)
    outage.failed(last, 2.0)
    with pytest.raises(ReconnectFailed, match="after 3 attempt") as info:
        outage.failed(last, 3.0)
    err = info.value
    assert (err.attempts, err.last_error, err.__cause__, err.code) == (3, last, last, -2)
    assert isinstance(err, spread.error)


@pytest.mark.parametrize("name", ["REJECT_VERSION", "REJECT_ILLEGAL_NAME", "REJECT_NO_NAME"])
def test_what_no_attempt_can_change_ends_it_at_once(name):
    outage = Reconnecting(Backoff(), since=0.0)
    with pytest.raises(ReconnectFailed, match="after 1 attempt"):
        outage.failed(rejected(name), 1.0)
    assert not retryable(rejected(name))
    assert not retryable(ValueError("not a spread error"))
    with pytest.raises(ReconnectFailed, match="after 0 attempt"):
        Reconnecting(Backoff(), since=0.0).first_attempt(spread.IllegalGroup(-14, "bad"))


def test_every_loss_a_session_can_see_is_retryable():
    for error in (
        spread.ConnectionClosed(-8, ""),
        spread.NetErrorOnSession(-18, ""),
        spread.BacklogOverflow(-8, ""),
        spread.IllegalSession(-11, ""),
    ):
        assert retryable(error), error


@pytest.mark.parametrize(
    "kw",
    [
        {"first": 0},
        {"first": 2.0, "most": 1.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"attempts": 0},
        {"attempts": 1.5},
    ],
)
def test_bad_backoff_options_are_refused(kw):
    with pytest.raises(ValueError):
        Backoff(**kw)


# ---- resending, paced by the receiver's window --------------------------------------------


def filled_ring(n: int, size: int = 10, **kw) -> RetentionRing:
    ring = RetentionRing(**kw)
    for seq in range(1, n + 1):
        ring.append(seq, bytes([seq % 256]) * size)
    return ring


def seqs(due):
    return [seq for seq, _ in due.frames]


def test_a_request_is_resent_within_the_receivers_window():
    rs = Resender(filled_ring(100), window=8, window_bytes=10_000)
    rs.request("r", 11, 60, consumed=10)
    assert seqs(rs.due("r")) == list(range(11, 19))  # 10 + window
    assert seqs(rs.due("r")) == []  # nothing more until it consumes
    rs.consumed("r", 14)
    assert seqs(rs.due("r")) == [19, 20, 21, 22]
    rs.consumed("r", 12)  # a late report: changes nothing
    assert seqs(rs.due("r")) == []
    rs.consumed("r", 52)
    assert seqs(rs.due("r")) == list(range(23, 61))  # the rest of what it asked for
    assert rs.stats["resent"] == 50 and rs.waiting == 0


def test_a_repeated_request_gets_only_what_is_not_on_its_way():
    rs = Resender(filled_ring(100), window=8, window_bytes=10_000, repeat_after=0.1)
    rs.request("r", 1, 20, consumed=0, now=1.0)
    assert seqs(rs.due("r", 1.0)) == list(range(1, 9))
    for _ in range(5):  # asked again at once: 1..8 are on their way
        rs.request("r", 1, 20, consumed=0, now=1.05)
        assert seqs(rs.due("r", 1.05)) == []
    rs.consumed("r", 4)
    assert seqs(rs.due("r", 1.06)) == [9, 10, 11, 12]
    rs.request("r", 5, 20, consumed=4, now=1.5)  # later: no progress, so again
    assert seqs(rs.due("r", 1.5)) == list(range(5, 13))
    rs.request("r", 5, 20, consumed=4)  # (without a time: as asked)
    assert seqs(rs.due("r")) == list(range(5, 13))


def test_the_byte_window_counts_resent_frames_not_yet_consumed():
    rs = Resender(filled_ring(50, size=100), window=1000, window_bytes=350)
    rs.request("r", 1, 50, consumed=0)
    assert seqs(rs.due("r")) == [1, 2, 3]
    assert seqs(rs.due("r")) == []
    rs.consumed("r", 2)
    assert seqs(rs.due("r")) == [4, 5]
    big = RetentionRing()
    big.append(1, b"x" * 1000)  # one frame larger than the byte window still goes
    rs2 = Resender(big, window=4, window_bytes=100)
    rs2.request("r", 1, 1, consumed=0)
    assert seqs(rs2.due("r")) == [1] and rs2.waiting == 0


def test_resent_frames_asked_for_again_later_no_longer_fill_the_byte_window():
    # Resent frames lost on their way (a view change) are asked for again:
    # counted as still held, they used to fill the byte window for good, and
    # the member was never answered again (a flow_sim soak schedule).
    rs = Resender(filled_ring(50, size=100), window=1000, window_bytes=350, repeat_after=0.1)
    rs.request("r", 1, 50, consumed=0, now=1.0)
    assert seqs(rs.due("r", 1.0)) == [1, 2, 3]
    rs.request("r", 1, 50, consumed=0, now=1.05)  # at once: on their way
    assert seqs(rs.due("r", 1.05)) == []
    rs.request("r", 1, 50, consumed=0, now=2.0)  # later: they never came
    assert seqs(rs.due("r", 2.0)) == [1, 2, 3]
    rs.consumed("r", 1)  # what it consumed stays counted as consumed
    rs.request("r", 3, 50, consumed=1, now=3.0)  # 2 arrived, 3 did not
    assert seqs(rs.due("r", 3.0)) == [3, 4]


def test_what_the_ring_lost_is_named_first():
    ring = filled_ring(100, max_frames=30)  # holds 71..100
    rs = Resender(ring, window=5, window_bytes=10_000)
    rs.request("r", 60, 80, consumed=59)
    due = rs.due("r")
    # The receiver skips 60..70 at the GAP: they count as consumed, so the
    # window runs from 70.
    assert due.gone == 71 and seqs(due) == [71, 72, 73, 74, 75]
    assert seqs(rs.due("r")) == []
    rs.consumed("r", 72)
    due = rs.due("r")
    assert due.gone is None and seqs(due) == [76, 77]


def test_a_newer_request_replaces_the_older_and_an_empty_one_withdraws():
    rs = Resender(filled_ring(100), window=50, window_bytes=10_000)
    rs.request("r", 10, 20, consumed=9)
    rs.request("r", 15, 16, consumed=9)
    assert seqs(rs.due("r")) == [15, 16] and rs.waiting == 0
    rs.request("r", 30, 40, consumed=9)
    rs.request("r", 30, 20, consumed=9)
    assert rs.waiting == 0 and seqs(rs.due("r")) == []
    rs.request("r", 99, 500, consumed=98)  # cut at what was sent
    assert seqs(rs.due("r")) == [99, 100]


def test_members_are_paced_apart_and_a_leaver_is_forgotten():
    rs = Resender(filled_ring(100), window=3, window_bytes=10_000)
    rs.request("a", 1, 100, consumed=0)
    rs.request("b", 50, 100, consumed=49)
    assert seqs(rs.due("a")) == [1, 2, 3] and seqs(rs.due("b")) == [50, 51, 52]
    rs.drop("a")
    assert rs.waiting == 1 and seqs(rs.due("a")) == []
    with pytest.raises(ValueError):
        Resender(filled_ring(1), window=0, window_bytes=1)
    with pytest.raises(ValueError):
        Resender(filled_ring(1), window=1, window_bytes=0)


@pytest.mark.parametrize("seed", range(12))
def test_a_paced_catch_up_repairs_the_stream_and_never_overruns_the_window(seed):
    """A receiver that missed most of a stream catches up from the ring:
    resends are paced by its consumption (it reports as it consumes), never
    more than the window beyond it, and it ends with every frame once, in
    order, or Lost where the ring had forgotten it."""
    rnd = random.Random(seed)
    frames, window = rnd.choice([(200, 8), (500, 32), (1000, 64)])
    ring = filled_ring(frames, max_frames=rnd.choice([frames, frames // 2]))
    rs = Resender(ring, window=window, window_bytes=1 << 20)
    repair = StreamRepair(1, reorder_window=window)
    repair.announce(frames, 0.0)  # a HELLO after the reconnect
    out: list = []
    consumed = 0
    now = 0.0
    for _ in range(100_000):
        for req in repair.actions:
            rs.request("r", req.first, req.last, consumed)
        repair.actions.clear()
        due = rs.due("r")
        if due.gone is not None:
            out.extend(repair.gone(due.gone, now))
        for seq, _frame in due.frames:
            assert seq <= consumed + window  # the window holds during the catch-up
            if rnd.random() < 0.9:  # some resends are lost again
                out.extend(repair.arrive(seq, seq, now))
        # the application consumes what was handed out, reporting as it goes
        consumed = max([consumed] + [e for e in out if not isinstance(e, Lost)])
        consumed = max([consumed] + [e.last for e in out if isinstance(e, Lost)])
        rs.consumed("r", consumed)
        if repair.complete:
            break
        now += 0.01
        repair.tick(now)
    check(out, set(range(1, ring.low())), frames, False)
