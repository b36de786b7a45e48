"""ThreadedReceiver: the reader never falls behind the daemon."""

from __future__ import annotations

import asyncio
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import spread

KB = b"k" * 1024

# Freed at once, without the garbage collector: CPython's reference counting.
# PyPy frees objects at its GC's next pass, so there the promptness is moot.
REFCOUNTED = pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="promptness without gc is reference counting"
)


def paced_sender(address, group, count, rate, stop, msg=KB):
    """Multicasts `count` messages at `rate` per second from its own thread."""

    def run():
        with spread.connect(address, membership=0) as s:
            start = time.monotonic()
            for i in range(count):
                if stop.is_set():
                    return
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                s.multicast(spread.AGREED_MESS, group, msg, i % 32768)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def joined(address, group, **kw):
    m = spread.connect(address, **kw)
    m.join(group)
    msg = m.receive()
    assert isinstance(msg, spread.MembershipMsg)
    return m


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_seed_scenario_with_receiver(spread_daemon_factory):
    """1 KB at 1000/s for 10 s; the reader sleeps 0.1 s per message while
    the sender runs, then reads the rest: nothing lost, no disconnect."""
    daemon = spread_daemon_factory()  # the default limit of 1000
    m = joined(daemon.address, "seed")
    rx = m.start_receiver()
    stop = threading.Event()
    sender = paced_sender(daemon.address, "seed", 10000, 1000, stop)
    got = []
    while sender.is_alive():
        got.append(m.receive())
        time.sleep(0.1)
    while len(got) < 10000:
        got.extend(rx.get_batch(1000, timeout=10))
    assert [g.msg_type for g in got] == [i % 32768 for i in range(10000)]
    assert all(g.message == KB for g in got)
    assert rx.stats["received"] == rx.stats["delivered"] == 10000
    assert rx.stats["peak_backlog_messages"] > 1000  # the daemon would have killed us
    m.multicast(spread.AGREED_MESS, m.private_group, b"still connected")
    assert m.receive().message == b"still connected"
    m.disconnect()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_seed_scenario_without_receiver_is_killed(spread_daemon_factory):
    """The same scenario with a plain receive() loop: the daemon kills it
    (no back-pressure budget, as Spread's daemon: the kill is the point)."""
    daemon = spread_daemon_factory(slow_reader_budget=0)
    m = joined(daemon.address, "seed")
    stop = threading.Event()
    sender = paced_sender(daemon.address, "seed", 10000, 1000, stop)
    got = 0
    with pytest.raises(spread.ConnectionClosed):
        while True:
            m.receive()
            got += 1
            if sender.is_alive():
                time.sleep(0.1)
    stop.set()
    sender.join(10)
    assert got < 10000
    m.disconnect()


# The sender paces itself at 5,000 messages per second: the embedded daemon
# forwards several times faster than a real Spread daemon, and a sender at
# full speed can outrun even a C reader that the scheduler leaves waiting.
SENDER_SCRIPT = textwrap.dedent("""
    import sys, time, spread
    address, group = sys.argv[1], sys.argv[2]
    chunks = [bytes([65 + i]) * 800 for i in range(5)]
    with spread.connect(address, membership=0) as m:
        seq = 0
        start = time.monotonic()
        for _ in range(1000):
            for chunk in chunks:
                m.multicast(spread.FIFO_MESS, group, chunk, seq)
                seq += 1
            delay = start + seq / 5000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
""")


def spin(stop):
    x = 0
    while not stop.is_set():
        x += 1


@pytest.mark.timeout(120)
def test_busy_process_receives_everything(spread_daemon_factory):
    """5,000 messages of ~800 bytes from another process while three Python
    threads keep this one's CPU busy."""
    daemon = spread_daemon_factory()
    m = spread.connect(daemon.address, membership=0)
    m.join("chunks")
    rx = m.start_receiver()
    stop = threading.Event()
    spinners = [threading.Thread(target=spin, args=(stop,), daemon=True) for _ in range(3)]
    for t in spinners:
        t.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SENDER_SCRIPT, daemon.address, "chunks"], timeout=60
        )
        assert proc.returncode == 0
        got = []
        while len(got) < 5000:
            got.extend(rx.get_batch(500, timeout=30))
    finally:
        stop.set()
        for t in spinners:
            t.join()
    assert [g.msg_type for g in got] == list(range(5000))
    assert [g.message[0] for g in got] == [65 + i % 5 for i in range(5000)]
    m.disconnect()


