"""spread.flow.aio: flow-controlled channels for asyncio, over the same
sans-IO core as the sync Session, on asyncio's loop and uvloop's. The
daemon's back-pressure budget is off and its session limit just above the
window where a test proves a bound (any overshoot gets a reader killed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time

import pytest

import spread
import spread.flow as flow
import spread.flow.aio as fa
from aio_helpers import LOOPS, MARKS, run
from test_flow_session import payload, tight_daemon

pytestmark = MARKS
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
SLACK = 1.5 if ASAN else 0.5  # past a kill (0.5 s, the bound)


@pytest.fixture(params=LOOPS)
def loop_kind(request):
    return request.param


@pytest.fixture
def daemon(spread_daemon_factory):
    """A daemon whose session limit (1000 messages) is far past any window
    here: for the tests that prove no bound on the daemon's queues."""
    return tight_daemon(spread_daemon_factory, max_session_messages=1000)


async def wait_for(session, kind, timeout=10.0, where=lambda m: True):
    """receive() until a message of kind (that satisfies where) comes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no {kind.__name__} within {timeout} s")
        try:
            m = await session.receive(timeout=left)
        except TimeoutError:
            continue
        if isinstance(m, kind) and where(m):
            return m


async def joined(session, group, member, timeout=10.0):
    return await wait_for(
        session,
        spread.MembershipMsg,
        timeout,
        lambda m: m.group == group and member in m.members,
    )


@contextlib.asynccontextmanager
async def pair(daemon, group, rx_name="rx", **options):
    """A sender "tx" with a channel on group (options), and a flow member
    rx_name in it, once the sender has seen it join."""
    async with (
        fa.connect(daemon.address, "tx") as tx,
        fa.connect(daemon.address, rx_name, groups=[group]) as rx,
    ):
        ch = await tx.channel(group, **options)
        await joined(tx, group, rx.private_group)
        yield tx, rx, ch


async def fill(ch, size=512, timeout=0.3):
    """Sends until a send finds no credit for timeout s; returns how many
    went and the SendTimeout."""
    sent = 0
    with pytest.raises(flow.SendTimeout) as e:
        while True:
            await ch.send(payload(sent, size), timeout=timeout)
            sent += 1
    return sent, e.value


@contextlib.asynccontextmanager
async def full_window(daemon, group, rx_name, window=4, window_bytes=16 << 10, size=512):
    """A pair whose channel waits for rx_name however long (no
    stall_timeout), its window filled with messages of size bytes (rx_name
    takes nothing): yields tx, rx, ch, how many sends went and the
    SendTimeout of the one that found no credit."""
    options = {"window": window, "window_bytes": window_bytes, "stall_timeout": None}
    async with pair(daemon, group, rx_name, **options) as (tx, rx, ch):
        sent, err = await fill(ch, size)
        yield tx, rx, ch, sent, err


class Ticker:
    """A task that counts loop turns of 1 ms and the longest gap between
    them: what a blocked loop would show."""

    def __init__(self):
        self.turns = 0
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.worst = max(self.worst, now - last)
            last = now
            self.turns += 1

    async def stop(self):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


def test_round_trip_and_message_attributes(daemon, loop_kind):
    async def main():
        async with (
            fa.connect(daemon.address, "tx") as tx,
            fa.connect(daemon.address, "rx", groups=["ga"]) as rx,
        ):
            assert isinstance(tx, fa.AsyncSession) and "open" in repr(tx)
            ch = await tx.channel("ga", window=8)
            await joined(tx, "ga", rx.private_group)
            # Counted at once: "joining" until its answer to our HELLO comes.
            assert ch.members()[rx.private_group] in (flow.JOINING, flow.ACTIVE)
            await ch.send(b"one", msg_type=5)
            assert await ch.send_many([b"two", (b"three", -2)], timeout=5) == 2
            got = []
            while len(got) < 3:
                got += [
                    m for m in await rx.receive_batch(16, timeout=10) if type(m) is flow.FlowMsg
                ]
            assert [(m.message, m.msg_type) for m in got] == [
                (b"one", 5),
                (b"two", 0),
                (b"three", -2),
            ]
            m = got[0]
            assert (m.sender, m.group, m.groups, m.stream) == (
                tx.private_group,
                "ga",
                ("ga",),
                ch.stream,
            )
            await ch.wait_consumed(timeout=10)
            assert ch.members() == {rx.private_group: flow.ACTIVE}
            await ch.close(timeout=5)
            ended = await wait_for(rx, flow.StreamEnded)
            assert ended.stream == ch.stream and ended.last == ch.core.last_seq
            with pytest.raises(ValueError):
                await ch.send(b"late")

    run(loop_kind, main())


def test_send_waits_for_credit_without_blocking_the_loop(daemon, loop_kind):
    async def main():
        async with full_window(daemon, "gw", "rx") as (tx, rx, ch, sent, err):
            assert [lg.member for lg in err.laggards] == [rx.private_group]
            assert rx.private_group in str(err)
            ticker = Ticker()
            blocked = asyncio.get_running_loop().create_task(ch.send(payload(sent, 512)))
            await asyncio.sleep(0.2)  # the ticker runs while the send waits
            assert not blocked.done() and ticker.turns >= 20
            got = []
            while len(got) < sent + 1:  # rx consumes: credit returns, the send goes
                for m in await rx.receive_batch(64, timeout=10):
                    if type(m) is flow.FlowMsg:
                        got.append(m.message)
            await asyncio.wait_for(blocked, 10)
            await ticker.stop()
            assert got == [payload(i, 512) for i in range(sent + 1)]
            # The loop kept turning (its worst gap is a benchmark figure).
            assert ticker.worst < (5.0 if ASAN else 0.5)

    run(loop_kind, main())


def test_a_cancelled_send_accepted_nothing(daemon, loop_kind):
    async def main():
        async with full_window(daemon, "gx", "rx", 2, 4 << 10, 1000) as (tx, rx, ch, accepted, _):
            with pytest.raises(spread.aio.WouldBlock):
                ch.send_nowait(payload(accepted, 1000))
            offered = ch.stats["offered"]
            for i in range(50):  # cancelled while waiting for credit
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ch.send(b"c%04d" % i + bytes(995)), 0.005)
            assert ch.stats["offered"] == offered
            got = []
            consumer = asyncio.get_running_loop().create_task(drain(rx, got, accepted + 1))
            await ch.send(b"last", timeout=10)
            await asyncio.wait_for(consumer, 10)
            assert got == [payload(i, 1000) for i in range(accepted)] + [b"last"]

    run(loop_kind, main())


async def drain(session, got, n, sleep=0.0, peaks=None):
    """Takes n FlowMsgs from session into got (sleeping after each)."""
    while len(got) < n:
        m = await session.receive(timeout=20)
        if type(m) is flow.FlowMsg:
            got.append(m.message)
            if peaks is not None:
                b = session.backlog()
                for k in peaks:
                    peaks[k] = max(peaks[k], b[k])
            if sleep:
                await asyncio.sleep(sleep)


def test_slow_async_consumer_bounds_the_backlog(spread_daemon_factory, loop_kind):
    # The 2006 case with an async consumer (a smaller run: the sync tests
    # carry the full-scale one): window 16 frames, session limit window + 8.
    window = 16
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=window + 8)
    n = 600

    async def main():
        async with pair(daemon, "gs", "rx", window=window, window_bytes=64 << 10) as (tx, rx, ch):
            got = []
            peaks = {"frames": 0, "bytes": 0}
            consumer = asyncio.get_running_loop().create_task(drain(rx, got, n, 0.002, peaks))
            for i in range(n):
                await ch.send(payload(i), timeout=20)
            await ch.flush(timeout=20)
            await asyncio.wait_for(consumer, 30)
            assert got == [payload(i) for i in range(n)]
            assert peaks["frames"] <= window
            assert peaks["bytes"] <= (64 << 10) + ch.core._batch_bytes
            await ch.wait_consumed(timeout=10)
        assert not daemon.session("rx")["killed"] and not daemon.session("tx")["killed"]
        assert daemon.totals()["sessions_killed"] == 0

    run(loop_kind, main())


def test_async_and_sync_sessions_speak_the_same_protocol(daemon, loop_kind):
    n = 300

    async def main():
        sync_rx = flow.connect(daemon.address, "syncrx", groups=["gi"])
        got_sync: list[bytes] = []

        def consume():
            while len(got_sync) < n:
                m = sync_rx.receive(timeout=20)
                if type(m) is flow.FlowMsg:
                    got_sync.append(m.message)

        th = threading.Thread(target=consume)
        th.start()
        try:
            async with (
                fa.connect(daemon.address, "atx") as tx,
                fa.connect(daemon.address, "arx", groups=["gi"]) as rx,
            ):
                ch = await tx.channel("gi", window=8, window_bytes=32 << 10)
                await wait_for(
                    tx,
                    spread.MembershipMsg,
                    10,
                    lambda m: {rx.private_group, sync_rx.private_group} <= set(m.members),
                )
                got: list[bytes] = []
                consumer = asyncio.get_running_loop().create_task(drain(rx, got, n))
                for i in range(n):
                    await ch.send(payload(i, 300), timeout=20)
                await asyncio.wait_for(consumer, 20)
                await ch.wait_consumed(timeout=20)
                assert got == [payload(i, 300) for i in range(n)]
                assert set(ch.members()) == {rx.private_group, sync_rx.private_group}
            th.join(20)
            assert got_sync == [payload(i, 300) for i in range(n)]
        finally:
            sync_rx.close()
            th.join(5)

    run(loop_kind, main())


def test_a_killed_member_frees_an_async_sender(daemon, loop_kind):
    async def main():
        async with full_window(daemon, "gk", "victim") as (tx, victim, ch, *_):
            loop = asyncio.get_running_loop()
            killed_at = []
            loop.call_later(
                0.1, lambda: (daemon.kill_session("victim"), killed_at.append(time.monotonic()))
            )
            await ch.send(b"freed", timeout=5)
            assert time.monotonic() - killed_at[0] < SLACK
            await ch.flush(timeout=5)
            assert not ch.members()

    run(loop_kind, main())


def test_stall_untethers_then_retethers(spread_daemon_factory, loop_kind):
    daemon = tight_daemon(spread_daemon_factory, max_session_messages=100_000)

    async def main():
        async with pair(
            daemon, "gu", "sleepy", window=4, window_bytes=16 << 10, stall_timeout=0.3
        ) as (tx, sleepy, ch):
            n = 200
            start = time.monotonic()
            for i in range(n):  # sleepy takes nothing: untethered after 0.3 s
                await ch.send(payload(i, 256), timeout=5)
            assert 0.3 <= time.monotonic() - start < 0.3 + SLACK + 1.0
            ev = await wait_for(tx, flow.MemberUntethered)
            assert ev.member == sleepy.private_group
            got = []
            await drain(sleepy, got, n)
            assert got == [payload(i, 256) for i in range(n)]
            assert (await wait_for(tx, flow.MemberRetethered)).member == sleepy.private_group

    run(loop_kind, main())


def test_close_wakes_waiters_and_ends_iteration(spread_daemon, loop_kind):
    async def main():
        s = await fa.connect(spread_daemon.address, "closer", groups=["gc"])
        got = []

        async def iterate():
            async for m in s:
                got.append(m)

        it = asyncio.get_running_loop().create_task(iterate())
        waiter = asyncio.get_running_loop().create_task(s.receive())
        await asyncio.sleep(0.05)
        await s.aclose()
        await s.aclose()  # idempotent
        await asyncio.wait_for(it, 5)  # async for ended
        with pytest.raises(flow.SessionClosed):
            await asyncio.wait_for(waiter, 5)
        with pytest.raises(flow.SessionClosed):
            await s.receive(timeout=0)
        with pytest.raises(flow.SessionClosed):
            await s.channel("gc")
        assert s.closed and s.conn.closed

    run(loop_kind, main())


def test_bad_arguments(spread_daemon, loop_kind):
    async def main():
        async with fa.connect(spread_daemon.address, "bad") as s:
            with pytest.raises(ValueError, match="per-sender order"):
                await s.channel("gb", service_type=spread.RELIABLE_MESS)
            with pytest.raises(TypeError):
                fa.AsyncSession(s.conn, bogus=1)
            with pytest.raises(TypeError):
                fa.AsyncSession(object())
            with pytest.raises(ValueError):
                await s.receive_batch(0)
            with pytest.raises(TimeoutError):
                await s.receive(timeout=0)

    run(loop_kind, main())


def test_cancelled_receives_never_lose_or_reorder(daemon, loop_kind):
    n = 3000

    async def main():
        async with pair(daemon, "gr", "rx", window=32) as (tx, rx, ch):
            got = []
            target = 0  # what the sender waits to see received
            drained = asyncio.Event()

            async def send():
                nonlocal target
                for i in range(n):
                    await ch.send(payload(i, 64), timeout=20)
                    if i % 50 == 49:
                        # Pacing: once the receiver has all (however slow it
                        # is: PyPy warming up), it finds nothing for 2 ms, and
                        # its receives time out there.
                        target = i + 1
                        drained.clear()
                        if len(got) < target:
                            await asyncio.wait_for(drained.wait(), 20)
                        await asyncio.sleep(0.002)

            sender = asyncio.get_running_loop().create_task(send())
            cancelled = 0
            while len(got) < n:
                try:
                    m = await asyncio.wait_for(rx.receive(), 1e-4)
                except asyncio.TimeoutError:
                    cancelled += 1
                    continue
                if type(m) is flow.FlowMsg:
                    got.append(m.message)
                    if len(got) >= target:
                        drained.set()
            await asyncio.wait_for(sender, 20)
            assert got == [payload(i, 64) for i in range(n)]
            assert cancelled > 0

    run(loop_kind, main())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("max_batch_items", [1, None])
def test_with_batching_off_messages_do_not_wait_for_our_own_deliveries(
    spread_daemon_factory, loop_kind, max_batch_items
):
    # As the sync session's test: the in-flight bound is for coalescing,
    # and with max_batch_items=1 there is nothing to coalesce.
    daemon = spread_daemon_factory(slow_reader_budget=0)

    async def main():
        async with fa.connect(daemon.address, "atx") as tx:
            options = {} if max_batch_items is None else {"max_batch_items": max_batch_items}
            ch = await tx.channel("gai", window=64, **options)
            await ch.send(b"warm-up", timeout=5)
            await ch.wait_consumed(timeout=5)
            daemon.pause_session("atx", requests=False, deliveries=True)
            try:
                for i in range(10):
                    await ch.send(payload(i, 100), timeout=5)
                if max_batch_items == 1:
                    assert ch.pending == 0 and ch.stats["frames"] == 1 + 10
                else:
                    assert ch.pending == 8 and ch.stats["frames"] == 1 + 2
            finally:
                daemon.resume_session("atx")
            await ch.wait_consumed(timeout=10)
            assert ch.pending == 0

    run(loop_kind, main())
