"""The test-bench controls against a daemon run by someone else
(spread.testing.ExternalDaemon, what the fixtures use with
SPREAD_TEST_DAEMON): drop_session, kill_session, pause and resume work
through the client protocol and signals; the rest are a clear ControlError.
Here the "real" daemon is an embedded one in a subprocess, started with
slow_reader_budget=0 so that it kills slow readers as a real one does, and
its own figures (which a real daemon would not give) confirm what happened."""

from __future__ import annotations

import select

import pytest

import spread
from spread.daemon import ControlError
from spread.testing import EMBEDDED_ONLY, EmbeddedDaemon, ExternalDaemon

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0


@pytest.fixture
def real():
    """(the daemon, an ExternalDaemon naming it with its pid)."""
    with EmbeddedDaemon(slow_reader_budget=0) as daemon:
        yield daemon, ExternalDaemon(daemon.address, pid=daemon.process.pid)


def receive(mbox):
    ready, _, _ = select.select([mbox], [], [], TIMEOUT)
    assert ready, "nothing arrived"
    return mbox.receive()


def members_of_chat(daemon, *names):
    out = []
    for name in names:
        m = spread.connect(daemon.address, name)
        m.join("chat")
        out.append(m)
    for m in out:  # every join seen: the last one lists all
        while len(receive(m).members) < len(out):
            pass
    return out


def gone(other, mbox) -> None:
    """other sees mbox disconnect; mbox reads what it had, then ConnectionClosed."""
    m = receive(other)
    assert m.reason == spread.CAUSED_BY_DISCONNECT and m.changed_member == mbox.private_group
    with pytest.raises(spread.ConnectionClosed):
        while True:
            mbox.receive()


def test_the_embedded_only_controls_say_so(real):
    daemon, ext = real
    assert daemon.embedded and not ext.embedded
    calls = [
        (ext.totals, ()),
        (ext.sessions, ()),
        (ext.session, ("alice",)),
        (ext.pause_session, ("alice",)),
        (ext.resume_session, ("alice",)),
        (ext.add_remote_daemon, ("east",)),
        (ext.partition, ("east",)),
        (ext.merge, ("east",)),
        (ext.crash, ("east",)),
        (ext.settle, ()),
        (ext.network, ()),
        (ext.set_network_clock, (5,)),
        (ext.set_network_address, ("127.0.0.2",)),
    ]
    for call, args in calls:
        with pytest.raises(ControlError, match="needs the embedded daemon") as e:
            call(*args)
        assert "drop_session() and kill_session()" in str(e.value)
    with pytest.raises(ControlError, match=r"^add_remote_daemon\(\) needs"):
        ext.add_remote_daemon("east")
    with pytest.raises(ControlError, match=r"with after="):
        ext.partition("east", after=1)
    assert "totals()" in EMBEDDED_ONLY and "partition()" in EMBEDDED_ONLY
    # By name it cannot be: the daemon has no way to be asked.
    with pytest.raises(TypeError, match="a Mailbox of this process"):
        ext.drop_session("#alice#localhost")
    with pytest.raises(ControlError, match="needs its pid"):
        ExternalDaemon(ext.address).pause()


def test_drop_session(real):
    daemon, ext = real
    alice, bob = members_of_chat(daemon, "alice", "bob")
    ext.drop_session(alice)
    gone(bob, alice)
    fig = daemon.session("alice")  # the daemon's view: ended, by its client's side
    assert not fig["open"] and not fig["killed"]
    alice.kill()
    with pytest.raises(ValueError, match="closed already"):
        ext.drop_session(alice)
    bob.disconnect()


def test_kill_session_is_the_daemons_own_slow_reader_kill(real):
    daemon, ext = real
    sleeper, bob = members_of_chat(daemon, "sleeper", "bob")
    ext.kill_session(sleeper)
    gone(bob, sleeper)
    # The daemon's own figures and log: its slow-reader kill, at 1000 queued
    # (the real daemon's MAX_SESSION_MESSAGES). (The session now named
    # "sleeper" is the probe that found the name free again, closed.)
    assert daemon.wait_for_log("(#sleeper#localhost) for not reading (1000 messages")
    totals = daemon.totals()
    assert totals["sessions_killed"] == 1 and totals["peak_messages"] == 1000
    # A mailbox read by a ThreadedReceiver never falls behind: refused.
    bob.start_receiver()
    with pytest.raises(ValueError, match="ThreadedReceiver"):
        ext.kill_session(bob)
    bob.disconnect()


def test_kill_session_fails_clearly_when_the_daemon_holds_the_flood_back(monkeypatch):
    import spread.testing._external as external

    monkeypatch.setattr(external, "KILL_TIMEOUT", 0.5)
    with EmbeddedDaemon(max_session_messages=10**6, max_session_bytes=2**40) as daemon:
        ext = ExternalDaemon(daemon.address)
        (sleeper,) = members_of_chat(daemon, "sleeper")
        with pytest.raises(ControlError, match="did not kill #sleeper#localhost"):
            ext.kill_session(sleeper)
        sleeper.kill()


def test_pause_and_resume_by_signal(real):
    daemon, ext = real
    (alice,) = members_of_chat(daemon, "alice")
    ext.pause()
    try:
        alice.multicast(spread.AGREED_MESS, alice.private_group, b"held")
        ready, _, _ = select.select([alice], [], [], 0.3)
        assert not ready  # a hung daemon delivers nothing
    finally:
        ext.resume()
    assert receive(alice).message == b"held"
    alice.disconnect()


def test_the_fixtures_take_a_real_daemon_from_the_environment(real, monkeypatch):
    from spread.testing import plugin

    daemon, _ = real
    monkeypatch.setenv("SPREAD_TEST_DAEMON", daemon.address)
    monkeypatch.setenv("SPREAD_TEST_DAEMON_PID", str(daemon.process.pid))
    ext = plugin._external()
    assert isinstance(ext, ExternalDaemon) and ext.pid == daemon.process.pid
    assert ext.address == daemon.address and ext.port == daemon.port
