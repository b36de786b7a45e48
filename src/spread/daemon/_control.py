"""The embedded daemon's control channel, from Python: figures and faults
for tests (native/daemon/control.c has the request format). One client for
every form of the daemon: in this process (spread.daemon.Daemon, over a
socketpair), in a subprocess (spread.testing.EmbeddedDaemon, over a unix
socket) or any daemon started with ``--control``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

__all__ = [
    "ControlChannel",
    "ControlError",
    "DaemonControls",
    "RemoteDaemon",
    "RemoteMember",
    "connect_control",
]

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

    def request(self, text: str, payload: bytes = b"") -> list[str]:
        """Sends one request line (and the payload bytes it announces, for
        remote-multicast); its answer's lines ("ok ..." first)."""
        if "\n" in text:
            raise ValueError("a control request is one line")
        with self._lock:
            self._sock.sendall(text.encode("ascii") + b"\n" + payload)
            first = self._line()
            if first.startswith("error "):
                raise ControlError(first[len("error ") :])
            if not first.startswith("ok"):
                raise ControlError(f"unexpected control answer {first!r}")
            lines = [first]
            verb = text.split()[0] if text.split() else ""
            if verb in ("sessions", "session", "network"):
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


# The simulated network's names, as the daemon checks them (control.c).
_NAME_CHARS = re.compile(r"[$-~]+\Z")
_SERVICE_BITS = 0x3F
_SELF_DISCARD = 0x40
_MAX_BODY = 144000
_MAX_TOTAL = 143952
_SLOT = 32


def _plain_name(name: Any, what: str, most: int) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str):
        raise TypeError(f"a {what} name is a str, not {type(name).__name__}")
    if not 1 <= len(name) <= most or not _NAME_CHARS.match(name) or "#" in name:
        raise ValueError(
            f"{what} name must be 1 to {most} characters from '$' to '~', without '#': {name!r}"
        )
    return name


def _destination(group: Any) -> str:
    if isinstance(group, bytes):
        group = group.decode("ascii", "replace")
    if not isinstance(group, str):
        raise TypeError(f"a group name is a str, not {type(group).__name__}")
    ok = 1 <= len(group) <= 31 and bool(_NAME_CHARS.match(group.replace("#", "$")))
    if group.startswith("#"):
        ok = ok and group.count("#") == 2 and "##" not in group and not group.endswith("#")
    elif "#" in group:
        ok = False
    if not ok:
        raise ValueError(
            "a group name must be 1 to 31 characters from '$' to '~' without '#' "
            f"(or a private group '#name#daemon'): {group!r}"
        )
    return group


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def _notices(answer: list[str]) -> int:
    return int(_fields(answer[0][len("ok ") :])["notices"])


