"""Behaviour of the embedded daemon: the slow-reader kill, several groups,
its command line, the in-process runner, handshake time-outs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import spread
import spread.testing
from spread.daemon import Daemon


def membership(m, reason=None):
    msg = m.receive()
    assert isinstance(msg, spread.MembershipMsg), msg
    if reason is not None:
        assert msg.reason == reason, msg
    return msg


def test_never_reading_client_is_killed(spread_daemon_factory):
    # The watcher drains in a thread of its own and the daemon's back-pressure
    # budget (on by default) covers its short lags, so that only the sleeper,
    # lagging for good, is killed once the budget is spent. (Without the budget
    # a sender at full speed gets any reader descheduled for a moment killed at
    # 50 messages: the watcher was, in about 2 runs of 5.)
    daemon = spread_daemon_factory(max_session_messages=50)
    group = "slow"
    watcher = spread.connect(daemon.address, "watcher")
    watcher.join(group)
    membership(watcher)
    sleeper = spread.connect(daemon.address, "sleeper")
    sleeper.join(group)
    membership(watcher)
    seen_by_watcher = watcher.start_receiver()
    sender = spread.connect(daemon.address, "sender", membership=0)
    payload = b"x" * 1000
    sent = 0
    # Keep sending until the watcher sees the sleeper go.
    killed = None
    while killed is None and sent < 20000:
        sender.multicast(spread.AGREED_MESS, group, payload, sent % 30000)
        sent += 1
        while seen_by_watcher.qsize():
            msg = seen_by_watcher.get_nowait()
            if isinstance(msg, spread.MembershipMsg):
                killed = msg
                break
    assert killed is not None, "the daemon never killed the sleeping reader"
    assert killed.reason == spread.CAUSED_BY_DISCONNECT
    assert killed.changed_member == "#sleeper#localhost"
    assert daemon.wait_for_log("for not reading")
    # The sleeper reads what had reached its socket, in order, then the error.
    seen = 0
    with pytest.raises(spread.ConnectionClosed):
        while True:
            msg = sleeper.receive()
            if isinstance(msg, spread.RegularMsg):
                assert msg.msg_type == seen
                seen += 1
    assert 0 < seen < sent
    for m in (watcher, sender, sleeper):
        m.disconnect()


def test_several_clients_in_several_groups(spread_daemon_factory):
    daemon = spread_daemon_factory()
    groups = ["red", "green", "blue"]
    clients = {}
    for i, name in enumerate(["c0", "c1", "c2", "c3"]):
        m = spread.connect(daemon.address, name, membership=0)
        for g in groups[: i % 3 + 1]:
            m.join(g)
        clients[name] = m
    members = {g: [n for i, n in enumerate(clients) if g in groups[: i % 3 + 1]] for g in groups}
    for g in groups:
        clients["c0"].multicast(spread.SAFE_MESS, g, g.encode())
    for name, m in clients.items():
        expected = [g for g in groups if name in members[g]]
        got = [m.receive().message.decode() for _ in expected]
        assert got == expected
        assert m.poll() == 0
    for m in clients.values():
        m.disconnect()


def test_group_ids_count_changes_and_restart(spread_daemon_factory):
    daemon = spread_daemon_factory()
    a = spread.connect(daemon.address, "a")
    a.join("gid")
    first = membership(a).group_id.id
    assert first[0] == 0x7F000001 and first[2] == 1
    b = spread.connect(daemon.address, "b")
    b.join("gid")
    assert membership(a).group_id.id[2] == 2
    b.leave("gid")
    assert membership(a).group_id.id[2] == 3
    a.leave("gid")
    membership(a, spread.CAUSED_BY_LEAVE)
    a.join("gid")
    assert membership(a).group_id.id[2] == 1  # the group was deleted and made anew
    a.disconnect()
    b.disconnect()


def test_join_twice_and_leave_non_member_do_nothing(spread_daemon_factory):
    daemon = spread_daemon_factory()
    a = spread.connect(daemon.address, "a")
    a.join("g")
    membership(a)
    a.join("g")
    a.leave("not-joined")
    a.multicast(spread.AGREED_MESS, a.private_group, b"marker")
    assert a.receive().message == b"marker"
    a.disconnect()


def test_silent_handshake_is_closed_after_a_second(spread_daemon_factory):
    daemon = spread_daemon_factory()
    with socket.create_connection(("127.0.0.1", daemon.port)) as s:
        s.settimeout(5)
        start = time.monotonic()
        assert s.recv(10) == b""
        assert 0.5 < time.monotonic() - start < 4


def test_command_line_ready_line_and_sigterm():
    port = spread.testing.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spread.daemon", "--port", str(port), "--name", "clihost"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "ready" in line and str(port) in line
        assert os.path.exists(f"/tmp/{port}")
        with spread.connect(str(port), "cli") as m:
            assert m.private_group == "#cli#clihost"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not os.path.exists(f"/tmp/{port}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_command_line_rejects_bad_options():
    out = subprocess.run(
        [sys.executable, "-m", "spread.daemon", "--port", "40000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "32767" in out.stderr


def test_in_process_daemon_thread():
    port = spread.testing.free_port()
    with Daemon(port, name="inproc") as d:
        with spread.connect(d.address, "t1") as m:
            assert m.private_group == "#t1#inproc"
            m.multicast(spread.AGREED_MESS, m.private_group, b"loop")
            assert m.receive().message == b"loop"
    with pytest.raises(spread.CouldNotConnect):
        spread.connect(d.address)


def test_embedded_daemon_fixture_restarts_on_fixed_port():
    port = spread.testing.free_port()
    for _ in range(2):
        with spread.testing.EmbeddedDaemon(port) as d:
            assert d.address == f"{port}@127.0.0.1" and d.unix_address == str(port)
            with spread.connect(d.unix_address) as m:
                assert m.private_group