def test_connection_loss_returns_everything_then_the_error(spread_daemon_factory):
    daemon = spread_daemon_factory()
    if not daemon.embedded:
        pytest.skip("stops its daemon: an external one can't be stopped from here")
    m = spread.connect(daemon.address, membership=0)
    m.join("loss")
    rx = m.start_receiver()
    with spread.connect(daemon.address, membership=0) as s:
        for i in range(300):
            s.multicast(spread.AGREED_MESS, "loss", b"%d" % i, i)
        s.multicast(spread.AGREED_MESS, s.private_group, b"sync")
        assert s.receive().message == b"sync"  # the daemon has written all 300
    daemon.stop()
    got = []
    with pytest.raises(spread.ConnectionClosed):
        while True:
            got.append(rx.get(timeout=10).msg_type)
    assert got == list(range(300))
    with pytest.raises(spread.ConnectionClosed):  # and it stays raised
        rx.get(timeout=1)
    m.disconnect()


def test_close_while_blocked_and_back_to_plain_receive(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    assert rx.get_nowait is not None
    with pytest.raises(spread.Empty):
        rx.get(timeout=0.05)
    start = time.monotonic()
    rx.close()
    assert time.monotonic() - start < 2
    assert rx.closed
    with pytest.raises(spread.ReceiverClosed):
        rx.get(timeout=1)
    assert list(rx) == []
    m.multicast(spread.AGREED_MESS, m.private_group, b"plain again")
    assert m.receive().message == b"plain again"
    assert m.fileno() != rx.fileno()


def test_close_from_another_thread_wakes_a_blocked_consumer(spread_mailbox_factory):
    """A consumer waiting in get() with no time limit sees ReceiverClosed when
    another thread closes the receiver, instead of waiting forever."""
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    waiting, outcome = threading.Event(), []

    def consumer():
        waiting.set()
        try:
            rx.get()
        except spread.ReceiverClosed as e:
            outcome.append(e)

    t = threading.Thread(target=consumer)
    t.start()
    assert waiting.wait(5)
    time.sleep(0.05)  # not for correctness (the outcome is the same if close comes first):
    # it makes the close usually find the consumer asleep, the case under test
    rx.close()
    t.join(5)
    assert not t.is_alive()
    assert len(outcome) == 1


def test_closed_receiver_keeps_queued_messages(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    for i in range(5):
        m.multicast(spread.AGREED_MESS, m.private_group, b"q", i)
    deadline = time.monotonic() + 5
    while rx.qsize() < 5 and time.monotonic() < deadline:
        time.sleep(0.001)  # polling a condition with a deadline, not a fixed wait
    rx.close()
    assert [msg.msg_type for msg in rx] == [0, 1, 2, 3, 4]
    assert m.poll() == 0


def test_iteration_and_context_manager(spread_mailbox_factory):
    m = spread_mailbox_factory()
    with m.start_receiver() as rx:
        for i in range(3):
            m.multicast(spread.AGREED_MESS, m.private_group, b"it", i)
        seen = []
        for msg in rx:
            seen.append(msg.msg_type)
            if len(seen) == 3:
                break
    assert seen == [0, 1, 2] and rx.closed


def test_one_receiver_per_mailbox(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    with pytest.raises(ValueError):
        m.start_receiver()
    with pytest.raises(ValueError):
        spread.ThreadedReceiver(m, on_overflow="drop")
    rx.close()


def test_disconnect_stops_the_receiver(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    m.disconnect()
    assert rx.closed
    with pytest.raises(spread.ReceiverClosed):
        rx.get(timeout=1)


def test_overflow_disconnect_after_queued_messages(spread_daemon_factory):
    daemon = spread_daemon_factory()
    m = spread.connect(daemon.address, membership=0)
    m.join("of")
    rx = m.start_receiver(max_backlog_bytes=10 * 1024)
    with spread.connect(daemon.address, membership=0) as s:
        for i in range(300):
            s.multicast(spread.AGREED_MESS, "of", KB, i)
    # Nothing is taken until the drain thread has passed the limit: a consumer
    # taking messages as they come could keep the backlog under it (seen on a
    # loaded machine), which is not what this test is about.
    deadline = time.monotonic() + 10
    while rx.backlog_bytes < 10 * 1024 and time.monotonic() < deadline:
        time.sleep(0.01)
    got = []
    with pytest.raises(spread.BacklogOverflow):
        while True:
            got.append(rx.get(timeout=10).msg_type)
    # Everything queued is delivered first; a read may pass the limit by one
    # read-ahead (256 KiB) at most.
    assert got == list(range(len(got))) and 10 <= len(got) < 300
    assert m.closed
    with pytest.raises(spread.IllegalSession):
        m.multicast(spread.AGREED_MESS, "of", b"x")


def test_overflow_block_stops_draining(spread_daemon_factory):
    daemon = spread_daemon_factory()
    m = spread.connect(daemon.address, membership=0)
    m.join("blk")
    rx = m.start_receiver(max_backlog_bytes=10 * 1024, on_overflow="block")
    with spread.connect(daemon.address, membership=0) as s:
        for i in range(200):
            s.multicast(spread.AGREED_MESS, "blk", KB, i)
    deadline = time.monotonic() + 5
    while rx.stats["received"] < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    limit = 10 * 1024 + 256 * 1024 + 1024  # the limit, plus one read-ahead at most
    assert rx.stats["peak_backlog_bytes"] <= limit
    got = [msg.msg_type for msg in (rx.get(timeout=10) for _ in range(200))]
    assert got == list(range(200))  # the rest waited in the daemon
    assert rx.stats["peak_backlog_bytes"] <= limit
    m.disconnect()


def test_many_receivers_in_one_process(spread_daemon_factory):
    daemon = spread_daemon_factory()
    boxes = [spread.connect(daemon.address, membership=0) for _ in range(20)]
    receivers = []
    for b in boxes:
        b.join("many")
        receivers.append(b.start_receiver())
    with spread.connect(daemon.address, membership=0) as s:
        for i in range(100):
            s.multicast(spread.AGREED_MESS, "many", b"m", i)
    for rx in receivers:
        got = []
        while len(got) < 100:
            got.extend(rx.get_batch(100, timeout=10))
        assert [g.msg_type for g in got] == list(range(100))
        assert rx.stats["received"] == 100 and rx.stats["drain_rate"] >= 0
    for b in boxes:
        b.disconnect()


def test_receive_and_fileno_through_receiver_with_selectors(spread_mailbox_factory):
    m = spread_mailbox_factory()
    m.start_receiver()
    sel = selectors.DefaultSelector()
    sel.register(m, selectors.EVENT_READ)
    assert sel.select(0) == []
    assert m.poll() == 0
    m.multicast(spread.AGREED_MESS, m.private_group, b"sel")
    assert sel.select(5)
    assert m.poll() > 0
    assert m.receive().message == b"sel"
    assert sel.select(0) == []  # readable exactly while messages are queued
    sel.close()


def test_asyncio_add_reader(spread_mailbox_factory):
    m = spread_mailbox_factory()
    m.start_receiver()

    async def main():
        loop = asyncio.get_running_loop()
        got = asyncio.Queue()
        loop.add_reader(m.fileno(), lambda: got.put_nowait(m.receive()))
        try:
            for i in range(3):
                m.multicast(spread.AGREED_MESS, m.private_group, b"aio", i)
            return [(await asyncio.wait_for(got.get(), 5)).msg_type for _ in range(3)]
        finally:
            loop.remove_reader(m.fileno())

    assert asyncio.run(main()) == [0, 1, 2]


def test_sending_from_threads_while_receiving(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()

    def send(k):
        for i in range(100):
            m.multicast(spread.FIFO_MESS, m.private_group, b"%d" % k, i)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    got = []
    while len(got) < 400:
        got.extend(rx.get_batch(400, timeout=10))
    for t in threads:
        t.join()
    for k in range(4):
        assert [g.msg_type for g in got if g.message == b"%d" % k] == list(range(100))


def test_ctrl_c_interrupts_get(spread_mailbox_factory):
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    main = threading.get_ident()
    timer = threading.Timer(0.2, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        rx.get()
    timer.join()
    m.multicast(spread.AGREED_MESS, m.private_group, b"after")
    assert rx.get(timeout=5).message == b"after"


EXIT_SCRIPT = textwrap.dedent("""
    import sys, spread
    m = spread.connect(sys.argv[1])
    rx = m.start_receiver()
    m.join("exit")
    print("started", flush=True)
""")


def test_interpreter_exit_with_a_running_receiver(spread_daemon):
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, spread_daemon.address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "started"


def test_several_consumer_threads_share_one_receiver(spread_mailbox_factory):
    """Every message goes to exactly one consumer."""
    m = spread_mailbox_factory()
    rx = m.start_receiver()
    count = 4000
    taken = [[] for _ in range(4)]

    def consume(k):
        while True:
            try:
                batch = rx.get_batch(50, timeout=2)
            except spread.Empty:
                return
            taken[k].extend(msg.msg_type for msg in batch)

    threads = [threading.Thread(target=consume, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for i in range(count):
        m.multicast(spread.FIFO_MESS, m.private_group, b"c", i % 30000)
    for t in threads:
        t.join(30)
    everything = sorted(x for part in taken for x in part)
    assert everything == list(range(count))
    for part in taken:
        assert part == sorted(part)  # each consumer sees its share in order


@REFCOUNTED
def test_disconnect_releases_everything_without_the_garbage_collector(spread_daemon):
    """A disconnected mailbox and its receiver are freed by reference counts
    alone (no cycle between them): connect + start_receiver + disconnect in
    a loop never runs out of descriptors, with the collector off."""
    import subprocess
    import sys
    import textwrap

    child = textwrap.dedent(f"""
        import gc, resource, weakref, spread
        gc.disable()
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
        for i in range(400):
            m = spread.connect({spread_daemon.address!r})
            rx = m.start_receiver()
            m.disconnect()
        refs = weakref.ref(m), weakref.ref(rx)
        del m, rx
        assert refs[0]() is None and refs[1]() is None, "kept alive by a cycle"
        print("ok", flush=True)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_a_new_receiver_may_start_once_the_closed_one_is_drained(spread_mailbox_factory):
    m = spread_mailbox_factory(membership=0)
    rx = m.start_receiver()
    rx.close()
    rx2 = m.start_receiver()  # no other mailbox call in between
    assert rx2 is not rx and not rx2.closed
    rx2.close()


@REFCOUNTED
def test_a_dropped_mailbox_with_a_running_receiver_is_freed_at_once(spread_daemon):
    """No disconnect(): dropping the last reference to a mailbox and its
    running receiver frees both (socket, drain thread) at once, with the
    collector off; either may be dropped first, and a receiver keeps its
    mailbox alive while it is referenced (the one-liner keeps working)."""
    child = textwrap.dedent(f"""
        import gc, os, resource, weakref, spread
        gc.disable()
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
        address = {spread_daemon.address!r}
        def fd_open(fd):
            return os.path.exists(f"/proc/self/fd/{{fd}}")
        for i in range(300):
            m = spread.connect(address)
            rx = m.start_receiver()
            fds = m._descriptor, m.fileno()  # the socket, the receiver's ready descriptor
            refs = weakref.ref(m), weakref.ref(rx)
            if i % 2:
                del m, rx
            else:
                del rx, m
            assert refs[0]() is None and refs[1]() is None, "kept alive by a cycle"
            assert not any(map(fd_open, fds)), "a descriptor outlived its mailbox"
        assert len(os.listdir("/proc/self/task")) == 1, "a drain thread outlived its receiver"
        # The receiver alone holds its mailbox: the connection lives on.
        rx = spread.connect(address, "solo").start_receiver()
        rx.mailbox.join("dropped")
        assert rx.get(timeout=10).group == "dropped"
        # The mailbox alone holds its receiver's state: receive() goes on through it.
        m = spread.connect(address, "keeper")
        m.start_receiver()
        m.join("kept")
        assert m.receive().group == "kept"
        print("ok", flush=True)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("take", ["get_batch", "receive"])
def test_queued_messages_keep_their_own_sender_and_groups(spread_mailbox_factory, take):
    # Consumers build a message like the last one's from cached names: runs
    # of one sender and group broken by another sender, a second group and a
    # message to two groups must each come out with their own.
    m = spread_mailbox_factory()
    a = spread_mailbox_factory(membership=False)
    b = spread_mailbox_factory(membership=False)
    for group in ("qa", "qb"):  # joined before anyone sends: each join's notice
        m.join(group)
        assert isinstance(m.receive(), spread.MembershipMsg)
    rx = m.start_receiver()
    plan = [(a, ["qa"])] * 3 + [(b, ["qa"]), (a, ["qa"]), (a, ["qb"]), (a, ["qa", "qb"])]
    plan += [(a, ["qa"])] * 2 + [(b, ["qb"])] * 2 + [(a, ["qa"])]
    for i, (who, groups) in enumerate(plan):
        if len(groups) == 1:
            who.multicast(spread.FIFO_MESS, groups[0], b"%d" % i, i)
        else:
            who.multigroup_multicast(spread.FIFO_MESS, groups, b"%d" % i, i)
    want = [(who.private_group, tuple(groups), i) for i, (who, groups) in enumerate(plan)]
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(plan) and time.monotonic() < deadline:
        batch = rx.get_batch(4, timeout=5) if take == "get_batch" else [m.receive()]
        got += [
            (msg.sender, msg.groups, msg.msg_type)
            for msg in batch
            if isinstance(msg, spread.RegularMsg)
        ]
    # From two senders the order is per sender (FIFO): compare each sender's.
    for who in (a, b):
        mine = [g for g in got if g[0] == who.private_group]
        assert mine == [w for w in want if w[0] == who.private_group]
    assert len(got) == len(plan)
    rx.close()
