"""Recovery on the embedded daemon (issue 17's tests): flow sessions that
lose their connection (the daemon kills them, drops them, or restarts)
reconnect, join again and get what they missed from the senders'
retention: every message once, in order, or a DataLoss naming exactly what
the retention no longer held. Every wait is bounded (receive and send
timeouts, joins); nothing sleeps to synchronise."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time

import pytest

import spread
import spread.flow as flow
import spread.flow.aio as flow_aio
from aio_helpers import LOOPS, run
from spread.flow import _frame as fr
from spread.testing import EmbeddedDaemon
from test_flow_session import joined, wait_for

FAST = flow.Backoff(first=0.02, most=0.2, attempts=200)
WINDOW = 16


def payload(i: int, size: int = 200) -> bytes:
    head = b"%08d:" % i
    return head + b"x" * (size - len(head))


def number(m: flow.FlowMsg) -> int:
    return int(bytes(m.message[:8]))


def gone(session, group, member, timeout=10.0):
    return wait_for(
        session,
        spread.MembershipMsg,
        timeout,
        lambda m: m.group == group and member not in m.members,
    )


class Collector:
    """Receives a session's flow messages on a thread until n have come:
    counts Reconnected events and DataLoss, and calls on_message(count)."""

    def __init__(self, session, n: int, on_message=lambda count: None, timeout: float = 30):
        self.session = session
        self.n = n
        self.got: list[int] = []
        self.events: list = []
        self.error: BaseException | None = None
        self._on = on_message
        self._timeout = timeout
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._timeout
        try:
            while len(self.got) < self.n:
                m = self.session.receive(timeout=max(0.0, deadline - time.monotonic()))
                with self._cond:
                    if isinstance(m, flow.FlowMsg):
                        self.got.append(number(m))
                    elif isinstance(m, flow.FlowEvent):
                        self.events.append(m)
                    self._cond.notify_all()
                if isinstance(m, flow.FlowMsg):
                    self._on(len(self.got))
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e
        finally:
            with self._cond:
                self.n = -1  # done
                self._cond.notify_all()

    def wait(self, predicate, timeout: float = 30) -> bool:
        """Waits until predicate(self) holds (False once the collector ended)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self.n < 0 or predicate(self), timeout)
            assert ok, "the collector waited too long"
            return self.n >= 0

    def join(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"stuck at {len(self.got)} of {self.n}"
        if self.error is not None:
            raise self.error

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def send_all(ch, first: int, n: int, timeout: float = 20) -> None:
    for i in range(first, first + n):
        ch.send(payload(i), timeout=timeout)
    ch.flush(timeout=timeout)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "drain",
    [True, pytest.param(False, marks=pytest.mark.slow)],  # (CI's other interpreters: one)
    ids=["drain", "direct"],
)
def test_a_receiver_killed_at_50_points_reconnects_and_gets_everything_once(
    spread_daemon_factory, drain
):
    # The kill limit is armed just above two windows (slow_reader_budget=0:
    # a real daemon's behaviour): a catch-up that put more than that in
    # front of the receiver would get it killed for not reading.
    limit = 2 * WINDOW + 24
    daemon = spread_daemon_factory(slow_reader_budget=0, max_session_messages=limit)
    n = 3000
    rnd = random.Random(17)
    points = sorted(rnd.sample(range(20, n - 200), 50))
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "rx", reconnect=FAST, drain=drain, groups=["gk"]) as rx,
    ):
        # (retention for the whole stream: the sender is not held while rx
        # is away, and sends thousands of frames a second)
        ch = tx.channel(
            "gk",
            window=WINDOW,
            window_bytes=64 << 10,
            retention_frames=n,
            retention_bytes=64 << 20,
            max_batch_items=4,
        )
        joined(tx, "gk", rx.private_group)

        col = Collector(rx, n, timeout=100)
        kills = []

        def killer() -> None:
            # Kill at each point, once the session is back from the last kill.
            for i, point in enumerate(points):
                if not col.wait(
                    lambda c, i=i, point=point: (
                        len(c.got) >= point and len(c.of(flow.Reconnected)) >= i
                    )
                ):
                    return
                daemon.kill_session("rx")
                kills.append(point)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        for i in range(n):
            # (at most 100 messages ahead of rx: the kills spread over the stream)
            col.wait(lambda c, i=i: len(c.got) >= i - 100)
            ch.send(payload(i), timeout=30)
        ch.flush(timeout=30)
        col.join(100)
        th.join(10)
        assert col.got == list(range(n))  # once each, in order
        assert len(kills) == 50  # (each after the point, when the session was back)
        for _ in range(len(col.of(flow.Reconnected)), 50):  # the last may come later
            wait_for(rx, flow.Reconnected)
        assert not col.of(flow.DataLoss)
        totals = daemon.totals()
        # never killed for not reading: only the 50 control kills, and no
        # queue ever longer than the limit (two windows and a margin)
        assert totals["sessions_killed"] == 50
        assert totals["peak_messages"] <= limit
        assert ch.stats["resent"] > 0


