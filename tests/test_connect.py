"""connect() against peers that are not (working) Spread daemons: it never
hangs, a signal ends its wait, and each failure says what it is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import spread
from spread.testing import free_port


class Peer:
    """A TCP listener on loopback that accepts and then does `behaviour`
    with each connection: "silent" (reads, never answers), "garbage" (an
    HTTP reply), "close" (hangs up at once)."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.got_request = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{self.port}@127.0.0.1"

    def _serve(self):
        try:
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                if self.behaviour == "close":
                    conn.close()
                    continue
                conn.settimeout(5)
                if conn.recv(64):  # the connect request
                    self.got_request.set()
                if self.behaviour == "garbage":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass  # closed by the test

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def peer(request):
    p = Peer(request.param)
    yield p
    p.close()


@pytest.mark.parametrize("peer", ["silent"], indirect=True)
@pytest.mark.timeout(20)
def test_a_silent_peer_times_out_as_a_timeout(peer):
    start = time.monotonic()
    with pytest.raises(spread.ConnectTimeout) as ei:
        spread.connect(peer.address, timeout=0.3)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 5
    err = ei.value
    assert isinstance(err, TimeoutError) and isinstance(err, spread.error)
    assert isinstance(err, spread.CouldNotConnect)
    assert err.args[0] == spread.COULD_NOT_CONNECT and "timed out after 0.3 s" in err.args[1]
    assert type(err).__module__ == "spread"


@pytest.mark.parametrize("peer", ["silent"], indirect=True)
@pytest.mark.slow  # (10 s of waiting, the default itself: once per backend in CI)
@pytest.mark.timeout(40)
def test_connect_has_a_default_handshake_timeout(peer):
    start = time.monotonic()
    with pytest.raises(spread.ConnectTimeout) as ei:
        spread.connect(peer.address)
    assert 9.5 <= time.monotonic() - start < 30
    assert "timed out after 10 s" in ei.value.args[1]


@pytest.mark.parametrize("peer", ["garbage"], indirect=True)
@pytest.mark.skipif(
    bool(os.environ.get("SPREAD_LIBRARY")),
    reason="Spread's own API cannot tell a foreign peer from a closed one",
)
@pytest.mark.timeout(20)
def test_a_peer_speaking_another_protocol_is_named(peer):
    start = time.monotonic()
    with pytest.raises(spread.CouldNotConnect) as ei:
        spread.connect(peer.address, timeout=5)
    assert time.monotonic() - start < 4  # told at once, not by the time-out
    assert not isinstance(ei.value, TimeoutError)
    assert "does not speak Spread's protocol" in ei.value.args[1]


@pytest.mark.parametrize("peer", ["close"], indirect=True)
@pytest.mark.timeout(20)
def test_a_peer_hanging_up_during_the_handshake(peer):
    with pytest.raises(spread.ConnectionClosed) as ei:
        spread.connect(peer.address, timeout=5)
    assert "during the handshake" in ei.value.args[1]


@pytest.mark.parametrize("timeout", [None, 2.0])
@pytest.mark.timeout(30)
def test_ctrl_c_ends_a_connect_that_waits(timeout):
    """SIGINT reaches a connect() blocked in the handshake as KeyboardInterrupt."""
    peer = Peer("silent")
    child = (
        textwrap.dedent(f"""
        import time, spread
        try:
            spread.connect({peer.address!r}, timeout={timeout!r})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        else:
            print("returned", flush=True)
    """)
        if timeout is None
        else textwrap.dedent(f"""
        import spread
        try:
            spread.connect({peer.address!r}, timeout=30.0)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert peer.got_request.wait(15), "the child never sent its connect request"
        first = time.monotonic()
        # A signal landing just before the wait starts is seen only by the next
        # one (as for receive()): repeat until the child is gone.
        while proc.poll() is None and time.monotonic() - first < 5:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        gone = time.monotonic() - first
        out = proc.communicate(timeout=5)[0]
    finally:
        proc.kill()
        peer.close()
    assert out.strip() == "interrupted"
    assert gone < 2.0, f"the child took {gone:.2f} s to stop"


@pytest.mark.timeout(20)
def test_connect_without_timeout_still_connects(spread_daemon):
    with spread.connect(spread_daemon.address, timeout=None) as m:
        assert m.private_group.startswith("#")