class RemoteMember:
    """A member of a simulated remote daemon: private group ``#name#daemon``.

    Its joins, leaves, disconnect and multicasts reach the local members as
    if from another daemon of the network. Each call returns the number of
    messages the daemon produced for local clients (membership notices, or
    the one data message)."""

    def __init__(self, remote: RemoteDaemon, name: str):
        self.daemon = remote
        self.name = name

    @property
    def private_group(self) -> str:
        return f"#{self.name}#{self.daemon.name}"

    def __repr__(self) -> str:
        return f"<RemoteMember {self.private_group}>"

    def _request(self, text: str, payload: bytes = b"") -> list[str]:
        return self.daemon.controls._request(text, payload)

    def join(self, group: str) -> int:
        """Joins group: CAUSED_BY_JOIN for its local members, if its
        daemon is connected to ours (nothing happens if already a member)."""
        group = _destination(group)
        if group.startswith("#"):
            raise ValueError(f"cannot join a private group: {group!r}")
        return _notices(self._request(f"remote-member {self.daemon.name} {self.name} join {group}"))

    def leave(self, group: str) -> int:
        """Leaves group: CAUSED_BY_LEAVE for its local members."""
        group = _destination(group)
        if group.startswith("#"):
            raise ValueError(f"cannot leave a private group: {group!r}")
        text = f"remote-member {self.daemon.name} {self.name} leave {group}"
        return _notices(self._request(text))

    def disconnect(self) -> int:
        """Disconnects: CAUSED_BY_DISCONNECT in each of its groups (by name).
        The name can be used again afterwards (a new member)."""
        return _notices(self._request(f"remote-member {self.daemon.name} {self.name} disconnect"))

    def multicast(self, service: int, group: Any, data: Any, msg_type: int = 0) -> int:
        """Sends data as this member: service (``AGREED_MESS`` ...,
        optionally ``| SELF_DISCARD``), group (a name, a private group, or
        a list of them), msg_type (-32768 to 65535). Local members receive
        it from ``#name#daemon``; nothing arrives across a partition."""
        service = _int(service, "service")
        msg_type = _int(msg_type, "msg_type")
        kinds = service & _SERVICE_BITS
        if service & ~(_SERVICE_BITS | _SELF_DISCARD) or not kinds or kinds & (kinds - 1):
            raise ValueError(
                "service must be exactly one of UNRELIABLE_MESS .. SAFE_MESS, "
                f"optionally with SELF_DISCARD: {service:#x}"
            )
        if not -32768 <= msg_type <= 65535:
            raise ValueError(f"msg_type must be -32768 to 65535: {msg_type}")
        groups = [group] if isinstance(group, (str, bytes)) else list(group)
        if not 1 <= len(groups) <= 100:
            raise ValueError("multicast() takes 1 to 100 groups")
        names = [_destination(g) for g in groups]
        if isinstance(data, str):
            data = data.encode()
        payload = bytes(memoryview(data))
        if len(payload) > _MAX_BODY or len(payload) + _SLOT * len(names) > _MAX_TOTAL:
            raise ValueError(
                "payload + 32 bytes per group must be at most 143952 bytes: "
                f"{len(payload)} bytes to {len(names)} group(s)"
            )
        text = (
            f"remote-multicast {self.daemon.name} {self.name} {service} {msg_type} "
            f"{','.join(names)} {len(payload)}"
        )
        if len(text) >= 255:
            raise ValueError("too many or too long group names for one control request")
        return _notices(self._request(text, payload))


class RemoteDaemon:
    """A simulated remote daemon (``DaemonControls.add_remote_daemon``)."""

    def __init__(self, controls: DaemonControls, name: str):
        self.controls = controls
        self.name = name

    def __repr__(self) -> str:
        return f"<RemoteDaemon {self.name}>"

    def member(self, name: str) -> RemoteMember:
        """A member of this daemon, ``#name#daemon`` (created if new)."""
        name = _plain_name(name, "member", 10)
        self.controls._request(f"remote-member {self.name} {name}")
        return RemoteMember(self, name)

    def _state(self) -> dict[str, Any]:
        return self.controls.network()["daemons"][self.name]

    @property
    def connected(self) -> bool:
        """Up and in our daemon's component."""
        return bool(self._state()["connected"])

    @property
    def alive(self) -> bool:
        """Not crashed (merge() restarts a crashed one)."""
        return bool(self._state()["alive"])

    @property
    def reachable(self) -> bool:
        """Its members' data and changes reach us now: up, not cut off by
        a change on its way (a delayed or pending partition or crash)."""
        return bool(self._state()["reachable"])

    @property
    def address(self) -> str:
        return str(self._state()["address"])


def _remote_names(remotes: tuple, verb: str) -> str:
    if not remotes:
        raise TypeError(f"{verb}() takes at least one remote daemon")
    names = []
    for r in remotes:
        name = r.name if isinstance(r, RemoteDaemon) else r
        names.append(_plain_name(name, "remote daemon", 19))
    return " ".join(names)


_MAX_AFTER = 3600.0  # seconds: the control channel's "after" limit


