"""spread.flow's sync front end on the embedded daemon (issue 15's
acceptance tests). The daemon's back-pressure budget is off
(slow_reader_budget=0: a real Spread daemon's behaviour) and
max_session_messages sits just above the window, so any overshoot of the
window gets a reader killed.

Scale: the issue's 2006 case at full size, 5,000 messages of 1 KiB, with a
window of 32 frames (128 KiB), consumed at 3 ms a message (about 310 msg/s:
the window turns over 40 times). What sets the test's length is the
consumer's pace, 5,000 x 3 ms, about 16 s per run; the sender left alone
(measured in the same run, same channel options) sends 70,000 to 190,000
msg/s here, so the consumer is 230 to 600 times slower (the test checks
100). The messages are not kept: a running digest checks them.
Sleeps here only model a slow consumer; every wait for an outcome is a
bounded blocking call (receive/send with a timeout, a thread join)."""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import time

import pytest

import spread
import spread.flow as flow
from spread.flow import _frame as fr

WINDOW = 32
WINDOW_BYTES = 128 << 10
LIMIT = WINDOW + 8  # max_session_messages: just above the window
SIZE = 1024  # the 2006 thread's messages
N_2006 = 5000
SLEEP_2006 = 0.003  # per message: the slow consumer
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
SLACK = 1.5 if ASAN else 0.5  # a bound on waits that should take no time


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def payload(i: int, size: int = SIZE) -> bytes:
    head = b"%08d:" % i
    return head + b"x" * (size - len(head))


def tight_daemon(factory, **options):
    options.setdefault("slow_reader_budget", 0)
    options.setdefault("max_session_messages", LIMIT)
    return factory(**options)


