"""spread.aio: the asyncio front end, on asyncio's loop and uvloop's."""

from __future__ import annotations

import asyncio
import os
import random
import re
import resource
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import spread
import spread.aio as sa
from aio_helpers import LOOPS, MARKS, run
from sanitized import ASAN
from spread.testing import EmbeddedDaemon, free_port

pytestmark = MARKS


@pytest.fixture(params=LOOPS)
def loop_kind(request):
    return request.param


@pytest.fixture(scope="module")
def spread_daemon():
    """An embedded daemon whose slow-reader limit floods cannot reach: the
    embedded daemon forwards faster than any Python reader (or a C reader
    the scheduler leaves waiting), and these tests flood at full speed."""
    with EmbeddedDaemon(max_session_messages=10**7, max_session_bytes=1 << 30) as daemon:
        yield daemon


async def joined(address, group, name="", **kw):
    conn = await sa.connect(address, name, **kw)
    await conn.join(group)
    msg = await conn.receive(timeout=10)
    assert isinstance(msg, spread.MembershipMsg) and msg.group == group
    return conn


class CaughtUp:
    """A sender's rendezvous with a slower receiver: the sender asks for
    the first n messages to be held (ask), the receiver says how many it
    holds (held) each turn of its loop."""

    def __init__(self):
        self.want = 0
        self.event = threading.Event()

    def ask(self, n, timeout=10.0):
        self.event.clear()
        self.want = n
        self.event.wait(timeout)  # (a missed rendezvous only delays the next pause)

    def held(self, n):
        if n >= self.want:
            self.event.set()


def flood_in_thread(address, group, count, size=64, burst=0, caught_up=None):
    """A sync sender in a thread: count messages, msg_type = seq % 32768;
    with burst, a pause of 1 ms after each burst of that many (so that
    receivers wait, and time out, often). With caught_up (a CaughtUp),
    every 64th pause waits first for the receiver to hold everything sent:
    a receiver slower than the bursts (under ASan) never ran dry without
    it, and so never waited."""

    def send():
        with spread.connect(address, membership=0) as m:
            payload = b"f" * size
            for i in range(count):
                m.multicast(spread.FIFO_MESS, group, payload, i % 32768)
                if burst and i % burst == 0:
                    if caught_up is not None and i % (burst * 64) == 0:
                        caught_up.ask(i + 1)
                    time.sleep(0.001)  # pacing, not synchronisation

    t = threading.Thread(target=send, daemon=True)
    t.start()
    return t


def test_round_trip(spread_daemon, loop_kind):
    async def main():
        async with sa.connect(spread_daemon.address, "rt") as conn:
            assert isinstance(conn, sa.Connection)
            await conn.join("rt")
            notice = await conn.receive(timeout=10)
            assert isinstance(notice, spread.MembershipMsg)
            for i in range(10):
                assert await conn.multicast(spread.AGREED_MESS, "rt", b"m%d" % i, i) == 2
            await conn.multigroup_multicast(spread.AGREED_MESS, ["rt"], "multi", 99)
            got = []
            while len(got) < 11:
                got += await conn.receive_batch(4, timeout=10)
            assert [m.msg_type for m in got] == [*range(10), 99]
            assert got[-1].message == b"multi"
            assert conn.delivered == 12
            with pytest.raises(sa.WouldBlock):
                conn.receive_nowait()
            with pytest.raises(sa.WouldBlock):
                conn.receive_batch_nowait()
            with pytest.raises(TimeoutError):
                await conn.receive(timeout=0.01)
            conn.multicast_nowait(spread.AGREED_MESS, "rt", b"x", 5)
            n = 0
            async for msg in conn:
                assert msg.message == b"x"
                n += 1
                break
            assert n == 1
            with pytest.raises(spread.IllegalService):
                await conn.multicast(spread.AGREED_MESS | spread.REG_MEMB_MESS, "rt", b"")
            with pytest.raises(spread.IllegalGroup):
                await conn.join("")
        assert conn.closed

    run(loop_kind, main())


