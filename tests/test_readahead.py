"""The mailbox's descriptor stays exact with the library's read-ahead on.

The Cython backend turns on peeked read-ahead (SPX_set_peek, spx.h): a
receive() reads all that has arrived with one MSG_PEEK, and the messages it
returns leave the socket only once no whole message is left in that read. So
`fileno()` must be readable exactly while a message is pending, whatever
`select`, `selectors` or asyncio a user watches it with: a message already
in the library's buffer while nothing else has arrived must still make it
readable. These tests hold any backend to that (the cffi one reads without
read-ahead), and check that nothing is lost or doubled where the peeked path
hands over to the plain one (memberships, short buffers, messages larger than
one peek, a receiver started mid-burst, two threads receiving).
"""

from __future__ import annotations

import asyncio
import select
import selectors
import threading
import time
import uuid

import pytest

import spread

HEADER = 48
SLOT = 32


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)  # polling a kernel figure with a deadline, not a guess
    assert condition()


def readable(mbox) -> bool:
    fd = mbox.fileno()
    if fd < 1024:  # select() takes descriptors below FD_SETSIZE only
        return select.select([fd], [], [], 0)[0] != []
    # (PyPy frees earlier tests' mailboxes late, so descriptors climb past it)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def wire_size(payload: bytes, groups: int = 1) -> int:
    return HEADER + SLOT * groups + len(payload)


def burst(sender, group, payloads) -> int:
    """Sends payloads to group; the bytes they take on a reader's socket."""
    for i, p in enumerate(payloads):
        sender.multicast(spread.FIFO_MESS, group, p, i % 30000)
    return sum(wire_size(p) for p in payloads)


@pytest.fixture
def pair(spread_mailbox_factory):
    """A reader that has joined a group (its own join notice taken), and a sender."""
    group = "ra-" + uuid.uuid4().hex[:10]
    reader = spread_mailbox_factory(membership=False)
    reader.join(group)
    sender = spread_mailbox_factory(membership=False)
    return reader, sender, group


def payloads(n: int, size: int = 1000) -> list[bytes]:
    return [i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4) for i in range(n)]


# Bursts small enough to sit wholly in the socket (so that "all has arrived"
# can be waited for), and larger than one peek (64 KiB) where they can.
@pytest.mark.parametrize("size, count", [(10, 100), (1000, 60), (9000, 8)])
def test_select_readable_exactly_while_a_message_is_pending(pair, size, count):
    reader, sender, group = pair
    sent = payloads(count, size)
    total = burst(sender, group, sent)
    wait_for(lambda: reader.poll() >= total)  # all of it has arrived: nothing more will
    for i, p in enumerate(sent):
        assert readable(reader), f"message {i} of {len(sent)} pending, select() says no"
        assert reader.poll() == total - sum(wire_size(q) for q in sent[:i])
        msg = reader.receive()
        assert msg.message == p and msg.msg_type == i % 30000
    assert not readable(reader)
    assert reader.poll() == 0


def test_selectors_user_gets_every_message(pair):
    reader, sender, group = pair
    sent = payloads(500, 300)
    burst(sender, group, sent)
    got = []
    with selectors.DefaultSelector() as sel:
        sel.register(reader.fileno(), selectors.EVENT_READ)
        while len(got) < len(sent):
            assert sel.select(timeout=10), f"stalled after {len(got)} messages"
            got.append(reader.receive().message)  # one message per readiness: the worst case
        assert sel.select(timeout=0) == []
    assert got == sent


def test_asyncio_add_reader_gets_every_message(pair):
    reader, sender, group = pair
    sent = payloads(500, 700)

    async def main():
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = loop.create_future()

        def on_readable():
            got.append(reader.receive().message)
            if len(got) == len(sent) and not done.done():
                done.set_result(None)

        loop.add_reader(reader.fileno(), on_readable)
        try:
            burst(sender, group, sent)
            await asyncio.wait_for(done, 20)
        finally:
            loop.remove_reader(reader.fileno())
        return got

    assert asyncio.run(main()) == sent


def test_fileno_taken_mid_burst_is_still_exact(pair):
    """A descriptor first handed out while messages wait in the library's
    buffer (some of a burst already received)."""
    reader, sender, group = pair
    sent = payloads(50, 1000)
    total = burst(sender, group, sent)
    wait_for(lambda: reader.poll() >= total)
    for p in sent[:10]:
        assert reader.receive().message == p
    rest = sent[10:]
    while rest:
        assert select.select([reader.fileno()], [], [], 5)[0], f"{len(rest)} pending, not readable"
        assert reader.receive().message == rest.pop(0)
    assert not readable(reader)