def _event(verb: str, remotes: tuple, after: float | None, settle: bool) -> str:
    """The request line of a network event: "[after MS] [begin] VERB DAEMON..."."""
    text = f"{verb} {_remote_names(remotes, verb)}"
    if not isinstance(settle, bool):
        raise TypeError(f"settle must be a bool, not {type(settle).__name__}")
    if not settle:
        text = "begin " + text
    return _after(after) + text


def _after(after: float | None) -> str:
    if after is None:
        return ""
    if isinstance(after, bool) or not isinstance(after, (int, float)):
        raise TypeError(f"after must be a number of seconds, not {type(after).__name__}")
    if not 0 <= after <= _MAX_AFTER:
        raise ValueError(f"after must be 0 to {_MAX_AFTER:.0f} seconds: {after}")
    return f"after {round(after * 1000)} "


class DaemonControls:
    """The test-bench controls of an embedded daemon, read and applied by
    its own event loop while it serves (they wait for it: a request to a
    daemon that is not serving times out with ``TimeoutError``).

    Sessions are named by a private group (``"#alice#localhost"``), a
    private name (``"alice"``) or a connected Mailbox.
    """

    # Whether every control works (an embedded daemon); False for a real
    # daemon (spread.testing.ExternalDaemon), where most are embedded-only.
    embedded = True

    def _control_channel(self) -> ControlChannel:
        raise NotImplementedError

    def _request(self, text: str, payload: bytes = b"") -> list[str]:
        return self._control_channel().request(text, payload)

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

    # ---- the simulated network (native/daemon/remote.md) ----------------

    def add_remote_daemon(
        self, name: str, *, address: str | None = None, connected: bool = True
    ) -> RemoteDaemon:
        """Adds a simulated remote daemon (private groups ``#member#name``),
        in our daemon's component unless ``connected=False``. ``address``
        (an IPv4 address, "127.0.0.2") orders it in the configuration;
        None gives it the next one above the highest so far. Local members
        see nothing until its members join their groups."""
        name = _plain_name(name, "remote daemon", 19)
        text = f"remote-add {name}"
        if address is not None:
            if not isinstance(address, str) or " " in address:
                raise ValueError(f"address must be an IPv4 address string: {address!r}")
            text += f" {address}"
        self._request(text + ("" if connected else " alone"))
        return RemoteDaemon(self, name)

    def remote_daemon(self, name: str) -> RemoteDaemon:
        """The remote daemon of that name (ControlError if there is none)."""
        name = _plain_name(name, "remote daemon", 19)
        if name not in self.network()["daemons"] or name == self.network()["local"]:
            raise ControlError(f"no remote daemon {name}")
        return RemoteDaemon(self, name)

    def partition(
        self, *remotes: RemoteDaemon | str, after: float | None = None, settle: bool = True
    ) -> int:
        """Cuts the given remote daemons off, together (they form one
        component): each local group with members on them gets
        TRANSITION_MESS with its old id, then CAUSED_BY_NETWORK with the
        members on our side, one vs-set, and a fresh group id. Returns the
        number of messages produced.

        ``settle=False`` only begins the change, as a real network does
        under churn (SPEC.md 6.8): TRANSITION_MESS now, the rest at
        settle(); joins and leaves meanwhile come as network memberships
        (see settle()). ``after=SECONDS``: the event happens that much
        later, as a real cut is noticed only once the token is lost (about
        11 s in Spread 4); traffic from the daemons cut off stops at once.
        A delayed event returns 0: its messages arrive at its time."""
        return _notices(self._request(_event("partition", remotes, after, settle)))

    def merge(
        self, *remotes: RemoteDaemon | str, after: float | None = None, settle: bool = True
    ) -> int:
        """Merges the components of the given remote daemons with ours in one
        event (also the heal of a multi-way split): CAUSED_BY_NETWORK with
        every member, one vs-set per previous component, no transitional
        message. A crashed daemon comes back without members. While a change
        is pending, a merge at once settles it with this one: one network
        membership with a set per component. ``after`` and ``settle`` as
        in partition() (a real merge starts only once traffic crosses: up
        to 300 s for an idle daemon)."""
        return _notices(self._request(_event("merge", remotes, after, settle)))

    def crash(
        self, remote: RemoteDaemon | str, *, after: float | None = None, settle: bool = True
    ) -> int:
        """Crashes a remote daemon: for local members, a cut (as partition),
        and its members are gone (a partitioned daemon's members stay, and
        a merge brings them back; a crashed one comes back empty). ``after``
        and ``settle`` as in partition(): with ``after``, its members fall
        silent at once and the cut comes at its time (a real crash is
        noticed after about 11 s)."""
        return _notices(self._request(_event("crash", (remote,), after, settle)))

    def settle(self, *, after: float | None = None) -> int:
        """Installs the change begun with ``settle=False``: one network
        membership per group it concerns (with no second TRANSITION_MESS),
        and one for each group told TRANSITION_MESS even if nothing is lost
        in the end. Until then, in each group told TRANSITION_MESS, a join
        or a leave by a member that stays comes as CAUSED_BY_NETWORK listing
        every member still there (the vs-sets: those that stay, each
        leaving daemon's members, a joiner alone last), with the
        transitional membership's id and c counting on, followed by another
        TRANSITION_MESS; the members of daemons on their way out cannot
        join or leave (ControlError) and their data is lost. ControlError
        if no change is pending."""
        return _notices(self._request(_after(after) + "settle"))

    def network(self) -> dict[str, Any]:
        """The simulated network: ``local`` (our daemon's name), ``memb_id``
        (our component's daemon membership id, the a and b of new group
        ids), ``clock`` (set_network_clock's, or None), ``pending`` (a
        change begun, not settled), ``scheduled`` (delayed events still to
        come) and ``daemons``: {name: {index, address, local, connected,
        alive, reachable}}."""
        lines = self._request("network")
        head = _fields(lines[0][len("ok ") :].partition(" ")[2].replace(",", " b="))
        daemons: dict[str, dict[str, Any]] = {}
        local = ""
        for line in lines[1:]:
            fields: dict[str, Any] = {}
            for word in line.split()[1:]:
                key, _, value = word.partition("=")
                fields[key] = value if key in ("name", "address") else int(value)
            for key in ("local", "connected", "alive", "reachable"):
                fields[key] = bool(fields[key])
            if fields["local"]:
                local = fields["name"]
            daemons[fields.pop("name")] = fields
        return {
            "local": local,
            "memb_id": (head["memb_id"], head["b"]),
            "clock": head["clock"] or None,
            "pending": bool(head["pending"]),
            "scheduled": head["scheduled"],
            "daemons": daemons,
        }

    def set_network_address(self, address: str) -> None:
        """Our daemon's IPv4 address in the simulated network (127.0.0.1
        unless set): the ``a`` of group ids it leads, and its place in the
        configuration order. Only before the first add_remote_daemon()."""
        if not isinstance(address, str) or " " in address or not address:
            raise ValueError(f"address must be an IPv4 address string: {address!r}")
        self._request(f"network-address {address}")

    def set_network_clock(self, seconds: int | None) -> None:
        """Fixes the time network events are stamped with (the b of the
        group ids they form, which otherwise is the wall clock), or goes
        back to the wall clock with None. Set before the first
        add_remote_daemon(), it also restarts our daemon's membership id
        just before it, so that ids read exactly as in a recorded trace."""
        if seconds is None:
            self._request("network-clock real")
            return
        seconds = _int(seconds, "seconds")
        if not 1 <= seconds <= 2**31 - 1:
            raise ValueError(f"seconds must be 1 to 2147483647: {seconds}")
        self._request(f"network-clock {seconds}")
