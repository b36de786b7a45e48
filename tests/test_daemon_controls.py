"""The embedded daemon as a test bench: its figures and faults, on both
forms (in this process: spread.daemon.Daemon; in a subprocess:
spread.testing.EmbeddedDaemon, over its control channel), and the control
channel itself (malformed requests, loopback only).

No sleep synchronises anything here: waits poll with a deadline, and an
absence is shown by a select() that times out."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import spread
from spread.daemon import ControlError, Daemon
from spread.testing import EmbeddedDaemon

pytestmark = pytest.mark.timeout(60)

DEADLINE = 20.0
HEADER = 48  # a message's header on the wire (SPEC.md 3)
QUIET = 0.3  # how long "nothing arrives" is watched for


def wait_until(predicate, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)  # polling, with a deadline


def quiet(mbox, seconds: float = QUIET) -> bool:
    """Nothing arrives for mbox within seconds."""
    return select.select([mbox.fileno()], [], [], seconds)[0] == []


@pytest.fixture(params=["thread", "process"])
def bench(request):
    """factory(**options): a daemon in this process or in a subprocess."""
    started: list = []
    opened: list = []

    def factory(**options):
        if request.param == "thread":
            daemon = Daemon(0, **options).start()
        else:
            daemon = EmbeddedDaemon(**options).start()
        started.append(daemon)
        return daemon

    factory.opened = opened  # type: ignore[attr-defined]
    yield factory
    for m in opened:
        try:
            m.disconnect()
        except spread.SpreadError:
            pass
    for daemon in reversed(started):
        daemon.stop()


def connect(bench, daemon, name, **kwargs):
    m = spread.connect(daemon.address, name, **kwargs)
    bench.opened.append(m)
    return m


def membership(m):
    msg = m.receive()
    assert isinstance(msg, spread.MembershipMsg), msg
    return msg


def pair(bench, daemon, group="g"):
    """watcher and victim, both in group, the watcher's notices read."""
    watcher = connect(bench, daemon, "watcher")
    watcher.join(group)
    membership(watcher)
    victim = connect(bench, daemon, "victim")
    victim.join(group)
    assert membership(watcher).changed_member == "#victim#localhost"
    membership(victim)
    return watcher, victim


def test_kill_session_is_the_slow_reader_kill(bench):
    daemon = bench()
    watcher, victim = pair(bench, daemon)
    daemon.kill_session(victim)
    notice = membership(watcher)
    assert notice.reason == spread.CAUSED_BY_DISCONNECT
    assert notice.changed_member == "#victim#localhost"
    with pytest.raises(spread.ConnectionClosed):
        victim.receive()
    fig = daemon.session("victim")
    assert fig["open"] is False and fig["killed"] is True
    assert fig["reason"] == "not reading"
    assert daemon.totals()["sessions_killed"] == 1
    if isinstance(daemon, EmbeddedDaemon):
        assert daemon.wait_for_log("for not reading")


def test_drop_session_is_seen_as_a_disconnect(bench):
    daemon = bench()
    watcher, victim = pair(bench, daemon)
    daemon.drop_session("#victim#localhost")
    notice = membership(watcher)
    assert notice.reason == spread.CAUSED_BY_DISCONNECT
    assert notice.changed_member == "#victim#localhost"
    with pytest.raises(spread.SpreadError):
        victim.receive()
    fig = daemon.session("victim")
    assert (fig["open"], fig["killed"], fig["reason"]) == (
        False,
        True,
        "dropped without a goodbye",
    )


def test_paused_session_fills_and_is_killed_at_max_session_messages(bench):
    limit = 40
    daemon = bench(slow_reader_budget=0, max_session_messages=limit)
    watcher, victim = pair(bench, daemon)
    sender = connect(bench, daemon, "sender", membership=0)
    daemon.pause_session(victim, requests=False, deliveries=True)
    assert daemon.session(victim)["paused_deliveries"] is True
    queued_before = daemon.session(victim)["queued_total"]
    for i in range(limit + 10):
        sender.multicast(spread.AGREED_MESS, "g", b"m%d" % i)
    # The disconnect is ordered after the message that killed it (the
    # limit's + 1st), and after whatever the daemon read with it.
    got = [watcher.receive() for _ in range(limit + 11)]
    data = [m.message for m in got if isinstance(m, spread.RegularMsg)]
    assert data == [b"m%d" % i for i in range(limit + 10)]
    notice = next(m for m in got if isinstance(m, spread.MembershipMsg))
    assert got.index(notice) > limit
    assert notice.reason == spread.CAUSED_BY_DISCONNECT
    assert notice.changed_member == "#victim#localhost"
    fig = daemon.session(victim)
    assert fig["killed"] and fig["reason"] == "not reading"
    # Not written to: its queue held exactly the limit, and the next one killed it.
    assert fig["peak_messages"] == limit
    assert fig["queued_total"] == queued_before + limit
    assert daemon.totals()["peak_messages"] == limit