@pytest.mark.timeout(60)
def test_retention_exceeded_is_data_loss_of_the_exact_range_and_nothing_else(
    spread_daemon_factory,
):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    slow = flow.Backoff(first=1.0, most=1.0, jitter=0.0, attempts=20)
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "rx", reconnect=slow, groups=["gr"]) as rx,
    ):
        ch = tx.channel("gr", window=WINDOW, max_inflight=None, retention_frames=16)
        joined(tx, "gr", rx.private_group)
        send_all(ch, 0, 10)
        seen = [wait_for(rx, flow.FlowMsg) for _ in range(10)]
        last_seen = seen[-1].seq
        daemon.kill_session("rx")
        gone(tx, "gr", rx.private_group)  # tx is not held for it now
        send_all(ch, 10, 100)  # (mostly one frame each: nobody to wait for)
        low = ch._ch.store.low()
        assert low > last_seen + 1  # the ring has forgotten some
        loss = wait_for(rx, flow.DataLoss, timeout=20)
        assert (loss.group, loss.sender, loss.first, loss.last) == (
            "gr",
            tx.private_group,
            last_seen + 1,
            low - 1,
        )
        # Then every message of the frames retained, in order, to the last
        # (a frame may hold several: the sender batches while its
        # connection's writer is busy, or once rx is back and counted).
        rest = []
        while not rest or rest[-1][0] < 109:
            m = rx.receive(timeout=10)
            assert not isinstance(m, flow.DataLoss), m
            if isinstance(m, flow.FlowMsg):
                rest.append((number(m), m.seq))
        numbers = [n for n, _ in rest]
        assert rest[0][1] == low and numbers == list(range(numbers[0], 110))
        assert {seq for _, seq in rest} == set(range(low, ch._ch.last_seq + 1))


@pytest.mark.timeout(60)
def test_a_senders_session_killed_with_frames_in_its_socket_loses_nothing(
    spread_daemon_factory,
):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    with (
        flow.connect(daemon.address, "tx", reconnect=FAST) as tx,
        flow.connect(daemon.address, "rx", groups=["gs"]) as rx,
    ):
        ch = tx.channel("gs", window=4096, window_bytes=8 << 20, max_inflight=None)
        joined(tx, "gs", rx.private_group)
        send_all(ch, 0, 20)
        col = Collector(rx, 220)
        # The daemon stops reading tx: what it sends next sits in its socket
        # when the daemon kills it, and never reaches anyone.
        daemon.pause_session("tx", requests=True)
        for i in range(20, 220):
            ch.send(payload(i), timeout=10)
        ch.flush(timeout=10)
        daemon.kill_session("tx")
        col.join(40)
        assert col.got == list(range(220))
        assert not col.of(flow.DataLoss)
        assert wait_for(tx, flow.Reconnected).attempts >= 1


@pytest.mark.timeout(90)
def test_the_daemon_restarted_on_the_same_port_mid_stream_loses_nothing(spread_daemon_factory):
    first = spread_daemon_factory(slow_reader_budget=0)
    port = first.port
    n = 600
    with (
        flow.connect(first.address, "tx", reconnect=FAST) as tx,
        flow.connect(first.address, "rx", reconnect=FAST, groups=["gd"]) as rx,
    ):
        # (one message a frame: the stream is still under way at the restart)
        ch = tx.channel("gd", window=WINDOW, retention_frames=n, max_batch_items=1)
        joined(tx, "gd", rx.private_group)
        restarted = threading.Event()
        second: list = []

        def restart(count: int) -> None:
            if count == 200:
                first.stop()
                second.append(EmbeddedDaemon(port).start())
                restarted.set()

        col = Collector(rx, n, restart, timeout=60)
        send_all(ch, 0, n, timeout=40)
        col.join(60)
        try:
            assert restarted.is_set()
            assert col.got == list(range(n))
            assert not col.of(flow.DataLoss)
            assert len(col.of(flow.Reconnected)) == 1
        finally:
            for d in second:
                d.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("store", [False, True], ids=["new-stream", "retention-store"])
