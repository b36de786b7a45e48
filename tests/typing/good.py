"""A typed program over the whole public API. tests/test_typing.py checks it
with mypy --strict (no error allowed) and also runs exchange() against a
daemon, so the types asserted here are the ones the backends really return.

The runtime classes are not subscriptable: "spread.Mailbox[str]" is written
in annotations (lazy under the __future__ import) and in quotes elsewhere.
"""

from __future__ import annotations

import select
from collections.abc import Callable  # noqa: F401  (named in a quoted type below)
from typing import TYPE_CHECKING

import spread
import spread.daemon
import spread.testing
from spread._backend import core

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:

    def assert_type(value, _type):
        return value


GROUP = "typing-good"


def describe(msg: spread.RegularMsg[str] | spread.MembershipMsg[str]) -> str:
    """isinstance narrows a received message to its class."""
    if isinstance(msg, spread.RegularMsg):
        assert_type(msg, "spread.RegularMsg[str]")
        sender: str = msg.sender
        groups: tuple[str, ...] = msg.groups
        payload: bytes = msg.message
        numbers: list[int] = [msg.msg_type, msg.endian, msg.service_type]
        return f"{sender} -> {groups}: {payload!r} {numbers}"
    assert_type(msg, "spread.MembershipMsg[str]")
    group: str = msg.group
    members: tuple[str, ...] = msg.members
    extra: tuple[str, ...] = msg.extra
    sets: tuple[tuple[str, ...], ...] = msg.orig_members
    changed: str | None = msg.changed_member
    gid: spread.GroupId | None = msg.group_id
    ident: tuple[int, int, int] | None = gid.id if gid is not None else None
    flags: list[int] = [msg.reason, msg.msg_subtype, msg.service_type]
    return f"{group} {members} {extra} {sets} {changed} {ident} {flags}"


def sender_of(msg: spread.RegularMsg[bytes] | spread.MembershipMsg[bytes]) -> bytes:
    """With bytes_names=True every name is bytes."""
    return msg.sender if isinstance(msg, spread.RegularMsg) else msg.group


def next_regular(mbox: spread.Mailbox[str]) -> spread.RegularMsg[str]:
    while True:
        msg = mbox.receive()
        if isinstance(msg, spread.RegularMsg):
            return msg


def layers(mbox: spread.Mailbox[str], rx: spread.ThreadedReceiver[str]) -> None:
    """The public classes subclass the backend's (spread._backend.core, typed by
    _core.pyi): a Mailbox is a MailboxBase, a ThreadedReceiver a ReceiverBase,
    and the receiver's mailbox is still the public Mailbox."""
    hot: core.MailboxBase[str] = mbox
    drains: core.ReceiverBase[str] = rx
    assert isinstance(hot, core.MailboxBase) and isinstance(drains, core.ReceiverBase)
    assert_type(rx.mailbox, "spread.Mailbox[str]")
    assert_type(drains.mailbox, "core.MailboxBase[str]")
    assert_type(hot.receive, "Callable[[], spread.RegularMsg[str] | spread.MembershipMsg[str]]")
    assert drains.mailbox is rx.mailbox is mbox
    assert not mbox.closed and hot.private_group == mbox.private_group


def bench_loops(mbox: spread.Mailbox[bytes]) -> float:
    """spread.bench's C loops take any mailbox (type-checked, not run)."""
    return core.c_multicast(mbox, b"group", 100, 10) + core.c_self(mbox, "group", 100, 10, 4)