def test_the_budget_holds_senders_while_a_reader_lags(bench):
    limit = 100
    daemon = bench(slow_reader_budget=60000, max_session_messages=limit)
    watcher, victim = pair(bench, daemon)
    sender = connect(bench, daemon, "sender", membership=0)
    daemon.pause_session(victim, requests=False, deliveries=True)
    count = limit + 50
    for i in range(count):  # small: the socket buffers take them all
        sender.multicast(spread.AGREED_MESS, "g", b"m%d" % i)
    wait_until(lambda: daemon.totals()["backpressure_pauses"] >= 1, "back-pressure")
    fig = daemon.session(victim)
    assert fig["open"] and fig["lagging"]
    # The daemon reads no request while the reader lags: it is never killed.
    assert limit // 2 <= fig["queued_messages"] < limit
    assert daemon.totals()["multicasts"] < count
    daemon.resume_session(victim)
    for i in range(count):
        assert victim.receive().message == b"m%d" % i
    assert daemon.session(victim)["killed"] is False
    assert daemon.totals()["multicasts"] == count


def test_figures_match_what_was_sent(bench):
    daemon = bench()
    a = connect(bench, daemon, "a", membership=0)
    b = connect(bench, daemon, "b", membership=0)
    count, size = 25, 1000
    for _ in range(count):
        a.multicast(spread.RELIABLE_MESS, b.private_group, b"x" * size)
    for _ in range(count):
        assert len(b.receive().message) == size
    wire = HEADER + 32 + size
    fb = wait_until(
        lambda: (f := daemon.session(b))["delivered"] == count and f, "b's deliveries counted"
    )
    assert (fb["queued_total"], fb["delivered"], fb["delivered_bytes"]) == (
        count,
        count,
        count * wire,
    )
    assert (fb["queued_messages"], fb["queued_bytes"]) == (0, 0)
    assert 1 <= fb["peak_messages"] <= count and fb["peak_bytes"] == fb["peak_messages"] * wire
    assert (fb["requests"], fb["multicasts"], fb["open"], fb["reason"]) == (0, 0, True, None)
    fa = daemon.session(a)
    assert (fa["requests"], fa["multicasts"], fa["queued_total"]) == (count, count, 0)
    totals = daemon.totals()
    assert totals["sessions_open"] == 2 and totals["sessions_opened"] == 2
    assert (totals["multicasts"], totals["delivered"]) == (count, count)
    assert totals["delivered_bytes"] == count * wire
    assert totals["queued_messages"] == 0 and totals["groups"] == 0
    a.disconnect()
    bench.opened.remove(a)
    ended = wait_until(lambda: not (f := daemon.session("a"))["open"] and f, "a's end")
    assert (ended["killed"], ended["reason"]) == (False, "disconnect requested")
    assert daemon.totals()["sessions_closed"] == 1
    sessions = daemon.sessions()
    assert set(sessions) == {"#a#localhost", "#b#localhost"}
    assert sessions["#b#localhost"]["open"] and not sessions["#a#localhost"]["open"]


def test_paused_requests_wait_and_resume(bench):
    daemon = bench()
    a = connect(bench, daemon, "a", membership=0)
    b = connect(bench, daemon, "b", membership=0)
    daemon.pause_session(b)
    assert daemon.session(b)["paused_requests"] is True
    b.multicast(spread.AGREED_MESS, a.private_group, b"late")
    assert quiet(a)
    a.multicast(spread.AGREED_MESS, b.private_group, b"to b")  # deliveries still flow
    assert b.receive().message == b"to b"
    daemon.resume_session("b")
    assert a.receive().message == b"late"


