"""What the embedded daemon holds stays bounded: its name tables follow the
live groups and connections, and a client that never reads is killed once
its queue holds max_session_bytes, before the message limit."""

from __future__ import annotations

import os
import re
import socket
import threading

import pytest

import spread
from spread import _daemon_options
from spread.daemon import NativeDaemon

pytestmark = pytest.mark.timeout(60)


class Served:
    """A NativeDaemon served by a thread; stats() once it has stopped."""

    def __init__(self):
        o = _daemon_options
        options = {**o.DEFAULTS, "port": 0, "unix_socket": False}
        self.native = NativeDaemon(options, -1)  # every option explicit: it has no defaults
        self.port = self.native.port
        self._r, self._w = os.pipe()
        self._thread = threading.Thread(target=self.native.run, args=(self._r,))
        self._thread.start()

    def stop(self) -> dict:
        os.write(self._w, b"x")
        self._thread.join(10)
        assert not self._thread.is_alive()
        stats = self.native.stats()
        self.native.close()
        os.close(self._r)
        os.close(self._w)
        return stats


def round_trip(m) -> None:
    """Returns once the daemon has handled everything m sent before."""
    m.multicast(spread.AGREED_MESS, m.private_group, b"sync")
    assert m.receive().message == b"sync"


def test_group_table_follows_live_groups_not_names_ever_used():
    served = Served()
    try:
        keeper = spread.connect(f"{served.port}@127.0.0.1", "keeper", membership=0)
        keeper.join("alive")
        churn = spread.connect(f"{served.port}@127.0.0.1", "churn", membership=0)
        for i in range(20000):
            churn.join(f"g{i}")
            churn.leave(f"g{i}")
        round_trip(churn)
        churn.disconnect()
        round_trip(keeper)
        keeper.disconnect()
    finally:
        stats = served.stop()
    # One group was alive throughout; 20000 names came and went.
    assert stats["groups"] == 0
    assert stats["group_slots"] <= 256, stats


def test_name_table_follows_live_connections():
    served = Served()
    try:
        keeper = spread.connect(f"{served.port}@127.0.0.1", "keeper", membership=0)
        for i in range(600):
            spread.connect(f"{served.port}@127.0.0.1", f"n{i}", membership=0).disconnect()
        round_trip(keeper)
        keeper.disconnect()
    finally:
        stats = served.stop()
    assert stats["name_slots"] <= 128, stats


def test_reader_killed_by_the_byte_limit_before_the_message_limit(spread_daemon_factory):
    limit = 1_000_000
    daemon = spread_daemon_factory(max_session_messages=1000, max_session_bytes=limit)
    group = "big"
    watcher = spread.connect(daemon.address, "watcher")
    watcher.join(group)
    assert isinstance(watcher.receive(), spread.MembershipMsg)
    sleeper = spread.connect(daemon.address, "sleeper", membership=0)
    sleeper.join(group)
    assert isinstance(watcher.receive(), spread.MembershipMsg)
    # One thread sends and watches: a fixed send buffer (Spread's 200 KiB)
    # keeps the sender within reach of the watcher, which an autotuned one,
    # growing to megabytes, would let run ahead until the watcher is the one
    # past the byte limit.
    sender = spread.connect(daemon.address, "sender", membership=0)
    with socket.socket(fileno=os.dup(sender.fileno())) as s:  # set here: any library
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 204800)
    payload = b"y" * 100_000
    killed = None
    sent = 0
    # 300 messages would be 30 MB queued for the sleeper: far past the byte
    # limit, far below the message limit.
    while killed is None and sent < 300:
        sender.multicast(spread.AGREED_MESS, group, payload)
        sent += 1
        while killed is None and watcher.poll():
            msg = watcher.receive()
            if isinstance(msg, spread.MembershipMsg):
                killed = msg
    assert killed is not None, "the daemon never killed the reader that does not read"
    assert killed.reason == spread.CAUSED_BY_DISCONNECT
    assert killed.changed_member == "#sleeper#localhost"
    assert daemon.wait_for_log("for not reading")
    line = next(line for line in daemon.log if "for not reading" in line)
    queued = re.search(r"\((\d+) messages, (\d+) bytes queued\)", line)
    assert queued, line
    assert int(queued.group(1)) < 1000 and int(queued.group(2)) >= limit, line
    # Killed with its queue at the byte limit: sockets hold a few hundred KB more.
    assert sent * len(payload) < limit + 2_000_000
    for m in (watcher, sender, sleeper):
        m.disconnect()


def test_byte_limit_is_on_by_default():
    from spread.daemon import DEFAULT_MAX_SESSION_BYTES, Daemon

    assert DEFAULT_MAX_SESSION_BYTES == 64 * 1024 * 1024
    with pytest.raises(ValueError, match="max_session_bytes"):
        Daemon(0, max_session_bytes=0)