def test_a_restarted_sender_process(spread_daemon_factory, store):
    """Without a store, the old stream ends unclean and a new one starts;
    with one (here a ring the "process" keeps), the stream resumes: 0 loss."""
    daemon = spread_daemon_factory(slow_reader_budget=0)
    ring = flow.RetentionRing(1000) if store else True
    stream = 0x5EED if store else None
    with flow.connect(daemon.address, "rx", groups=["gp"]) as rx:
        tx1 = flow.connect(daemon.address, "tx", reconnect=False)
        ch1 = tx1.channel("gp", stream=stream, window=4096, max_inflight=None, retention=ring)
        joined(tx1, "gp", rx.private_group)
        send_all(ch1, 0, 30)
        daemon.pause_session("tx", requests=True)
        for i in range(30, 40):  # in its socket when the process dies
            ch1.send(payload(i), timeout=5)
        ch1.flush(timeout=5)
        old_stream = ch1.stream
        daemon.kill_session("tx")
        with pytest.raises(spread.SpreadError):  # reconnect=False: the loss is its error
            wait_for(tx1, flow.Reconnected, timeout=10)
        tx1.close()
        with flow.connect(daemon.address, "tx") as tx2:
            ch2 = tx2.channel("gp", stream=stream, window=64, retention=ring)
            send_all(ch2, 100, 5)
            got, events = [], []
            while len(got) < (45 if store else 35):
                m = rx.receive(timeout=10)
                if isinstance(m, flow.FlowMsg):
                    got.append(number(m))
                elif isinstance(m, flow.FlowEvent):
                    events.append(m)
            if store:
                assert got == list(range(40)) + list(range(100, 105))
                assert not [e for e in events if isinstance(e, (flow.DataLoss, flow.StreamEnded))]
            else:
                assert got == list(range(30)) + list(range(100, 105))
                ended = [e for e in events if isinstance(e, flow.StreamEnded)]
                assert [(e.stream, e.clean) for e in ended] == [(old_stream, False)]


@pytest.mark.timeout(30)
def test_on_loss_raise_raises_data_loss_in_its_place(spread_daemon_factory):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    slow = flow.Backoff(first=0.5, most=0.5, jitter=0.0, attempts=20)
    with (
        flow.connect(daemon.address, "tx") as tx,
        flow.connect(daemon.address, "rx", reconnect=slow, on_loss="raise", groups=["gl"]) as rx,
    ):
        ch = tx.channel("gl", window=WINDOW, max_inflight=None, retention=False)
        joined(tx, "gl", rx.private_group)
        send_all(ch, 0, 3)
        assert [number(wait_for(rx, flow.FlowMsg)) for _ in range(3)] == [0, 1, 2]
        daemon.kill_session("rx")
        gone(tx, "gl", rx.private_group)
        send_all(ch, 3, 5)  # lost: rx is away and nothing is retained
        with pytest.raises(flow.DataLoss) as e:
            wait_for(rx, flow.FlowMsg)
        assert (e.value.first, e.value.last) == (4, 8) and e.value.code == flow.FLOW_DATA_LOSS
        send_all(ch, 8, 2)
        assert [number(wait_for(rx, flow.FlowMsg)) for _ in range(2)] == [8, 9]


@pytest.mark.timeout(30)
def test_reconnect_gives_up_after_its_attempts_naming_the_last_error(spread_daemon_factory):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    few = flow.Backoff(first=0.01, most=0.02, attempts=3)
    rx = flow.connect(daemon.address, "rx", reconnect=few, groups=["gg"])
    tx = flow.connect(daemon.address, "tx", reconnect=flow.Backoff(first=5.0, most=5.0))
    try:
        ch = tx.channel("gt", window=1, max_inflight=None)
        joined(tx, "gt", tx.private_group)
        ch.send(b"a", timeout=5)
        ch.wait_consumed(timeout=5)
        daemon.stop()
        with pytest.raises(flow.SendTimeout, match="reconnecting"):
            for _ in range(100_000):  # accepted and held until the accumulator is full
                ch.send(b"c" * 1000, timeout=0.2)
        with pytest.raises(flow.ReconnectFailed) as e:
            wait_for(rx, flow.Reconnected, timeout=20)
        assert e.value.attempts == 3
        assert isinstance(e.value.last_error, spread.SpreadError)
    finally:
        rx.close()
        tx.close()