def test_connect_errors(loop_kind):
    async def main():
        with pytest.raises(spread.IllegalSpread):
            sa.connect("")  # checked at once, before anything runs
        with pytest.raises(ValueError):
            sa.connect("4803", "far-too-long-name")
        port = free_port()
        with pytest.raises(spread.CouldNotConnect):
            await sa.connect(f"{port}@127.0.0.1", timeout=5)

    run(loop_kind, main())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["receive", "receive_batch", "anext"])
def test_cancelled_receives_never_lose_or_reorder(spread_daemon, loop_kind, how):
    """wait_for(receive(), 1e-4) in a loop while a sender floods: every
    message arrives once, in order: 10^5 messages (so at least 10^5
    wait_for calls, thousands of them cancelled) for receive(), 10^4 for
    receive_batch() and __anext__."""
    count = 100_000 if how == "receive" else 10_000

    async def main():
        conn = await joined(spread_daemon.address, f"cx-{how}")
        burst = 32 if how == "receive" else 8  # (a pause of 1 ms after each burst)
        caught_up = CaughtUp()
        sender = flood_in_thread(
            spread_daemon.address, f"cx-{how}", count, burst=burst, caught_up=caught_up
        )
        got = []
        timeouts = 0
        it = conn.__aiter__()
        while len(got) < count:
            caught_up.held(len(got))
            if how == "receive":
                call = conn.receive()
            elif how == "receive_batch":
                call = conn.receive_batch(7)
            else:
                call = it.__anext__()
            try:
                r = await asyncio.wait_for(call, 1e-4)
            except asyncio.TimeoutError:
                timeouts += 1
                continue
            got.extend(r if isinstance(r, list) else [r])
        sender.join(10)
        assert [m.msg_type for m in got] == [i % 32768 for i in range(count)]
        with pytest.raises(TimeoutError):
            await conn.receive(timeout=0.05)  # no duplicate comes later
        await conn.aclose()
        return timeouts

    timeouts = run(loop_kind, main())
    print(f"{how}: {timeouts} cancelled waits")
    assert timeouts > 0  # (the scenario happened: waits were cancelled)


def test_cancelled_sends_are_all_or_nothing(spread_daemon, loop_kind):
    """Large messages through a small writer queue, each send awaited with a
    random time-out: the receiver sees exactly the sends that returned, in
    order and whole, and never one that was cancelled."""
    size, count = 60_000, 400

    async def main():
        rx = await joined(spread_daemon.address, "cs")
        tx = await sa.connect(spread_daemon.address, membership=0, max_send_bytes=3 * size)
        rng = random.Random(18)
        returned = []
        cancelled = 0
        for seq in range(count):
            payload = bytes([seq % 251]) * size
            try:
                await asyncio.wait_for(
                    tx.multicast(spread.FIFO_MESS, "cs", payload, seq),
                    rng.choice([0, 1e-5, 1e-4, 1e-3, 1]),
                )
                returned.append(seq)
            except asyncio.TimeoutError:
                cancelled += 1
            if seq % 16 == 0:  # keep the receiving side moving
                await asyncio.sleep(0)
        await tx.multicast(spread.FIFO_MESS, "cs", b"end", -1)
        got = []
        while True:
            m = await rx.receive(timeout=30)
            if m.msg_type == -1:
                break
            assert m.message == bytes([m.msg_type % 251]) * size  # whole, never a fragment
            got.append(m.msg_type)
        assert got == returned
        await tx._writer.flush(10)  # (a writer thread reports what it sent a little later)
        assert tx.queued_bytes == 0
        await tx.aclose()
        await rx.aclose()
        return cancelled, len(returned)

    cancelled, sent = run(loop_kind, main())
    assert cancelled and sent
    print(f"{cancelled} cancelled, {sent} sent")


# Over an external library (SPREAD_LIBRARY) there are no non-blocking sends:
# every send goes through the connection's writer thread (README, asyncio).
needs_nonblocking_sends = pytest.mark.skipif(
    bool(os.environ.get("SPREAD_LIBRARY")),
    reason="an external library has no non-blocking sends (the writer thread sends)",
)


