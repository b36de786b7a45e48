"""The embedded daemon's control channel, from Python: figures and faults
for tests (native/daemon/control.c has the request format). One client for
every form of the daemon: in this process (spread.daemon.Daemon, over a
socketpair), in a subprocess (spread.testing.EmbeddedDaemon, over a unix
socket) or any daemon started with ``--control``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["ControlChannel", "ControlError", "DaemonControls", "connect_control"]

TIMEOUT = 10.0
# Figures that are flags (0 or 1 on the wire); every other one is a number
# but for a session's "group", "state" and "reason".
_FLAGS = {"killed", "paused_requests", "paused_deliveries", "lagging", "paused"}
_TEXT = {"group", "state", "reason"}


class ControlError(RuntimeError):
    """The daemon refused a control request (the text is the daemon's)."""


def _fields(text: str) -> dict[str, Any]:
    reason = None
    if " reason=" in text:
        text, _, reason = text.partition(" reason=")
    out: dict[str, Any] = {}
    for word in text.split():
        key, _, value = word.partition("=")
        out[key] = value if key in _TEXT else (value == "1" if key in _FLAGS else int(value))
    if reason is not None:
        out["reason"] = reason or None
    return out


def _session(line: str) -> dict[str, Any]:
    if not line.startswith("session "):
        raise ControlError(f"unexpected control answer {line!r}")
    fields = _fields(line[len("session ") :])
    fields["open"] = fields.pop("state") == "open"
    return fields


def _name(session: Any) -> str:
    """A session named by its private group, its private name or a Mailbox."""
    name = getattr(session, "private_group", session)
    if not isinstance(name, str):
        raise TypeError(f"a session is named by a str or a Mailbox, not {type(session).__name__}")
    return name


class ControlChannel:
    """One connection to a daemon's control channel; thread-safe."""

    def __init__(self, sock: socket.socket):
        sock.settimeout(TIMEOUT)
        self._sock = sock
        self._file = sock.makefile("rb")
        self._lock = threading.Lock()

    def _line(self) -> str:
        line = self._file.readline(1 << 16)
        if not line.endswith(b"\n"):
            raise ControlError("the daemon closed its control channel")
        return line[:-1].decode("ascii")

    def request(self, text: str) -> list[str]:
        """Sends one request line; its answer's lines ("ok ..." first)."""
        if "\n" in text:
            raise ValueError("a control request is one line")
        with self._lock:
            self._sock.sendall(text.encode("ascii") + b"\n")
            first = self._line()
            if first.startswith("error "):
                raise ControlError(first[len("error ") :])
            if not first.startswith("ok"):
                raise ControlError(f"unexpected control answer {first!r}")
            lines = [first]
            verb = text.split()[0] if text.split() else ""
            if verb in ("sessions", "session"):
                lines += [self._line() for _ in range(int(first.split()[1]))]
            return lines

    def close(self) -> None:
        with self._lock:
            self._file.close()
            self._sock.close()


def connect_control(address: str) -> ControlChannel:
    """Connects to a control channel: a unix socket path, or a loopback
    "127.0.0.1:PORT" (or a bare port)."""
    if "/" in address:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return ControlChannel(sock)
    port = int(address.rpartition(":")[2])
    return ControlChannel(socket.create_connection(("127.0.0.1", port), TIMEOUT))


class DaemonControls:
    """The test-bench controls of an embedded daemon, read and applied by
    its own event loop while it serves (they wait for it: a request to a
    daemon that is not serving times out with ``TimeoutError``).

    Sessions are named by a private group (``"#alice#localhost"``), a
    private name (``"alice"``) or a connected Mailbox.
    """

    def _control_channel(self) -> ControlChannel:
        raise NotImplementedError

    def _request(self, text: str) -> list[str]:
        return self._control_channel().request(text)

    def totals(self) -> dict[str, Any]:
        """The daemon-wide figures: ``sessions_open``, ``sessions_opened``,
        ``sessions_killed`` (by the daemon), ``sessions_closed`` (by their
        clients), ``connections``, ``groups``, ``queued_messages`` and
        ``queued_bytes`` (in every queue now), ``peak_messages`` and
        ``peak_bytes`` (the longest queue any session had), ``requests`` and
        ``multicasts`` (read from clients), ``queued_total`` and
        ``delivered`` (messages queued, and written whole to sockets),
        ``delivered_bytes``, ``backpressure_pauses`` and ``backpressure_ms``
        (the slow-reader budget spent), ``lagging_sessions`` (readers past
        half a limit now), ``paused`` (the whole daemon), and the limits in force:
        ``max_session_messages``, ``max_session_bytes``,
        ``slow_reader_budget``."""
        return _fields(self._request("totals")[0][len("ok ") :])

    def sessions(self) -> dict[str, dict[str, Any]]:
        """{private group: figures} for the open sessions and the last 256
        that ended (the newest of a name, if it came back). Figures:
        ``open``, ``killed`` (ended by the daemon: not reading, an invalid
        request, a control kill or drop) and ``reason`` (why it ended, None
        while open), ``queued_messages`` and ``queued_bytes`` (now; 0 once
        ended), ``peak_messages`` and ``peak_bytes``, ``queued_total`` (every
        message queued for it, memberships too), ``delivered`` and
        ``delivered_bytes`` (written whole to its socket), ``requests`` and
        ``multicasts`` (read from it), ``paused_requests``,
        ``paused_deliveries``, ``lagging`` and ``id`` (the connection's
        number in the daemon's log)."""
        out: dict[str, dict[str, Any]] = {}
        lines = self._request("sessions")[1:]
        # Open sessions come first, then ended ones, oldest first: an open
        # one wins over an ended one of the same name, a newer over an older.
        opened = [_session(line) for line in lines]
        for fig in [f for f in opened if not f["open"]] + [f for f in opened if f["open"]]:
            out[fig["group"]] = fig
        return out

    def session(self, session: Any) -> dict[str, Any]:
        """One session's figures (as in sessions()); ControlError if unknown."""
        return _session(self._request(f"session {_name(session)}")[1])

    def kill_session(self, session: Any) -> None:
        """Kills a session as the daemon kills a slow reader ("killing
        connection ... for not reading"): its queue is dropped, its socket
        closed, and the other members see CAUSED_BY_DISCONNECT."""
        self._request(f"kill {_name(session)}")

    def drop_session(self, session: Any) -> None:
        """Closes a session's socket at once, with nothing more written (a
        reset on TCP), as a crash would; the others see the disconnect."""
        self._request(f"drop {_name(session)}")

    def pause_session(self, session: Any, *, requests: bool = True, deliveries: bool = False):
        """Stops reading a session's requests (its sends then block once
        the socket buffers fill), and with ``deliveries=True`` writing to
        it too: it then fills like a reader that never reads, and is killed
        at ``max_session_messages`` unless back-pressure holds the senders."""
        if not requests and not deliveries:
            raise ValueError("pause_session() pauses requests, deliveries or both")
        what = "both" if requests and deliveries else "requests" if requests else "deliveries"
        self._request(f"pause {_name(session)} {what}")

    def resume_session(self, session: Any) -> None:
        """Ends pause_session(): requests and deliveries flow again."""
        self._request(f"resume {_name(session)}")

    def pause(self) -> None:
        """Pauses the whole daemon, as a hung one looks: nothing is
        accepted, read or written (connects time out, receives wait) until
        resume(). Only the control channel is still answered."""
        self._request("pause-daemon")

    def resume(self) -> None:
        """Ends pause(): the daemon goes on where it stopped."""
        self._request("resume-daemon")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """pause() for the duration of a with block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()
