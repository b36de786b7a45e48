"""spread.Mailbox and spread.connect(): the connection's cold half, written
once above both backends (argument checks, errors, repr, context manager,
join and leave, disconnect, start_receiver). The backend class it
subclasses holds the hot methods: multicast, multigroup_multicast, receive,
poll and fileno.

The layering rule (CONTRIBUTING.md): this class never overrides a hot
method, and adds no per-instance state (``__slots__ = ()``).
"""

from __future__ import annotations

from typing import Literal

from . import _args
from ._backend import core
from ._receiver import ThreadedReceiver

ACCEPT_SESSION = 1  # sp.h (tests/test_surface.py checks it against the backend)


class Mailbox(core.MailboxBase):
    """A connection to a Spread daemon; made by :func:`connect`."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        raise TypeError("Mailbox objects are made by spread.connect()")

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._descriptor}"
        return f"<spread.Mailbox {self.private_group!r} {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.disconnect()
        return False

    def disconnect(self) -> None:
        """Leaves every group and closes the connection; safe to call twice."""
        self._close(True)

    def kill(self) -> None:
        """Closes the connection without a disconnect request (SP_kill)."""
        self._close(False)

    def join(self, group) -> None:
        """Joins a group; membership notices follow as messages."""
        self._membership_request(group, True)

    def leave(self, group) -> None:
        """Leaves a group."""
        self._membership_request(group, False)

    def _membership_request(self, group, join: bool) -> None:
        r = self._request(_args.group_bytes(group), join)
        if r < 0:
            what = "join" if join else "leave"
            raise _args.error(r, f"{what}({group!r})", core.error_text(r))

    def start_receiver(self, **options) -> ThreadedReceiver:
        """Starts a ThreadedReceiver on this mailbox and returns it. From then
        on receive(), poll() and fileno() work through its queue, so the
        daemon never sees a slow reader."""
        return ThreadedReceiver(self, **options)


def connect(
    daemon="4803",
    name="",
    priority=0,
    membership=1,
    *,
    bytes_names=False,
    timeout=_args.DEFAULT_TIMEOUT,
    socket_buffer=None,
) -> Mailbox:
    """Connects to a Spread daemon and returns a Mailbox.

    daemon: "4803" (unix socket /tmp/4803) or "4803@host" (TCP). name: the
    private name (at most 10 bytes; "" lets the daemon pick one). priority:
    LOW_PRIORITY, MEDIUM_PRIORITY or HIGH_PRIORITY. membership: whether to
    receive membership notices. bytes_names: return names as bytes instead
    of str. timeout: seconds for the connect and handshake together (10 by
    default; None waits as long as it takes); ConnectTimeout after it. A
    signal (Ctrl-C) ends the wait at once. socket_buffer: None (over TCP the
    kernel sizes the buffers and grows them as needed, so that a reader that
    falls behind does not stall; the unix socket keeps Spread's 200 KiB), 0
    (the kernel's own sizes), or a fixed size in bytes for SO_SNDBUF and
    SO_RCVBUF (README.md, "Socket buffers").
    """
    d, nm, prio, memb, as_bytes, secs, sbuf = _args.connect_args(
        daemon, name, priority, membership, bytes_names, timeout, socket_buffer
    )
    r, mbox = core.connect_raw(Mailbox, d, nm, prio, memb, as_bytes, secs, sbuf)
    if r != ACCEPT_SESSION:
        raise _args.connect_error(r, daemon, secs, core.error_text(r))
    return mbox