def test_calls_never_awaited_take_and_send_nothing(spread_daemon, loop_kind):
    """A receive(), __anext__() or multicast() closed before it starts, or
    in a task cancelled before its first step, takes and sends nothing (on
    Cython they finish without a coroutine: spread/_aio_fast.pxi)."""

    async def main():
        conn = await joined(spread_daemon.address, "lazy")
        for call in (
            conn.receive(),
            conn.__aiter__().__anext__(),
            conn.multicast(spread.FIFO_MESS, "lazy", b"never", 1),
        ):
            call.close()
        tasks = [
            asyncio.ensure_future(conn.multicast(spread.FIFO_MESS, "lazy", b"never", 2)),
            asyncio.ensure_future(conn.receive()),
        ]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.cancelled() for t in tasks)
        for i in range(3):
            assert await conn.multicast(spread.FIFO_MESS, "lazy", b"sent", 10 + i) == 4
        got = [await conn.receive(timeout=10)]
        async for msg in conn:
            got.append(msg)
            if len(got) == 3:
                break
        assert [(m.message, m.msg_type) for m in got] == [(b"sent", 10 + i) for i in range(3)]
        with pytest.raises(TimeoutError):
            await conn.receive(timeout=0.05)
        await conn.aclose()

    run(loop_kind, main())


@needs_nonblocking_sends
def test_awaited_sends_wait_for_the_socket_with_nothing_queued(spread_daemon, loop_kind):
    """While the daemon reads none of the sender's requests, an awaited
    multicast (or multigroup_multicast) that finds the socket full waits,
    holding nothing in the writer queue (at most the unsent rest of the last
    message that went out partly); one cancelled there has sent nothing. A
    send behind *_nowait sends joins their queue instead, in order. Once the
    daemon reads again every send that returned arrives, in order, whole."""

    async def main():
        rx = await joined(spread_daemon.address, "aw")
        tx = await sa.connect(spread_daemon.address, membership=0, max_send_bytes=10**7)
        spread_daemon.pause_session(tx.private_group)
        payload = bytes(range(256)) * 40  # 10 KB
        returned = []
        try:
            seq = 0
            while True:  # until a send waits: the socket is full
                send = (
                    tx.multicast(spread.FIFO_MESS, "aw", payload, seq)
                    if seq % 2
                    else tx.multigroup_multicast(spread.FIFO_MESS, ["aw"], payload, seq)
                )
                try:
                    await asyncio.wait_for(send, 0.2)
                except asyncio.TimeoutError:
                    break
                returned.append(seq)
                seq += 1
                assert seq < 10_000, "the socket never filled"
            held = tx._writer._held or 0
            assert tx.queued_bytes == held and not tx._writer._q  # nothing queued for it
            waiting = asyncio.ensure_future(tx.multicast(spread.FIFO_MESS, "aw", payload, -2))
            await asyncio.sleep(0.05)
            assert not waiting.done() and tx.queued_bytes == held
            waiting.cancel()  # a cancelled wait: nothing sent
            with pytest.raises(asyncio.CancelledError):
                await waiting
            for _ in range(3):  # the queue takes these, and the awaited one behind them
                seq += 1
                tx.multicast_nowait(spread.FIFO_MESS, "aw", payload, seq)
                returned.append(seq)
            seq += 1
            await asyncio.wait_for(tx.multicast(spread.FIFO_MESS, "aw", payload, seq), 5)
            returned.append(seq)
            assert tx.queued_bytes == held + 4 * len(payload)
        finally:
            spread_daemon.resume_session(tx.private_group)
        await tx.multicast(spread.FIFO_MESS, "aw", b"end", -1)
        got = []
        while (m := await rx.receive(timeout=30)).msg_type != -1:
            assert m.message == payload
            got.append(m.msg_type)
        assert got == returned
        await tx.aclose()
        await rx.aclose()
        return len(returned)

    print(f"{run(loop_kind, main())} sends before the socket was full")