def exchange(address: str) -> None:
    """Two mailboxes, str names and bytes names, and a receiver: runs against
    the daemon at address."""
    with spread.connect(address, "", spread.MEDIUM_PRIORITY, 1, timeout=10.0) as alice:
        assert_type(alice, "spread.Mailbox[str]")
        me: str = alice.private_group
        assert isinstance(me, str) and not alice.closed
        alice.join(GROUP)
        joined = alice.receive()
        assert isinstance(joined, spread.MembershipMsg)
        assert isinstance(joined.group, str) and me in joined.members
        assert joined.group_id is not None and joined.group_id == joined.group_id
        assert hash(joined.group_id) == hash(joined.group_id)
        describe(joined)

        sent: int = alice.multicast(spread.SAFE_MESS, GROUP, b"one", 7)
        alice.multicast(spread.AGREED_MESS, GROUP.encode(), bytearray(b"two"))
        alice.multicast(spread.FIFO_MESS | spread.SELF_DISCARD, me, memoryview(b"x"), msg_type=1)
        alice.multigroup_multicast(spread.RELIABLE_MESS, [GROUP, me.encode()], "three")
        assert sent == 3
        first = next_regular(alice)
        assert first.message == b"one" and first.msg_type == 7
        assert isinstance(first.sender, str) and first.groups == (GROUP,)
        describe(first)

        with spread.connect(address.encode(), b"", bytes_names=True) as bob:
            assert_type(bob, "spread.Mailbox[bytes]")
            bob_name: bytes = bob.private_group
            bob.multicast(spread.RELIABLE_MESS, me, "to alice")
            while not next_regular(alice).message == b"to alice":
                pass
            bob.join(GROUP.encode())
            note = bob.receive()
            assert isinstance(sender_of(note), bytes) and bob_name
            bob.leave(GROUP)
            while bob.poll() == 0:
                select.select([bob.fileno()], [], [], 5.0)

        with spread.ThreadedReceiver(alice, max_backlog_bytes=1 << 20, on_overflow="block") as rx:
            assert_type(rx, "spread.ThreadedReceiver[str]")
            alice.multicast(spread.SAFE_MESS, GROUP, b"queued")
            got = rx.get(timeout=10.0)
            describe(got)
            batch: list[spread.RegularMsg[str] | spread.MembershipMsg[str]] = rx.get_batch(8, 0.1)
            assert batch
            try:
                rx.get_nowait()
            except spread.Empty:
                pass
            counts: list[int] = [rx.qsize(), rx.backlog_bytes, rx.fileno(), alice.poll()]
            rate: float = rx.stats["drain_rate"]
            received: int = rx.stats["received"]
            assert counts[0] == 0 and rate >= 0 and received >= 1 and not rx.closed
            same: spread.Mailbox[str] = rx.mailbox
            assert same is alice
            layers(alice, rx)
        for leftover in rx:  # closed: iteration ends once the queue is empty
            describe(leftover)
        try:
            rx.get(0)
        except spread.ReceiverClosed as e:
            code: int = e.code
            assert code == spread.ILLEGAL_SESSION
        alice.leave(GROUP)
        alice.disconnect()
        assert alice.closed
        try:
            alice.join(GROUP)
        except spread.IllegalSession as e:
            text: str = e.text
            assert e.args == (spread.ILLEGAL_SESSION, text)


def connect_either(address: str, as_bytes: bool) -> int:
    """A bytes_names known only at run time gives either kind of mailbox."""
    mbox = spread.connect(address, bytes_names=as_bytes)
    assert_type(mbox, "spread.Mailbox[str] | spread.Mailbox[bytes]")
    mbox.join(GROUP)
    rx = mbox.start_receiver(on_overflow="disconnect")
    msg = rx.get(timeout=10.0)
    name: str | bytes = msg.sender if isinstance(msg, spread.RegularMsg) else msg.group
    mbox.kill()
    return len(name)


def errors(address: str) -> type[spread.SpreadError]:
    try:
        spread.connect(
            address, "typed", spread.LOW_PRIORITY, membership=False, timeout=None
        ).disconnect()
    except spread.CouldNotConnect as e:
        print(e.code, e.text, spread.error_text(e.code))
    except (spread.ConnectionRejected, spread.IllegalSpread) as e:
        print(e)
    except spread.error as e:
        print(e.args)
    kind: type[spread.SpreadError] = spread.error_class(spread.CONNECTION_CLOSED)
    for cls in (
        spread.ConnectionClosed,
        spread.NetErrorOnSession,
        spread.IllegalGroup,
        spread.IllegalService,
        spread.IllegalMessage,
        spread.MessageTooLong,
        spread.BacklogOverflow,
    ):
        assert issubclass(cls, spread.SpreadError)
    return kind


def module_facts() -> str:
    v: tuple[int, int, int] = spread.version()
    sizes: list[int] = [
        spread.DEFAULT_BUFFER_SIZE,
        spread.DEFAULT_GROUPS_SIZE,
        spread.MAX_GROUP_NAME,
        spread.DEFAULT_SPREAD_PORT,
    ]
    kinds: list[type[object]] = [
        spread.MailboxType,
        spread.RegularMsgType,
        spread.MembershipMsgType,
    ]
    backend: str = spread.backend
    return f"{spread.__version__} {v} {sizes} {kinds} {backend}"


def daemons() -> list[str]:
    """spread.daemon and spread.testing (type-checked, not run)."""
    port: int = spread.testing.free_port()
    with spread.daemon.Daemon(port, host="127.0.0.1", unix_socket=False) as served:
        address: str = served.address
    with spread.testing.EmbeddedDaemon(max_session_messages=50) as embedded:
        found: bool = embedded.wait_for_log("ready", timeout=1.0)
        lines: list[str] = embedded.log
        assert found or lines
    external = spread.testing.ExternalDaemon("4803@localhost").start()
    external.stop()
    levels: dict[str, int] = spread.daemon.LOG_LEVELS
    return [address, embedded.unix_address, external.address, *levels]
