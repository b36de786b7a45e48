"""The test-bench controls against a daemon someone else runs (a real
Spread daemon, named by SPREAD_TEST_DAEMON): what can be done from outside,
through its client protocol or a signal, and a clear error for the rest.

A real Spread daemon has no control channel, so its figures, its per-session
pauses and the simulated network are embedded-only. What works anywhere:

- ``drop_session(mbox)``: a Mailbox of this process loses its connection
  at once, without a goodbye (both ways shut down under it): the daemon
  ends the session, the others see CAUSED_BY_DISCONNECT, the mailbox
  ConnectionClosed.
- ``kill_session(mbox)``: the daemon's own slow-reader kill ("killing mbox
  ... for not reading"): a second connection floods the mailbox, which
  is not read meanwhile, until the daemon has ended it (its private name is
  free again: a probe connection with that name is accepted; the close
  itself cannot be seen from here, stuck behind the unread data). A real daemon kills at
  MAX_SESSION_MESSAGES (1000) queued; an embedded one started with
  ``slow_reader_budget=0`` behaves the same (with back-pressure on, the
  flood is held back instead, and this fails after its timeout).
- ``pause()`` / ``resume()``: SIGSTOP / SIGCONT to the daemon's process,
  given as ``pid`` (or SPREAD_TEST_DAEMON_PID): a hung daemon, as seen by
  every client.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

from ..daemon._control import ControlChannel, ControlError, DaemonControls

__all__ = ["EMBEDDED_ONLY", "ExternalDaemon"]

# The calls that need the embedded daemon's control channel, by the
# request they send (the first word of its line).
_CALLS = {
    "totals": "totals()",
    "sessions": "sessions()",
    "session": "session()",
    "pause": "pause_session()",
    "resume": "resume_session()",
    "remote-add": "add_remote_daemon()",
    "remote-member": "RemoteDaemon.member() and RemoteMember.join()/leave()/disconnect()",
    "remote-multicast": "RemoteMember.multicast()",
    "partition": "partition()",
    "merge": "merge()",
    "crash": "crash()",
    "settle": "settle()",
    "begin": "partition()/merge()/crash() with settle=False",
    "after": "partition()/merge()/crash()/settle() with after=",
    "network": "network() (and RemoteDaemon's properties)",
    "network-clock": "set_network_clock()",
    "network-address": "set_network_address()",
}
EMBEDDED_ONLY = tuple(dict.fromkeys(_CALLS.values()))
KILL_TIMEOUT = 30.0  # seconds for the daemon to kill a flooded session
TIMEOUT = 10.0  # a probe's connect
_FLOOD_PAYLOAD = 8192  # bytes per message: the buffers fill fast, the queue stays small


def _mailbox(session: Any, call: str):
    if isinstance(session, str) or not hasattr(session, "_descriptor"):
        raise TypeError(
            f"{call}() against a real daemon takes a Mailbox of this process, not "
            f"{session!r}: the daemon cannot be asked to act on a session by name"
        )
    if session.closed:
        raise ValueError(f"{call}(): {session!r} is closed already")
    return session


def _session_gone(spread, address: str, name: str) -> bool:
    """The daemon has ended the session of that private name: a connection
    taking the name is accepted (and closed at once)."""
    try:
        probe = spread.connect(address, name, membership=False, timeout=TIMEOUT)
    except spread.ConnectionRejected:
        return False
    probe.disconnect()
    return True


class ExternalDaemon(DaemonControls):
    """A daemon someone else runs, named by an address string ("4803",
    "4803@host"); ``pid`` (its process, on this machine) lets pause() and
    resume() signal it. The controls that need the embedded daemon raise
    ControlError naming themselves (EMBEDDED_ONLY)."""

    embedded = False

    def __init__(self, address: str, pid: int | None = None):
        self.address = address
        port, _, host = address.partition("@")
        self.port = int(port)
        self.host = host or "localhost"
        self.unix_address = port
        self.pid = pid
        self.options: dict = {}

    def _control_channel(self) -> ControlChannel:  # pragma: no cover - _request refuses first
        raise ControlError("a real Spread daemon has no control channel")

    def _request(self, text: str, payload: bytes = b"") -> list[str]:
        call = _CALLS.get(text.split()[0] if text.split() else "", "this control")
        raise ControlError(
            f"{call} needs the embedded daemon (spread.testing.EmbeddedDaemon or "
            f"spread.daemon.Daemon): {self.address} is a real Spread daemon, which has no "
            "control channel. Against it: drop_session() and kill_session() (a Mailbox of "
            "this process), pause() and resume() (given its pid)"
        )

    def drop_session(self, session: Any) -> None:
        """Cuts a Mailbox's connection under it, without a goodbye: the
        daemon sees the connection end, the other members a disconnect,
        the mailbox ConnectionClosed once it has read what had arrived."""
        mbox = _mailbox(session, "drop_session")
        with socket.socket(fileno=os.dup(mbox._descriptor)) as sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as e:  # already gone: nothing left to cut
                raise ControlError(f"drop_session(): {mbox!r} is not connected ({e})") from None

    def kill_session(self, session: Any) -> None:
        """Makes the daemon kill a Mailbox as a slow reader: a second
        connection sends it messages, which it does not read meanwhile,
        until the daemon closes its connection. The mailbox must not be read
        by a ThreadedReceiver (it would never fall behind)."""
        import spread  # a late import: spread.testing loads before spread is done

        mbox = _mailbox(session, "kill_session")
        fd = mbox._descriptor
        if mbox.fileno() != fd:
            raise ValueError(
                f"kill_session(): a ThreadedReceiver reads {mbox!r}, so it never falls behind"
            )
        target = mbox.private_group
        name = target.split("#")[1]
        payload = bytes(_FLOOD_PAYLOAD)
        deadline = time.monotonic() + KILL_TIMEOUT
        sent = 0
        with spread.connect(self.address, membership=False) as flood:
            while not _session_gone(spread, self.address, name):
                if time.monotonic() > deadline:
                    raise ControlError(
                        f"the daemon did not kill {target} within {KILL_TIMEOUT:.0f} s "
                        f"({sent} messages of {_FLOOD_PAYLOAD} bytes sent to it): does it kill "
                        "slow readers (an embedded one: slow_reader_budget=0)?"
                    )
                for _ in range(64):
                    flood.multicast(spread.RELIABLE_MESS, target, payload)
                sent += 64
                # Everything sent has reached the daemon's queues: a message
                # to itself comes back after them.
                flood.multicast(spread.RELIABLE_MESS, flood.private_group, b"")
                flood.receive()

    def _signal(self, sig: int, call: str) -> None:
        if self.pid is None:
            raise ControlError(
                f"{call}() against a real daemon needs its pid: ExternalDaemon(address, "
                "pid=...), or SPREAD_TEST_DAEMON_PID for the fixtures"
            )
        os.kill(self.pid, sig)

    def pause(self) -> None:
        """Stops the daemon's process (SIGSTOP): nothing is read, written or
        accepted until resume(), as a hung daemon looks."""
        self._signal(signal.SIGSTOP, "pause")

    def resume(self) -> None:
        """Lets the daemon's process go on (SIGCONT)."""
        self._signal(signal.SIGCONT, "resume")

    def start(self) -> ExternalDaemon:
        return self

    def stop(self) -> None:
        pass

    def __enter__(self) -> ExternalDaemon:
        return self

    def __exit__(self, *exc) -> None:
        pass