def test_pause_of_the_whole_daemon(bench):
    daemon = bench()
    a = connect(bench, daemon, "a", membership=0)
    daemon.pause()
    try:
        assert daemon.totals()["paused"] is True
        a.multicast(spread.AGREED_MESS, a.private_group, b"held")
        assert quiet(a)
        with pytest.raises(spread.ConnectTimeout):
            spread.connect(daemon.address, "late", timeout=0.5)
    finally:
        daemon.resume()
    assert a.receive().message == b"held"
    b = connect(bench, daemon, "b", membership=0, timeout=5)
    b.multicast(spread.AGREED_MESS, a.private_group, b"after")
    assert a.receive().message == b"after"
    assert daemon.totals()["paused"] is False


def test_controls_name_unknown_sessions_cleanly(bench):
    daemon = bench()
    with pytest.raises(ControlError, match="no open session"):
        daemon.kill_session("nobody")
    with pytest.raises(ControlError, match="no session"):
        daemon.session("#nobody#localhost")
    with pytest.raises(ValueError):
        daemon.pause_session("nobody", requests=False, deliveries=False)


# ---- the control channel itself --------------------------------------------


def raw_exchange(address: str, data: bytes) -> bytes:
    """Sends data on a fresh control connection; all it answers until closed."""
    if "/" in address:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(DEADLINE)
        s.connect(address)
    else:
        s = socket.create_connection(("127.0.0.1", int(address.rpartition(":")[2])), DEADLINE)
    with s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


MALFORMED = [
    (b"\n", b"error empty request"),
    (b"   \n", b"error empty request"),
    (b"bogus\n", b"error unknown request"),
    (b"kill\n", b"error missing session name"),
    (b"ping extra\n", b"error too many words"),
    (b"pause a b c\n", b"error too many words"),
    (b"pause a sideways\n", b"error pause takes requests, deliveries or both"),
    (b"kill " + b"n" * 40 + b"\n", b"error session name too long"),
    (b"kill a\x01b\n", b"error malformed request"),
    (b"kill \xff\n", b"error malformed request"),
    (b'session a"b\n', b"error illegal character"),
]


@pytest.mark.parametrize("form", ["unix", "tcp"])
def test_malformed_requests_are_refused_and_the_channel_goes_on(form, tmp_path):
    control = str(tmp_path / "control") if form == "unix" else "0"
    with EmbeddedDaemon(control=control) as daemon:
        assert daemon.control_address is not None
        request = b"".join(m for m, _ in MALFORMED) + b"ping\r\n"
        lines = raw_exchange(daemon.control_address, request).split(b"\n")
        assert lines[-1] == b""
        for (sent, expected), got in zip(MALFORMED, lines):
            assert got.startswith(expected), (sent, got)
        assert lines[len(MALFORMED)] == b"ok pong"
        # A line past the limit: answered once, skipped to its newline.
        long = raw_exchange(daemon.control_address, b"x" * 5000 + b"\nping\n")
        assert long.startswith(b"error request too long") and long.endswith(b"\nok pong\n")
        assert long.count(b"\n") == 2
        assert daemon.totals()["sessions_open"] == 0  # still serving