def test_nowait_sends_and_back_pressure(spread_daemon, loop_kind):
    """multicast_nowait queues the tail when the socket is full and raises
    WouldBlock once the queue is: nothing of that message is sent."""

    async def main():
        rx = await joined(spread_daemon.address, "bp")
        tx = await sa.connect(spread_daemon.address, membership=0, max_send_bytes=200_000)
        accepted = 0
        with pytest.raises(sa.WouldBlock):
            for seq in range(10_000):
                tx.multicast_nowait(spread.FIFO_MESS, "bp", bytes(100_000), seq)
                accepted += 1
        assert tx.queued_bytes > 0
        await tx.multicast(spread.FIFO_MESS, "bp", b"last", accepted)  # waits for space
        got = 0
        while got <= accepted:
            m = await rx.receive(timeout=30)
            assert m.msg_type == got
            got += 1
        await tx._writer.flush(10)  # (the writer's bookkeeping may trail the receiver)
        assert tx.queued_bytes == 0
        await tx.aclose()
        await rx.aclose()

    run(loop_kind, main())


def test_aclose_wakes_every_waiter_and_is_idempotent(spread_daemon, loop_kind):
    async def main():
        conn = await joined(spread_daemon.address, "ac")
        sub = conn.subscribe("other")

        async def iterate(source):
            async for _ in source:
                raise AssertionError("no message was sent")
            return "ended"

        waiters = [
            asyncio.ensure_future(conn.receive()),
            asyncio.ensure_future(conn.receive_batch(10)),
            asyncio.ensure_future(sub.receive()),
            asyncio.ensure_future(iterate(conn)),
            asyncio.ensure_future(iterate(sub)),
        ]
        await asyncio.sleep(0)  # (a yield: every waiter is waiting now)
        reader = conn._reader
        assert reader.reading
        closing = [asyncio.ensure_future(conn.aclose()) for _ in range(3)]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, sa.Closed) for r in results[:3]), results
        assert isinstance(results[0], spread.IllegalSession)
        assert results[3:] == ["ended", "ended"]
        await asyncio.gather(*closing)
        await conn.aclose()  # again: nothing to do
        assert not reader.reading and not conn._writer._writing
        assert conn.mailbox.closed
        with pytest.raises(sa.Closed):
            await conn.receive()
        with pytest.raises(sa.Closed):
            await conn.multicast(spread.FIFO_MESS, "ac", b"")
        with pytest.raises(sa.Closed):
            conn.subscribe("ac")

    fds_before = len(os.listdir("/proc/self/fd"))
    run(loop_kind, main())
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # receiver, socket, loop: all closed


@needs_nonblocking_sends
def test_aclose_removes_the_loop_callbacks_before_closing_descriptors(
    spread_daemon, loop_kind, monkeypatch
):
    """With a receive waiting (the reader registered) and a send queued on
    a socket the daemon does not read (the writer registered), aclose()
    wakes both with Closed, and when the mailbox is disconnected neither the
    receiver's descriptor nor the socket is watched by the loop any more
    (remove_reader/remove_writer, asked from the loop at that moment, find
    nothing to remove)."""
    seen = []
    disconnect = spread.Mailbox.disconnect

    def checked_disconnect(mbox):
        conn = watched[mbox]
        check = asyncio.run_coroutine_threadsafe(still_watched(conn), conn._reader.loop)
        seen.append(check.result(10))
        disconnect(mbox)

    async def still_watched(conn):
        """What the loop watches now: asyncio's remove_* say whether there
        was anything to remove (uvloop's always say None); and our flags."""
        loop = conn._reader.loop
        removed = loop.remove_reader(conn._reader._fd), loop.remove_writer(conn._writer._sock)
        return removed, conn._reader.reading, conn._writer._writing

    monkeypatch.setattr(spread.Mailbox, "disconnect", checked_disconnect)
    watched = {}

    async def main():
        conn = await joined(spread_daemon.address, "rm")
        watched[conn.mailbox] = conn
        spread_daemon.pause_session(conn.private_group)
        try:
            while not conn._writer._writing:  # until the socket is full
                conn.multicast_nowait(spread.FIFO_MESS, "nobody", bytes(60_000))
            receiving = asyncio.ensure_future(conn.receive())
            sending = asyncio.ensure_future(conn.multicast(spread.FIFO_MESS, "rm", b"x"))
            await asyncio.sleep(0)  # (a yield: both are waiting now)
            assert conn._reader.reading and not sending.done()
            await conn.aclose(timeout=0.1)
        finally:
            spread_daemon.resume_session(conn.private_group)
        for task in (receiving, sending):
            with pytest.raises(sa.Closed):
                await task
        return conn

    conn = run(loop_kind, main())
    assert conn.mailbox.closed
    nothing = (None, None) if loop_kind == "uvloop" else (False, False)
    assert seen == [(nothing, False, False)]