def test_a_header_only_message_keeps_the_descriptor_readable(spread_mailbox_factory):
    """A self-leave (SPEC 6.4) is a header alone: still readable while it waits
    behind a burst."""
    group = "ra-" + uuid.uuid4().hex[:10]
    reader = spread_mailbox_factory(membership=True)
    reader.join(group)
    assert isinstance(reader.receive(), spread.MembershipMsg)  # our join
    sent = payloads(20, 100)
    for p in sent:
        reader.multicast(spread.FIFO_MESS, group, p)
    reader.leave(group)
    wait_for(lambda: reader.poll() >= sum(wire_size(p) for p in sent) + HEADER)
    for p in sent:
        assert readable(reader)
        assert reader.receive().message == p
    assert readable(reader), "the self-leave is pending"
    notice = reader.receive()
    assert isinstance(notice, spread.MembershipMsg) and notice.reason == spread.CAUSED_BY_LEAVE
    assert not readable(reader)


def test_memberships_and_data_interleaved_keep_their_order(spread_mailbox_factory):
    """Data and joins interleaved in the socket come out in the daemon's
    order: the one a second member sees through its ThreadedReceiver (the
    drain's path, not the peek). Spread orders a member's own multicasts and
    another session's joins by when the daemon takes each, so only that
    common order is promised (a real daemon puts the joins last here)."""
    group = "ra-" + uuid.uuid4().hex[:10]
    witness = spread_mailbox_factory(membership=True)
    witness.join(group)
    assert isinstance(witness.receive(), spread.MembershipMsg)
    rx = witness.start_receiver()
    reader = spread_mailbox_factory(membership=True)
    reader.join(group)
    assert isinstance(reader.receive(), spread.MembershipMsg)
    assert isinstance(rx.get(timeout=10), spread.MembershipMsg)  # the reader's join
    others = []
    expected = []
    for i in range(5):
        reader.multicast(spread.AGREED_MESS, group, b"d%d" % i)
        expected.append(("data", b"d%d" % i))
        m = spread_mailbox_factory(membership=False)
        m.join(group)
        others.append(m)
        expected.append(("join", None))

    def kind(msg):
        return ("join", None) if isinstance(msg, spread.MembershipMsg) else ("data", msg.message)

    kinds = [kind(reader.receive()) for _ in expected]
    seen = [kind(rx.get(timeout=10)) for _ in expected]
    assert kinds == seen
    assert sorted(kinds, key=repr) == sorted(expected, key=repr)
    assert [k for k in kinds if k[0] == "data"] == [k for k in expected if k[0] == "data"]
    assert not readable(reader)
    rx.close()


def test_messages_larger_than_one_peek_in_a_burst(pair):
    """(Too much to sit in the socket at once: the daemon holds the rest, so
    readiness may come a moment after a receive, but it must come.)"""
    reader, sender, group = pair
    sent = [b"a" * 100, b"b" * 90_000, b"c" * 100, b"d" * 70_000, b"e" * 10] * 4
    burst(sender, group, sent)
    for i, p in enumerate(sent):
        assert select.select([reader.fileno()], [], [], 10)[0], f"message {i} never readable"
        assert reader.receive().message == p
    assert not readable(reader)


def test_more_groups_than_the_first_buffer_takes(spread_mailbox_factory):
    tag = uuid.uuid4().hex[:8]
    names = [f"ra-{tag}-{i}" for i in range(40)]
    reader = spread_mailbox_factory(membership=False)
    for n in names:
        reader.join(n)
    sender = spread_mailbox_factory(membership=False)
    sender.multicast(spread.FIFO_MESS, names[0], b"first")
    sender.multigroup_multicast(spread.FIFO_MESS, names, b"wide")
    sender.multicast(spread.FIFO_MESS, names[1], b"last")
    got = [reader.receive() for _ in range(3)]
    assert [m.message for m in got] == [b"first", b"wide", b"last"]
    assert len(got[1].groups) == len(names)
    assert set(got[1].groups) == set(names)


def test_a_receiver_started_mid_burst_gets_the_rest_once(pair):
    reader, sender, group = pair
    sent = payloads(100, 500)
    total = burst(sender, group, sent)
    wait_for(lambda: reader.poll() >= total)
    head = [reader.receive().message for _ in range(30)]
    rx = reader.start_receiver()
    try:
        tail = []
        while len(tail) < 70:
            tail.extend(m.message for m in rx.get_batch(1000, timeout=10))
    finally:
        rx.close()
    assert head + tail == sent


def test_two_threads_receiving_get_each_message_once(pair):
    reader, sender, group = pair
    sent = payloads(3000, 64)
    got: list[list[bytes]] = [[], []]
    start = threading.Barrier(3)

    def take(out):
        start.wait()
        while True:
            m = reader.receive()
            if m.message == b"end":
                return
            out.append(m.message)

    threads = [threading.Thread(target=take, args=(g,), daemon=True) for g in got]
    for t in threads:
        t.start()
    start.wait()
    burst(sender, group, sent)
    sender.multicast(spread.FIFO_MESS, group, b"end")
    sender.multicast(spread.FIFO_MESS, group, b"end")
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert sorted(got[0] + got[1]) == sorted(sent)
    order = {p: i for i, p in enumerate(sent)}
    for g in got:  # each thread's share in the order sent
        assert g == sorted(g, key=order.__getitem__)
