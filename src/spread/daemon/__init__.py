"""The embedded single-node Spread daemon.

It speaks Spread 4's client protocol, so any Spread client can use it, and
it applies the real daemon's slow-reader rule (a connection with
``max_session_messages`` undelivered messages is killed), and a byte limit
besides (``max_session_bytes`` undelivered bytes, 64 MiB by default). Run it with
``python -m spread.daemon``, in a thread with :class:`Daemon`, or in a
subprocess with :class:`spread.testing.EmbeddedDaemon`. Both classes have
the test-bench controls of :class:`DaemonControls` (figures, faults), over
the daemon's control channel.
"""

from __future__ import annotations

import os
import socket
import threading

from .. import _daemon_options as o
from .._backend import core as _core
from ._control import (
    ControlChannel,
    ControlError,
    DaemonControls,
    RemoteDaemon,
    RemoteMember,
    connect_control,
)

LOG_LEVELS = _core.LOG_LEVELS
NativeDaemon = _core.NativeDaemon
DEFAULT_MAX_SESSION_BYTES = o.DEFAULT_MAX_SESSION_BYTES

__all__ = [
    "ControlError",
    "Daemon",
    "DaemonAddresses",
    "DaemonControls",
    "LOG_LEVELS",
    "DEFAULT_MAX_SESSION_BYTES",
    "RemoteDaemon",
    "RemoteMember",
    "connect_control",
]


class DaemonAddresses:
    """The address strings of a daemon listening on ``port`` and ``host``."""

    port: int
    host: str

    @property
    def address(self) -> str:
        """The TCP address string, "<port>@<host>"."""
        return f"{self.port}@{self.host}"

    @property
    def unix_address(self) -> str:
        """The unix-socket address string, "<port>" (socket /tmp/<port>)."""
        return str(self.port)


class Daemon(DaemonAddresses, DaemonControls):
    """An embedded daemon served by a background thread of this process.

    The event loop runs in C without the GIL, so it neither slows Python
    threads down nor is slowed by them. The sockets are bound on
    construction; ``port=0`` picks a free port, then found in ``port``.
    ``host`` is an IPv4 address or a host name that resolves to one.
    ``slow_reader_budget``: the back-pressure budget in ms (0 = off, as in
    a real Spread daemon). The controls (:class:`DaemonControls`) reach the
    loop over a socketpair of its own; ``control`` also opens a listener
    for other processes (a unix socket path, or a port on 127.0.0.1).
    """

    def __init__(
        self,
        port: int = o.DEFAULT_PORT,
        *,
        host: str = o.DEFAULT_HOST,
        name: str = o.DEFAULT_NAME,
        max_session_messages: int = o.DEFAULT_MAX_SESSION_MESSAGES,
        max_session_bytes: int = o.DEFAULT_MAX_SESSION_BYTES,
        slow_reader_budget: int = o.DEFAULT_SLOW_READER_BUDGET,
        tcp: bool = o.DEFAULT_TCP,
        unix_socket: bool = o.DEFAULT_UNIX_SOCKET,
        log_level: str = o.DEFAULT_LOG_LEVEL,
        control: str | None = o.DEFAULT_CONTROL,
    ):
        options = o.pick_options(locals())
        o.check_daemon_options(options)
        ours, theirs = socket.socketpair()
        try:
            # The daemon owns its end from here on (closed by it, even on failure).
            self._native = NativeDaemon(options, theirs.detach())
        except BaseException:
            ours.close()
            raise
        self._channel = ControlChannel(ours)
        self.control_port = self._native.control_port
        self.port = self._native.port
        self.host = host
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _control_channel(self) -> ControlChannel:
        return self._channel

    def serve_forever(self) -> None:
        """Serves in the calling thread until stop() is called."""
        self._native.run(self._stop_r)

    def start(self) -> Daemon:
        """Serves in a background thread."""

        def serve():
            try:
                self.serve_forever()
            except BaseException as e:  # reported by stop()
                self._error = e

        self._thread = threading.Thread(
            target=serve, name=f"spread-daemon-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, closes every connection and removes the unix socket."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join()
        self._native.close()
        self._channel.close()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_r = self._stop_w = -1
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