def wait_for(session, kind, timeout: float = 5.0, where=lambda m: True):
    """receive() until a message of kind (that satisfies where) arrives."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind.__name__} within {timeout} s; saw {seen[-5:]}")
        try:
            m = session.receive(timeout=left)
        except spread.Empty:
            continue
        if isinstance(m, kind) and where(m):
            return m
        seen.append(m)


def joined(session, group, member, timeout=5.0):
    """Waits for the membership of group that shows member (a blocking receive)."""
    return wait_for(
        session,
        spread.MembershipMsg,
        timeout,
        lambda m: m.group == group and member in m.members,
    )


# ---- the 2006 case -------------------------------------------------------------


def free_rate(session, n: int = 5000) -> float:
    """The sender's unthrottled rate, same channel options: a group nobody
    else is in (timed once our own join is seen: it sends from then on)."""
    ch = session.channel("free", window=WINDOW, window_bytes=WINDOW_BYTES)
    joined(session, "free", session.private_group)
    data = payload(0)
    start = time.perf_counter()
    for _ in range(n):
        ch.send(data)
    ch.flush(timeout=10)
    return n / (time.perf_counter() - start)


def run_2006(daemon, consumer, sleep: float, n: int):
    """An unthrottled sender, a consumer sleeping `sleep` s per message.
    Returns the figures the tests check."""
    tx = flow.connect(daemon.address, "tx")
    try:
        unthrottled = free_rate(tx)
        ch = tx.channel("g2006", window=WINDOW, window_bytes=WINDOW_BYTES)
        joined(tx, "g2006", consumer.private_group)
        rss0 = rss_bytes()
        got = {"count": 0, "ordered": True, "digest": hashlib.sha256()}
        peaks = {"frames": 0, "bytes": 0, "ready": 0, "raw": 0}
        done = threading.Event()
        errors: list[BaseException] = []

        def consume():
            try:
                while got["count"] < n:
                    m = consumer.receive(timeout=20)
                    if isinstance(m, flow.FlowMsg):
                        got["ordered"] &= m.message == payload(got["count"])
                        got["digest"].update(m.message)
                        got["count"] += 1
                        b = consumer.backlog()
                        for k in peaks:
                            peaks[k] = max(peaks[k], b[k])
                        time.sleep(sleep)  # the slow consumer
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
            finally:
                done.set()

        th = threading.Thread(target=consume)
        start = time.monotonic()
        th.start()
        for i in range(n):
            ch.send(payload(i), timeout=20)  # unthrottled: as fast as credit allows
        sent_at = time.monotonic() - start
        assert done.wait(90), "the consumer did not finish"
        consumed_at = time.monotonic() - start
        th.join(5)
        assert not errors, errors
        return {
            "got": got,
            "peaks": peaks,
            "sent_at": sent_at,
            "consumed_at": consumed_at,
            "unthrottled": unthrottled,
            "rss_growth": rss_bytes() - rss0,
            "stats": ch.stats,
            "batch_bytes": ch.core._batch_bytes,
        }
    finally:
        tx.close()


def check_2006(daemon, r, n, sleep):
    consumer_rate = n / r["consumed_at"]
    print(  # shown with -s: the figures behind the assertions
        f"2006: unthrottled {r['unthrottled']:.0f} msg/s, consumer {consumer_rate:.0f} msg/s, "
        f"sent by {r['sent_at']:.2f} s, consumed by {r['consumed_at']:.2f} s, "
        f"peak backlog {r['peaks']}, rss growth {r['rss_growth'] / 1e6:.1f} MB, "
        f"daemon rx {daemon.session('rx')}"
    )
    # The consumer is much slower than the sender left alone: 230-600 times
    # on an idle machine (the 100), 75 once in CI with two suites side
    # by side (so 50 is checked); under ASan, cffi's sender measured 98 times,
    # and on PyPy, whose JIT is still warming up in the short unthrottled run,
    # 58: 25 there. The bounds below are what the scenario tests.
    slow_sender = (
        "libasan" in os.environ.get("LD_PRELOAD", "") or platform.python_implementation() == "PyPy"
    )
    slower = 25 if slow_sender else 50
    assert r["unthrottled"] >= slower * consumer_rate, (r["unthrottled"], consumer_rate)
    # 0 loss, in order.
    got = r["got"]
    assert got["count"] == n and got["ordered"], got
    expected = hashlib.sha256()
    for i in range(n):
        expected.update(payload(i))
    assert got["digest"].digest() == expected.digest()
    # Nobody was killed.
    for name in ("tx", "rx"):
        s = daemon.session(name)
        assert not s["killed"], s
    assert daemon.totals()["sessions_killed"] == 0
    # The consumer's in-process backlog: never more than the window's frames,
    # nor more bytes than the window plus one frame (a batch).
    assert r["peaks"]["frames"] <= WINDOW, r["peaks"]
    assert r["peaks"]["bytes"] <= WINDOW_BYTES + r["batch_bytes"], r["peaks"]
    # The sender kept pace with the consumer: it finished sending less than a
    # window of bytes (plus its one pending batch) before the consumer was done.
    lead = (WINDOW_BYTES + r["batch_bytes"]) / SIZE * sleep
    assert r["sent_at"] >= r["consumed_at"] - lead - 1.0, r
    # Bounded memory (both sides are in this process): generous. Under ASan,
    # whose quarantine keeps freed memory resident (CI's sanitized run: 25 MB),
    # RSS says nothing about what the code holds; the bounds above still do.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert r["rss_growth"] < 10 << 20, r["rss_growth"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_2006_slow_consumer_with_the_drain_thread(spread_daemon_factory):
    daemon = tight_daemon(spread_daemon_factory)
    n, sleep = N_2006, SLEEP_2006
    with flow.connect(daemon.address, "rx", groups=["g2006"]) as rx:
        r = run_2006(daemon, rx, sleep, n)
        check_2006(daemon, r, n, sleep)
        assert daemon.session("rx")["peak_messages"] <= LIMIT


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_2006_slow_consumer_reading_the_daemon_directly(spread_daemon_factory):
    # No ThreadedReceiver in the consumer: the daemon's queue for it is the
    # only buffer, and its peak proves the daemon-side bound.
    daemon = tight_daemon(spread_daemon_factory)
    n, sleep = N_2006, SLEEP_2006
    mbox = spread.connect(daemon.address, "rx")
    with flow.Session(mbox, drain=False, owns_mailbox=True) as rx:
        rx.join("g2006")
        r = run_2006(daemon, rx, sleep, n)
        check_2006(daemon, r, n, sleep)
        figures = daemon.session("rx")
        # The window's frames, plus a membership notice or two.
        assert figures["peak_messages"] <= WINDOW + 3, figures
        assert figures["peak_bytes"] <= WINDOW_BYTES + r["batch_bytes"] + 4096, figures


# ---- dead and hung members -------------------------------------------------------


def block(ch) -> flow.SendTimeout:
    """Sends until a send times out for want of credit; returns its error."""
    for i in range(100_000):
        try:
            ch.send(payload(i, 512), timeout=0.2)
        except flow.SendTimeout as e:
            return e
    raise AssertionError("the sender was never blocked")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["kill_session", "drop_session"])
def test_a_killed_member_frees_a_blocked_sender_within_half_a_second(spread_daemon_factory, how):
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=1000)
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "victim", groups=["gk"]) as victim,
    ):
        ch = tx.channel("gk", window=8, window_bytes=64 << 10)
        joined(tx, "gk", victim.private_group)
        err = block(ch)  # the victim's application never receives
        assert [lg.member for lg in err.laggards] == [victim.private_group]
        assert victim.private_group in str(err) and "behind" in str(err)
        killed_at: list[float] = []

        def kill():
            getattr(daemon, how)("victim")
            killed_at.append(time.monotonic())

        timer = threading.Timer(0.2, kill)
        timer.start()
        ch.send(b"freed", timeout=5)
        freed = time.monotonic()
        timer.join(5)
        assert freed - killed_at[0] < 0.5 + 0.25, freed - killed_at[0]
        ch.flush(timeout=2)  # nobody holds it any more


@pytest.mark.timeout(60)
def test_a_paused_member_is_untethered_then_catches_up(spread_daemon_factory):
    # stall_timeout 0.5 s; the paused member's daemon queue grows past the
    # window while it is untethered, so this daemon keeps the default limit.
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=1000)
    stall = 0.5
    n = 400
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "sleepy", groups=["gp"]) as sleepy,
    ):
        ch = tx.channel("gp", window=8, window_bytes=16 << 10, stall_timeout=stall)
        joined(tx, "gp", sleepy.private_group)
        got: list[bytes] = []

        def consume():
            while len(got) < n:
                m = sleepy.receive(timeout=20)
                if isinstance(m, flow.FlowMsg):
                    got.append(m.message)

        # sleepy answers tx's HELLO from its flow thread: until tx has that
        # (or a report), sleepy is "joining", and "foreign" after join_grace,
        # never waited for. A consumed warm-up makes it "active" first.
        ch.send(b"warm-up", timeout=5)
        assert wait_for(sleepy, flow.FlowMsg).message == b"warm-up"
        ch.wait_consumed(timeout=5)
        assert ch.members()[sleepy.private_group] == flow.ACTIVE
        daemon.pause_session("sleepy", requests=True, deliveries=True)
        th = threading.Thread(target=consume)
        th.start()
        start = time.monotonic()
        for i in range(n):
            ch.send(payload(i, 256), timeout=5)
        ch.flush(timeout=5)
        elapsed = time.monotonic() - start
        assert stall <= elapsed < stall + 0.5 + 0.25, elapsed
        ev = wait_for(tx, flow.MemberUntethered)
        assert ev.member == sleepy.private_group and ev.idle >= stall
        assert ch.members()[sleepy.private_group] == flow.UNTETHERED
        daemon.resume_session("sleepy")
        th.join(20)
        assert got == [payload(i, 256) for i in range(n)]  # caught up, nothing lost
        wait_for(tx, flow.MemberRetethered)
        assert ch.members()[sleepy.private_group] == flow.ACTIVE
        assert not daemon.session("sleepy")["killed"]


# ---- classic clients -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_classic_client_never_blocks_anyone(spread_daemon_factory):
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=100_000)
    with flow.connect(daemon.address, "tx") as tx, flow.connect(daemon.address, "rx") as rx:
        # A join without HELLO within join_grace of our own join might be a
        # speaker whose HELLO was ordered before our join: "joining" that long.
        ch = tx.channel("gc", window=8, window_bytes=64 << 10, join_grace=0.2)
        rx.join("gc")
        joined(tx, "gc", rx.private_group)
        classic = spread.connect(daemon.address, "classic")
        try:
            classic.join("gc")  # no HELLO: never waited for (after join_grace)
            joined(tx, "gc", classic.private_group)
            assert ch.members()[classic.private_group] in (flow.FOREIGN, flow.JOINING)
            # Twenty windows (frames, and 2.5 byte windows: batching cannot fit
            # them in one); the classic client reads nothing meanwhile.
            n = 20 * 8
            got = []

            def consume():  # the flow reader keeps up; only the classic one lags
                while len(got) < n:
                    m = rx.receive(timeout=10)
                    if isinstance(m, flow.FlowMsg):
                        got.append((m.message, m.msg_type))

            th = threading.Thread(target=consume)
            th.start()
            start = time.monotonic()
            for i in range(n):
                ch.send(payload(i), msg_type=i % 7, timeout=5)
            ch.flush(timeout=5)
            th.join(10)
            assert time.monotonic() - start < 5
            assert ch.members()[classic.private_group] == flow.FOREIGN
            assert got == [(payload(i), i % 7) for i in range(n)]
            # The classic client can read the group: framed messages with the
            # reserved msg_type.
            frames = 0
            while frames < ch.stats["frames"]:
                m = classic.receive()
                if isinstance(m, spread.RegularMsg) and m.sender == tx.private_group:
                    assert m.msg_type == flow.FLOW_MSG_TYPE
                    frames += 1
        finally:
            classic.disconnect()


@pytest.mark.timeout(60)
def test_a_classic_member_already_there_delays_a_new_sender_at_most_join_grace(
    spread_daemon_factory,
):
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=100_000)
    classic = spread.connect(daemon.address, "classic")
    try:
        classic.join("gg")
        with flow.connect(daemon.address, "tx") as tx:
            grace = 0.3
            ch = tx.channel("gg", window=4, window_bytes=64 << 10, join_grace=grace)
            start = time.monotonic()
            for i in range(200):  # 50 windows of 1 KiB messages
                ch.send(payload(i), timeout=5)
            ch.flush(timeout=5)
            assert time.monotonic() - start < grace + SLACK
            assert wait_for(tx, flow.MemberForeign).member == classic.private_group
            assert ch.members()[classic.private_group] == flow.FOREIGN
    finally:
        classic.disconnect()


@pytest.mark.timeout(30)
def test_classic_data_and_memberships_pass_through_unchanged(spread_daemon):
    with flow.connect(spread_daemon.address, "rx", groups=["gt"]) as rx:
        joined(rx, "gt", rx.private_group)
        with spread.connect(spread_daemon.address, "classic") as classic:
            classic.join("gt")
            m = joined(rx, "gt", classic.private_group)
            assert m.reason == spread.CAUSED_BY_JOIN
            classic.multicast(spread.AGREED_MESS, "gt", b"plain", 5)
            m = wait_for(rx, spread.RegularMsg)
            assert type(m) is not flow.FlowMsg
            assert (m.sender, m.groups, m.message, m.msg_type) == (
                classic.private_group,
                ("gt",),
                b"plain",
                5,
            )


# ---- batching and chunking ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_boundary_sizes_are_byte_exact_end_to_end(spread_daemon_factory):
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=64)
    largest_data = fr.DEFAULT_MAX_FRAME - fr.HEADER_SIZE  # the largest unchunked payload
    sizes = [0, 1, largest_data - 1, largest_data, largest_data + 1, 1 << 20, 16 << 20, 0, 2, 1]
    # The batch limit too: items that just fit one batch, and one more.
    sizes += [100] * 700 + [3 * largest_data + 7]
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "rx", groups=["gb"]) as rx,
    ):
        # A byte window smaller than the 1 MiB message: it is chunked, and
        # cannot deadlock.
        ch = tx.channel("gb", window=16, window_bytes=512 << 10)
        joined(tx, "gb", rx.private_group)
        sent = []
        for i, size in enumerate(sizes):
            data = bytes((i + j) % 251 for j in range(min(size, 251))) * (size // 251 + 1)
            sent.append((data[:size], i % 5 - 2))
        got = []

        def consume():
            while len(got) < len(sent):
                for m in rx.receive_batch(64, timeout=20):
                    if isinstance(m, flow.FlowMsg):
                        got.append((m.message, m.msg_type))

        th = threading.Thread(target=consume)
        th.start()
        half = len(sent) // 2
        for data, mt in sent[:half]:
            ch.send(data, mt, timeout=10)
        assert ch.send_many(sent[half:], timeout=10) == len(sent) - half
        ch.flush(timeout=10)
        th.join(30)
        assert len(got) == len(sent)
        for i, b in enumerate(sent):
            a = got[i]
            assert a == b, (i, len(a[0]), len(b[0]))
        stats = ch.stats
        assert stats["chunks"] > 0 and stats["batches"] > 0
        assert not daemon.session("rx")["killed"]


# ---- the API's edges -----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_session_api_edges(spread_daemon):
    with flow.connect(spread_daemon.address, "api") as s:
        with pytest.raises(ValueError, match="per-sender order"):
            s.channel("ge", service_type=spread.RELIABLE_MESS)
        with pytest.raises(ValueError):
            s.channel("ge", service_type=spread.AGREED_MESS | spread.SELF_DISCARD)
        with pytest.raises(ValueError):
            s.channel("ge", window=0)
        assert "ge" not in s._joined  # a bad channel joins nothing
        ch = s.channel("ge", window=4)
        joined(s, "ge", s.private_group)
        with pytest.raises(spread.Empty):
            wait = time.monotonic()
            while True:  # the join notice, then nothing
                s.receive(timeout=0.1)
                assert time.monotonic() - wait < 5
        ch.send_many([b"a", (b"b", 3)])
        ch.flush(timeout=5)
        ch.wait_consumed(timeout=5)  # only our own delivery counts
        assert "Channel" in repr(ch) and "drain" in repr(s)
        assert s.backlog()["frames"] == 0
    assert s.closed
    with pytest.raises(flow.SessionClosed):
        s.receive(timeout=0)
    with pytest.raises(flow.SessionClosed):
        ch.send(b"late")
    s.close()  # twice is fine
    with pytest.raises(TypeError):
        flow.Session(spread.connect(spread_daemon.address, bytes_names=True))


@pytest.mark.timeout(30)
def test_iteration_ends_at_close_and_bye_ends_the_stream(spread_daemon):
    rx = flow.connect(spread_daemon.address, "itrx", groups=["gi"])
    with flow.connect(spread_daemon.address, "ittx") as tx:
        ch = tx.channel("gi", window=4)
        joined(tx, "gi", rx.private_group)
        ended_box = []
        th = threading.Thread(target=lambda: ended_box.append(wait_for(rx, flow.StreamEnded)))
        th.start()
        ch.send_many([b"%d" % i for i in range(10)], timeout=5)
        ch.close(timeout=5)  # flushes first
        th.join(10)
        (ended,) = ended_box
        assert ended.stream == ch.stream and ended.last == ch.core.last_seq
    got = []
    closer = threading.Timer(0.3, rx.close)
    closer.start()
    for m in rx:  # ends when the session closes
        got.append(m)
    closer.join(5)
    assert rx.closed


@pytest.mark.timeout(30)
@pytest.mark.parametrize("max_batch_items", [1, None])
def test_with_batching_off_messages_do_not_wait_for_our_own_deliveries(
    spread_daemon_factory, max_batch_items
):
    # The drain thread's default in-flight bound (two frames of ours not
    # back yet) makes messages wait to leave together as a batch; with
    # max_batch_items=1 nothing can join a batch, and each message waited a
    # daemon round trip for nothing (9,600 msg/s unbatched).
    daemon = spread_daemon_factory(slow_reader_budget=0)
    with flow.connect(daemon.address, "tx") as tx:
        options = {} if max_batch_items is None else {"max_batch_items": max_batch_items}
        ch = tx.channel("gi", window=64, **options)
        ch.send(b"warm-up", timeout=5)
        ch.wait_consumed(timeout=5)  # (our own delivery is back: joined, counted)
        daemon.pause_session("tx", requests=False, deliveries=True)
        try:
            for i in range(10):
                ch.send(payload(i, 100), timeout=5)
            if max_batch_items == 1:
                assert ch.pending == 0 and ch.stats["frames"] == 1 + 10
            else:  # two in flight, the rest held to leave as one batch
                assert ch.pending == 8 and ch.stats["frames"] == 1 + 2
        finally:
            daemon.resume_session("tx")
        ch.wait_consumed(timeout=10)
        assert ch.pending == 0