def test_aclose_flushes_what_was_queued(spread_daemon, loop_kind):
    async def main():
        rx = await joined(spread_daemon.address, "fl")
        tx = await sa.connect(spread_daemon.address, membership=0, max_send_bytes=10**7)
        for seq in range(100):
            tx.multicast_nowait(spread.FIFO_MESS, "fl", bytes(100_000), seq)
        await tx.aclose()
        got = [(await rx.receive(timeout=30)).msg_type for _ in range(100)]
        assert got == list(range(100))
        await rx.aclose()

    run(loop_kind, main())


def open_sessions(daemon, name):
    """The daemon's open sessions of a private name, once it has seen every
    close that was sent (at most 5 s: the daemon reads the client's socket
    and the control channel in one loop, in either order)."""
    deadline = time.monotonic() + 5
    while True:
        found = [g for g, f in daemon.sessions().items() if g.startswith(f"#{name}#") and f["open"]]
        if not found or time.monotonic() > deadline:
            return found


def test_cancelled_connect_leaves_no_session(spread_daemon, loop_kind):
    """Cancelled at every point of the handshake: once the cancelled
    connect() has returned, the daemon has no session of its name open
    (its session list), and the name is free again (the daemon refuses a
    name in use, so a session left behind would fail the next connect)."""

    async def main():
        outcomes = {"cancelled": 0, "finished": 0}
        for k in range(40):
            task = asyncio.ensure_future(sa.connect(spread_daemon.address, "cancelme"))
            for _ in range(k % 8):
                await asyncio.sleep(0)  # (yields: cancel at a different point each time)
            task.cancel()
            try:
                conn = await task
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
            else:
                outcomes["finished"] += 1
                await conn.aclose()
            assert open_sessions(spread_daemon, "cancelme") == []
            probe = spread.connect(spread_daemon.address, "cancelme")  # no ConnectionRejected
            probe.disconnect()
        return outcomes

    outcomes = run(loop_kind, main())
    assert outcomes["cancelled"] > 0


def test_cancelled_connect_to_a_silent_peer(loop_kind):
    """A peer that accepts and never answers: cancelling connect() mid-
    handshake ends it once the handshake's own time-out has; nothing leaks."""
    with socket.socket() as listener:
        port = free_port()
        listener.bind(("127.0.0.1", port))
        listener.listen()

        async def main():
            task = asyncio.ensure_future(sa.connect(f"{port}@127.0.0.1", timeout=0.5))
            peer, _ = await asyncio.get_running_loop().sock_accept(listener)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            peer.close()

        listener.setblocking(False)
        run(loop_kind, main())


def test_connection_loss_yields_everything_then_the_error(spread_daemon_factory, loop_kind):
    """The daemon kills a reader that does not keep up (its receiver told
    to block when its backlog is full): every message received before is
    yielded, in order, then ConnectionClosed."""
    daemon = spread_daemon_factory(max_session_messages=50)

    async def main():
        conn = await joined(
            daemon.address, "loss", prefetch=1, max_backlog_bytes=20_000, on_overflow="block"
        )
        sender = flood_in_thread(daemon.address, "loss", 3000, size=1000)
        await asyncio.get_running_loop().run_in_executor(None, sender.join, 30)
        got = []
        with pytest.raises((spread.ConnectionClosed, spread.NetErrorOnSession)):
            async for msg in conn:
                got.append(msg.msg_type)
        assert 0 < len(got) < 3000
        assert got == list(range(len(got)))
        # everything the receiver read before the end was yielded (and the join notice)
        assert conn._rx.stats["received"] == len(got) + 1
        with pytest.raises((spread.ConnectionClosed, spread.NetErrorOnSession)):
            await conn.receive()
        await conn.aclose()

    run(loop_kind, main())