def test_the_control_channel_listens_on_loopback_only(tmp_path):
    for bad in ("0.0.0.0:0", "192.0.2.1:4000", "example.com:1", "::1:5", "1:2:3", "99999", "x"):
        with pytest.raises(OSError, match="loopback only"):
            Daemon(0, control=bad)
    out = subprocess.run(
        [sys.executable, "-m", "spread.daemon", "--port", "0", "--control", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "loopback only" in out.stderr
    with Daemon(0, control="0") as daemon:
        port = daemon.control_port
        assert port > 0
        listening = [
            line.split()[1]
            for name in ("/proc/net/tcp", "/proc/net/tcp6")
            if Path(name).exists()
            for line in Path(name).read_text().splitlines()[1:]
            if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
        ]
        assert listening == [f"0100007F:{port:04X}"], listening
        assert raw_exchange(f"127.0.0.1:{port}", b"ping\n") == b"ok pong\n"
        # Reachable on no other address of this host.
        try:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.connect(("192.0.2.1", 9))  # no packet is sent
            mine = probe.getsockname()[0]
            probe.close()
        except OSError:
            mine = None
        if mine and not mine.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((mine, port), 2).close()


def test_a_unix_control_socket_is_private_and_removed(tmp_path):
    path = tmp_path / "ctl"
    with Daemon(0, control=str(path)) as daemon:
        assert (path.stat().st_mode & 0o777) == 0o600
        assert raw_exchange(str(path), b"ping\n") == b"ok pong\n"
        assert daemon.totals()["paused"] is False
    assert not path.exists()
    path.write_text("")
    with pytest.raises(OSError, match="exists"):
        Daemon(0, control=str(path))


def test_control_connections_are_limited():
    with Daemon(0, control="0") as daemon:
        held = [socket.create_connection(("127.0.0.1", daemon.control_port), DEADLINE)]
        try:
            # The daemon's own channel is one of the eight.
            for _ in range(6):
                held.append(socket.create_connection(("127.0.0.1", daemon.control_port), 5))
            for s in held:
                s.sendall(b"ping\n")
                assert s.recv(100) == b"ok pong\n"
            # One more is told why, and closed (read before writing: bytes
            # left unread at the close would turn it into a reset).
            with socket.create_connection(("127.0.0.1", daemon.control_port), 5) as extra:
                assert extra.makefile("rb").read() == b"error too many control connections\n"
        finally:
            for s in held:
                s.close()

        def pong_on_a_free_slot():
            # Until the daemon has seen the closes, it refuses and closes with
            # our ping unread: a reset, which here means "not yet".
            try:
                return raw_exchange(f"127.0.0.1:{daemon.control_port}", b"ping\n") == b"ok pong\n"
            except ConnectionError:  # reset, or a broken pipe if refused first
                return False

        wait_until(pong_on_a_free_slot, "a free control slot")


def test_controls_answer_from_another_thread_while_clients_run():
    """The figures are read while the daemon serves: a sender in one thread,
    totals() polled from another."""
    with Daemon(0) as daemon:
        a = spread.connect(daemon.address, "a", membership=0)
        b = spread.connect(daemon.address, "b", membership=0)
        count = 2000
        done = threading.Event()

        def send():
            for i in range(count):
                a.multicast(spread.AGREED_MESS, b.private_group, b"%d" % i)
            done.set()

        t = threading.Thread(target=send)
        t.start()
        seen = []
        for _ in range(count):
            b.receive()
            if len(seen) < 50:
                seen.append(daemon.totals()["multicasts"])
        t.join(DEADLINE)
        assert done.is_set()
        assert seen == sorted(seen)
        assert wait_until(lambda: daemon.totals()["delivered"] == count, "all delivered")
        a.disconnect()
        b.disconnect()


STANDALONE = Path(__file__).resolve().parents[1] / "native" / "build" / "plain" / "spread-daemon"


@pytest.mark.skipif(not STANDALONE.exists(), reason="make -C native all builds spread-daemon")
def test_the_standalone_daemon_has_the_controls(monkeypatch):
    monkeypatch.setenv("SPREAD_DAEMON_COMMAND", str(STANDALONE))
    with EmbeddedDaemon(slow_reader_budget=0, max_session_messages=5) as daemon:
        a = spread.connect(daemon.address, "a")
        a.join("g")
        membership(a)
        b = spread.connect(daemon.address, "b")
        b.join("g")
        membership(a)
        daemon.kill_session(b)
        assert membership(a).reason == spread.CAUSED_BY_DISCONNECT
        assert daemon.totals()["slow_reader_budget"] == 0
        assert daemon.session("b")["reason"] == "not reading"
        a.disconnect()
    assert os.path.basename(str(STANDALONE)) == "spread-daemon"


@pytest.mark.parametrize("in_process", [False, True])
def test_the_readme_example(spread_daemon_factory, in_process):
    daemon = spread_daemon_factory(
        slow_reader_budget=0, max_session_messages=50, in_process=in_process
    )
    watcher = spread.connect(daemon.address, "watcher")
    watcher.join("chat")
    watcher.receive()
    sleeper = spread.connect(daemon.address, "sleeper")
    sleeper.join("chat")
    watcher.receive()
    daemon.pause_session(sleeper, requests=False, deliveries=True)
    for i in range(60):
        watcher.multicast(spread.AGREED_MESS, "chat", b"%d" % i)
    while not isinstance(msg := watcher.receive(), spread.MembershipMsg):
        pass
    assert msg.reason == spread.CAUSED_BY_DISCONNECT
    assert daemon.session("sleeper")["peak_messages"] == 50
    assert daemon.session("sleeper")["reason"] == "not reading"
    watcher.disconnect()
    sleeper.disconnect()