def test_reconnect_options_are_checked(spread_daemon):
    mbox = spread.connect(spread_daemon.address, "opts", membership=1)
    try:
        with pytest.raises(ValueError, match="connect="):
            flow.Session(mbox, reconnect=True)
        with pytest.raises(TypeError):
            flow.Session(mbox, reconnect=3, connect=lambda: mbox)
        with pytest.raises(ValueError, match="on_loss"):
            flow.Session(mbox, on_loss="ignore")
    finally:
        mbox.disconnect()
    assert fr.NACK in fr.KINDS and fr.GAP in fr.KINDS


@pytest.mark.timeout(120)
def test_the_recovery_benchmark_runs_and_loses_nothing():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, os.path.join(root, "bench", "recovery.py"), "--messages", "500"]
        + ["--repeat", "1", "--hold", "0.2"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert out.returncode == 0, out.stderr
    head, row = out.stdout.strip().splitlines()[-2:]
    assert head.split()[-1] == "lost" and row.split()[-1] == "0"


# ---- the asyncio session ---------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("loop_kind", LOOPS)
def test_an_asyncio_receiver_killed_five_times_gets_everything_once(
    spread_daemon_factory, loop_kind
):
    daemon = spread_daemon_factory(slow_reader_budget=0, max_session_messages=2 * WINDOW + 24)
    n = 1000
    points = [100, 250, 400, 600, 800]

    async def main():
        async with (
            flow_aio.connect(daemon.address, "atx") as tx,
            flow_aio.connect(daemon.address, "arx", reconnect=FAST, groups=["ga"]) as rx,
        ):
            ch = await tx.channel("ga", window=WINDOW, retention_frames=n, retention_bytes=64 << 20)
            while rx.private_group not in ch.members():  # rx's join reaches the channel
                await tx.receive(timeout=10)
            got: list[int] = []
            back = 0
            changed = asyncio.Condition()

            async def consume():
                nonlocal back
                while len(got) < n:
                    m = await rx.receive(timeout=20)
                    if isinstance(m, flow.FlowMsg):
                        got.append(number(m))
                    elif isinstance(m, flow.Reconnected):
                        async with changed:
                            back += 1
                            changed.notify_all()
                    assert not isinstance(m, flow.DataLoss), m

            task = asyncio.get_running_loop().create_task(consume())
            kills = 0
            for i in range(n):
                if kills < len(points) and i == points[kills]:
                    async with changed:  # once the last kill's session is back
                        await asyncio.wait_for(changed.wait_for(lambda k=kills: back >= k), 20)
                    daemon.kill_session("arx")
                    kills += 1
                await ch.send(payload(i), timeout=20)
            await ch.flush(timeout=20)
            await asyncio.wait_for(task, 60)
            assert got == list(range(n)) and kills == 5

    run(loop_kind, main())


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("error")
def test_an_asyncio_session_gives_up_after_its_attempts(spread_daemon_factory):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    few = flow.Backoff(first=0.01, most=0.02, attempts=3)

    async def main():
        rx = await flow_aio.connect(daemon.address, "arx", reconnect=few, groups=["gg"])
        try:
            daemon.stop()
            with pytest.raises(flow.ReconnectFailed) as e:
                while True:
                    await rx.receive(timeout=20)
            assert e.value.attempts == 3
        finally:
            await rx.aclose()

    run("asyncio", main())


@pytest.mark.timeout(60)
def test_a_restarted_receiver_process_resumes_from_its_checkpoint(spread_daemon):
    daemon = spread_daemon  # (a real daemon too: nothing here needs a control)
    with flow.connect(daemon.address, "ckt") as tx:
        ch = tx.channel("gck", window=256, max_inflight=None)  # (30 fit: rx reads after)
        rx1 = flow.connect(daemon.address, "ckr", groups=["gck"])
        joined(tx, "gck", rx1.private_group)
        send_all(ch, 0, 30)
        assert [number(wait_for(rx1, flow.FlowMsg)) for _ in range(30)] == list(range(30))
        checkpoint = rx1.positions()
        rx1.close()  # the process ends
        gone(tx, "gck", rx1.private_group)
        send_all(ch, 30, 40)  # while nobody receives
        deadline = time.monotonic() + 10
        while True:  # a real daemon frees the name a moment after the disconnect
            try:
                rx2 = flow.connect(daemon.address, "ckr", positions=checkpoint, groups=["gck"])
                break
            except spread.ConnectionRejected as e:
                assert e.code == spread.REJECT_NOT_UNIQUE and time.monotonic() < deadline
        with rx2:
            got = [number(wait_for(rx2, flow.FlowMsg)) for _ in range(40)]
            assert got == list(range(30, 70))
            send_all(ch, 70, 2)
            assert [number(wait_for(rx2, flow.FlowMsg)) for _ in range(2)] == [70, 71]


class SenderProcess:
    """tests/dir_store.py's sender, a process of its own with a disk store."""

    def __init__(self, address: str, path: str) -> None:
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(here, "dir_store.py"),
                address,
                "psx",
                "gq",
                "0xD15C",
                path,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.last_seq = int(self.expect("ready"))

    def expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # (the process answers each command, or dies)
        assert line.startswith(word), f"{line!r} (exit {self.proc.poll()})"
        return line.split()[1] if len(line.split()) > 1 else ""

    def command(self, text: str, answer: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.expect(answer)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.mark.timeout(60)
def test_a_sender_process_killed_resumes_its_stream_from_a_disk_store(
    spread_daemon_factory, tmp_path
):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    store = str(tmp_path / "store")
    with flow.connect(daemon.address, "rx", groups=["gq"]) as rx:
        p1 = SenderProcess(daemon.address, store)
        try:
            assert p1.last_seq == 0
            joined(rx, "gq", "#psx#localhost")
            p1.command("send 0 30", "sent")
            assert [number(wait_for(rx, flow.FlowMsg)) for _ in range(30)] == list(range(30))
            daemon.pause_session("psx", requests=True)
            last = int(p1.command("send 30 10", "sent"))  # in its socket, never read
            daemon.kill_session("psx")
        finally:
            p1.kill()  # the process dies with them
        p2 = SenderProcess(daemon.address, store)
        try:
            assert p2.last_seq == last  # resumed from the store
            p2.command("send 40 5", "sent")
            got, events = [], []
            while len(got) < 15:
                m = rx.receive(timeout=10)
                if isinstance(m, flow.FlowMsg):
                    got.append(number(m))
                elif isinstance(m, flow.FlowEvent):
                    events.append(m)
            assert got == list(range(30, 45))
            assert not [e for e in events if isinstance(e, (flow.DataLoss, flow.StreamEnded))]
            p2.command("end", "ended")
            ended = wait_for(rx, flow.StreamEnded)
            assert (ended.stream, ended.clean) == (0xD15C, True)
        finally:
            p2.kill()


@pytest.mark.timeout(60)
def test_a_direct_session_that_only_sends_sees_its_lost_connection_at_a_flush(
    spread_daemon_factory,
):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    with flow.connect(daemon.address, "rx", groups=["gf"]) as rx:
        tx = flow.connect(daemon.address, "tx", drain=False, reconnect=FAST)
        try:
            ch = tx.channel("gf", window=64, retention_frames=1000)
            send_all(ch, 0, 20)
            assert [number(wait_for(rx, flow.FlowMsg)) for _ in range(20)] == list(range(20))
            daemon.kill_session("tx")
            ch.flush(timeout=10)  # reads the loss, and waits for the reconnect
            assert wait_for(tx, flow.Reconnected).attempts >= 1
            send_all(ch, 20, 20)
            got = [number(wait_for(rx, flow.FlowMsg)) for _ in range(20)]
            assert got == list(range(20, 40))
        finally:
            tx.close()


@pytest.mark.timeout(30)
def test_a_receive_without_timeout_waits_out_an_attempt_under_way(spread_daemon_factory):
    # While the flow thread is inside an attempt's connect (the lock let go),
    # no next attempt is due (its time is inf): a receive with no timeout
    # waited for inf seconds there, an OverflowError out of Condition.wait.
    daemon = spread_daemon_factory(slow_reader_budget=0)
    entered, release = threading.Event(), threading.Event()

    def connector():
        entered.set()
        assert release.wait(20)
        return spread.connect(daemon.address, "ov", 0, 1)

    mbox = spread.connect(daemon.address, "ov", 0, 1)
    s = flow.Session(mbox, connect=connector, reconnect=FAST, owns_mailbox=True)
    try:
        daemon.kill_session("ov")
        assert entered.wait(10)  # the attempt is under way: the flow thread connects
        got: list = []
        th = threading.Thread(target=lambda: got.append(_receive_or_error(s)))
        th.start()
        th.join(0.5)  # (an error would come at once; a correct wait is still waiting)
        assert not got, got
        release.set()
        th.join(10)
        assert len(got) == 1 and isinstance(got[0], flow.Reconnected), got
    finally:
        release.set()
        s.close()


def _receive_or_error(s):
    try:
        return s.receive()
    except Exception as e:  # (what the test reports)
        return e