FLOOD = textwrap.dedent("""
    import sys, spread
    address, group, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with spread.connect(address, membership=0) as m:
        payload = b"p" * 1024
        for i in range(count):
            m.multicast(spread.FIFO_MESS, group, payload, i % 32768)
        m.multicast(spread.FIFO_MESS, group, b"end", -1)
""")


@pytest.mark.slow  # a full-rate flood with a timing bound: run alone, once (CI)
def test_loop_lag_while_receiving_at_full_rate(spread_daemon, loop_kind):
    """A timer probe (1 ms period) while another process floods 1 KB
    messages as fast as it can and `async for` takes them: the loop's lag
    stays small: the median under 5 ms, the worst under 1 s (the issue's
    5 ms max is a benchmark figure on a shared machine)."""
    count = 100_000

    async def main():
        conn = await joined(spread_daemon.address, "lag")
        lags = []
        done = asyncio.Event()

        async def probe():
            loop = asyncio.get_running_loop()
            while not done.is_set():
                t = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - t - 0.001)

        # (the probe starts after the sender: starting a process is not ours to measure)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOOD, spread_daemon.address, "lag", str(count)
        )
        p = asyncio.ensure_future(probe())
        n = 0
        start = time.perf_counter()
        try:
            async for msg in conn:
                if msg.msg_type == -1:
                    break
                n += 1
        finally:
            elapsed = time.perf_counter() - start
            done.set()
            await p
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await conn.aclose()
        return n, elapsed, lags

    n, elapsed, lags = run(loop_kind, main())
    assert n == count
    lags.sort()
    worst, median = lags[-1] * 1e3, lags[len(lags) // 2] * 1e3
    print(f"{n / elapsed:.0f} msg/s; lag max {worst:.2f} ms, median {median:.3f} ms")
    # Measured on a loaded 2-core machine: Cython max 8-19 ms (65 ms once under
    # ASan in CI); cffi max 20-400 ms (single get_batch calls of its receiver
    # that stall; spread.aio's own callbacks are bounded), medians 0.1-0.5 ms
    # on both. The max is a benchmark figure (python -m spread.bench.aio), not
    # asserted here beyond "the loop never blocks": what this pins is that the
    # loop keeps turning (median) and is never held for long (max < 1 s).
    # Under ASan (CI's sanitized run, PYTHONMALLOC=malloc) one pause of 1.1 s
    # was seen there once (uvloop), before receives took from C at most once
    # per turn of the loop; the whole process runs several times slower
    # there (a cffi get_batch of 64 messages alone takes milliseconds), so
    # the bounds are 5 s and 25 ms; the lag figures belong to the benchmark.
    assert worst < (5000 if ASAN else 1000) and median < (25 if ASAN else 5)


def test_a_consumer_that_keeps_finding_messages_lets_other_tasks_run(spread_daemon, loop_kind):
    """20,000 messages already queued in the receiver: a task scheduled
    beside an `async for` that takes them runs long before they are all
    taken (receives take from C at most once per turn of the loop); before,
    the consumer never suspended while messages were there, and the loop
    starved for as long as a flood lasted."""
    from spread.aio.reader import MAX_MESSAGES

    count = 20_000

    async def main():
        conn = await joined(spread_daemon.address, "turns", prefetch=0)
        with spread.connect(spread_daemon.address, membership=0) as m:
            for _ in range(count):
                m.multicast(spread.FIFO_MESS, "turns", b"x")
        deadline = time.monotonic() + 30
        while conn._rx.stats["received"] < count:  # all in this process (C's queue)
            assert time.monotonic() < deadline, conn._rx.stats
            await asyncio.sleep(0.01)
        taken = 0
        seen_by_other = []

        async def other():
            seen_by_other.append(taken)

        task = asyncio.ensure_future(other())
        async for _msg in conn:
            taken += 1
            if taken == count:
                break
        await task
        await conn.aclose()
        return seen_by_other[0]

    taken_before_other_ran = run(loop_kind, main())
    assert taken_before_other_ran <= 2 * MAX_MESSAGES, taken_before_other_ran


def test_a_full_inbox_stops_the_reader_and_loses_nothing(spread_daemon, loop_kind):
    """The reader stays registered after a pump fills the inbox (the
    consumer is about to make room: no epoll_ctl pair per refill), and the
    loop's next call that finds it still full removes it: with nobody
    taking, the level-triggered descriptor never makes the loop spin. Then
    every message comes, in order."""
    from spread.aio.reader import BATCH_MAX

    count, prefetch = 300, 16

    async def main():
        conn = await joined(spread_daemon.address, "full", prefetch=prefetch)
        flood_in_thread(spread_daemon.address, "full", count).join(30)
        deadline = time.monotonic() + 30
        while conn._rx.stats["received"] < count:  # all in this process (C's queue)
            assert time.monotonic() < deadline, conn._rx.stats
            await asyncio.sleep(0.01)
        reader = conn._reader
        turns = 0
        while reader.reading:  # (one turn to fill, the next to find it full)
            turns += 1
            assert turns < 100, "a full inbox left the reader registered"
            await asyncio.sleep(0)
        for _ in range(100):  # paused it stays, nobody taking
            await asyncio.sleep(0)
            assert not reader.reading
        assert prefetch <= conn.pending <= prefetch + BATCH_MAX  # (soft: by one batch)
        got = []
        async for msg in conn:
            got.append(msg.msg_type)
            if len(got) == count:
                break
        await conn.aclose()
        return turns, got

    turns, got = run(loop_kind, main())
    assert got == list(range(count))
    print(f"paused {turns} turns after the inbox filled")


def test_idle_cpu_with_idle_subscriptions(spread_daemon, loop_kind):
    """Ten subscriptions and the connection's own stream, each with a task
    waiting in `async for`, and nothing sent: under 1 % of a CPU."""

    async def main():
        conn = await joined(spread_daemon.address, "idle")
        subs = [conn.subscribe(f"idle{i}") for i in range(10)]

        async def drain(source):
            async for _ in source:
                pass

        tasks = [asyncio.ensure_future(drain(s)) for s in [conn, *subs]]
        await asyncio.sleep(0.2)  # (settle: threads started, spare memory returned)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await asyncio.sleep(1.5)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await conn.aclose()
        await asyncio.gather(*tasks)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return cpu / (t1 - t0)

    share = run(loop_kind, main())
    print(f"idle CPU {share * 100:.3f} %")
    assert share < 0.01


def test_subscriptions_take_their_groups(spread_daemon, loop_kind):
    async def main():
        conn = await joined(spread_daemon.address, "sa")
        async with conn.subscribe("sb", join=True) as sub:
            notice = await sub.receive(timeout=10)
            assert isinstance(notice, spread.MembershipMsg) and notice.group == "sb"
            await conn.multicast(spread.FIFO_MESS, "sa", b"to a", 1)
            await conn.multicast(spread.FIFO_MESS, "sb", b"to b", 2)
            await conn.multigroup_multicast(spread.FIFO_MESS, ["sa", "sb"], b"both", 3)
            got_b = [m.msg_type for m in [await sub.receive(timeout=10) for _ in range(2)]]
            assert got_b == [2, 3]
            assert sub.delivered == 3 and sub.pending == 0
            assert (await conn.receive(timeout=10)).msg_type == 1
            # a message to sa and sb goes to the subscription, not the stream too
            with pytest.raises(TimeoutError):
                await conn.receive(timeout=0.05)
            assert repr(sub).startswith("<spread.aio.Subscription 'sb'")
        with pytest.raises(sa.Closed):
            await sub.receive()
        leave = await conn.receive(timeout=10)  # our leave of sb, after the subscription
        assert isinstance(leave, spread.MembershipMsg) and leave.group == "sb"
        await conn.aclose()

    run(loop_kind, main())


def test_a_flooded_subscription_does_not_starve_other_tasks(spread_daemon, loop_kind):
    async def main():
        conn = await sa.connect(spread_daemon.address, membership=0)
        await conn.join("flood")
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        sender = flood_in_thread(spread_daemon.address, "flood", 20_000)
        async with conn.subscribe("flood") as sub:
            n = 0
            async for _ in sub:
                n += 1
                if n == 20_000:
                    break
        stop.set()
        await t
        sender.join(10)
        await conn.aclose()
        return ticks

    assert run(loop_kind, main()) > 10


def test_from_mailbox_wraps_a_sync_mailbox(spread_mailbox_factory, loop_kind):
    m = spread_mailbox_factory(name="wrapped")
    m.join("wr")
    assert isinstance(m.receive(), spread.MembershipMsg)

    async def main():
        conn = sa.Connection.from_mailbox(m, own=False)
        assert conn.mailbox is m and conn.private_group == m.private_group
        await conn.multicast(spread.FIFO_MESS, "wr", b"hi", 7)
        assert (await conn.receive(timeout=10)).msg_type == 7
        m.multicast(spread.FIFO_MESS, "wr", b"sync", 8)  # sync sends stay allowed
        assert (await conn.receive(timeout=10)).msg_type == 8
        await conn.aclose()

    run(loop_kind, main())
    assert not m.closed  # own=False: the mailbox is still the caller's
    m.multicast(spread.FIFO_MESS, "wr", b"after", 9)
    assert m.receive().msg_type == 9
    with pytest.raises(TypeError):
        sa.Connection.from_mailbox(object())


def test_mixed_threads_sync_senders_and_aio_receive(spread_daemon, loop_kind):
    """Sync sends from other threads interleave with aio receives: every
    message is delivered, each sender's in order."""

    async def main():
        conn = await joined(spread_daemon.address, "mix")
        senders = [flood_in_thread(spread_daemon.address, "mix", 2000) for _ in range(3)]
        got: dict = {}
        for _ in range(6000):
            m = await conn.receive(timeout=30)
            got.setdefault(m.sender, []).append(m.msg_type)
        for s in senders:
            s.join(10)
        assert sorted(len(v) for v in got.values()) == [2000] * 3
        assert all(v == list(range(2000)) for v in got.values())
        await conn.aclose()

    run(loop_kind, main())


def test_bench_rows_run(spread_daemon):
    """spread.bench.aio's rows, on a few messages (the numbers are its own)."""
    from spread.bench import aio as bench

    rows = bench.run(spread_daemon.unix_address, 2000, 1024)
    assert [r[0] for r in rows][:3] == ["sync get_batch(1000)", "async for", "await receive()"]
    assert all(r[1] > 0 and r[3] > 0 for r in rows)  # (wall and CPU rates)


def test_a_connection_is_bound_to_its_loop(spread_daemon):
    holder = {}

    async def make():
        holder["conn"] = await sa.connect(spread_daemon.address)

    run("asyncio", make())

    async def use():
        with pytest.raises(RuntimeError, match="bound to the event loop"):
            await holder["conn"].receive(timeout=1)

    run("asyncio", use())
    holder["conn"].mailbox.disconnect()


def test_the_readme_example_runs(spread_daemon, loop_kind, capsys):
    """README.md's asyncio example, as printed there, on the embedded daemon."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("## asyncio: `spread.aio`") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(block, "README.md", "exec"), namespace)
    run(loop_kind, namespace["main"](spread_daemon.address))
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == ["<MembershipMsg"] * 3 + ["<RegularMsg"]
    assert "group='news'" in printed[0] and "groups=('chat',)" in printed[-1]
