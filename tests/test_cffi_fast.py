"""The cffi backend's hot paths keep the interpreter lock (native/include/
cffi_fast.h, src/spread/_cffi_build.py): cffi itself gives it up around
every call, and under CPU-bound Python threads each give-up costs up to the
switch interval. Counted, not timed: the module counts the calls that gave
it up."""

from __future__ import annotations

import platform
import time

import pytest

import spread
from spread import _backend
from test_threads import fill

native = pytest.importorskip("spread._cffi_native")
lib = native.lib

pytestmark = pytest.mark.skipif(
    platform.python_implementation() != "CPython", reason="PyPy's cffi calls are its own"
)
cffi_backend = pytest.mark.skipif(
    _backend.name != "cffi", reason="the cffi backend's paths (SPREAD_BACKEND=cffi)"
)
own_library = pytest.mark.skipif(
    not getattr(_backend.core, "NATIVE", True), reason="SPREAD_LIBRARY: no nowait calls in it"
)


def test_cff_calls_keep_the_lock_and_the_others_give_it_up():
    before = lib.cff_lock_releases()
    assert lib.cff_probe_lock() == 1
    assert lib.cff_lock_releases() == before
    assert lib.cffw_probe_lock() == 0  # any other name: cffi's own behaviour
    assert lib.cff_lock_releases() == before + 1


def releases(fn):
    before = lib.cff_lock_releases()
    result = fn()
    return lib.cff_lock_releases() - before, result


@cffi_backend
def test_queued_messages_are_taken_without_giving_up_the_lock(spread_mailbox_factory):
    """receive() through a receiver, get(), get_batch() and iteration: not
    one release while messages are queued (six per receive() before), but
    for an external library's help."""
    m = spread_mailbox_factory(membership=False)
    sender = spread_mailbox_factory(membership=False)
    rx = m.start_receiver()
    fill(sender, m.private_group, 2000, rx)
    n, got = releases(lambda: [m.receive() for _ in range(500)])
    n2, got2 = releases(lambda: [rx.get() for _ in range(500)])
    n3, got3 = releases(lambda: rx.get_batch(600) + [next(rx) for _ in range(400)])
    if _backend.core.NATIVE:
        assert (n, n2, n3) == (0, 0, 0)
    else:  # an external library's help may wait: unlocked, every 64 messages
        assert n <= 500 // 64 + 1 and n2 <= 500 // 64 + 1 and n3 <= 1000 // 64 + 1
    got += got2 + got3
    assert [g.msg_type for g in got] == list(range(2000))
    assert [g.message for g in got] == [bytes([65 + i % 5]) * 800 for i in range(2000)]
    assert {g.sender for g in got} == {sender.private_group}
    assert {g.groups for g in got} == {(m.private_group,)}


@cffi_backend
@own_library
def test_sends_with_room_keep_the_lock(spread_mailbox_factory):
    m = spread_mailbox_factory(membership=False)
    n, _ = releases(
        lambda: [m.multicast(spread.FIFO_MESS, m.private_group, b"x" * 100) for _ in range(100)]
    )
    n2, _ = releases(
        lambda: [
            m.multigroup_multicast(spread.FIFO_MESS, [m.private_group], b"y", 1) for _ in range(100)
        ]
    )
    assert (n, n2) == (0, 0)
    got = [m.receive() for _ in range(200)]
    assert [g.message for g in got] == [b"x" * 100] * 100 + [b"y"] * 100


@cffi_backend
def test_plain_receive_keeps_the_lock_for_a_message_that_has_arrived(spread_mailbox_factory):
    """No receiver: with our library a message already there is taken
    keeping the lock; the library's blocking receive, called unlocked, only
    for one that does not fit the buffers yet (it grows them in the same
    call). An external library's receive may always wait: once a message."""
    m = spread_mailbox_factory(membership=False)
    sizes = (10, 40000, 10)  # the second grows the buffers
    for size in sizes:
        m.multicast(spread.FIFO_MESS, m.private_group, b"z" * size)
    wire = sum(48 + 32 + size for size in sizes)  # header, one group, payload
    deadline = time.monotonic() + 30
    while m.poll() < wire:  # polls for the state, with a limit
        assert time.monotonic() < deadline, m.poll()
        time.sleep(0.005)
    n, got = releases(lambda: [m.receive() for _ in sizes])
    assert n == (1 if _backend.core.NATIVE else 3)
    assert [len(g.message) for g in got] == list(sizes)


@pytest.mark.parametrize("via_receiver", [False, True], ids=["receive", "receiver"])
def test_a_message_larger_than_the_scratch_buffer(spread_mailbox_factory, via_receiver):
    """A batch's scratch starts at 64 KiB and grows for a message that needs
    more; the messages around it come out whole (both backends)."""
    m = spread_mailbox_factory(membership=False)
    rx = m.start_receiver() if via_receiver else None
    sizes = [10, 100_000, 20, 140_000, 30]
    for i, size in enumerate(sizes):
        m.multicast(spread.FIFO_MESS, m.private_group, bytes([97 + i]) * size, i)
    got = [m.receive() for _ in sizes]
    assert [g.message for g in got] == [bytes([97 + i]) * s for i, s in enumerate(sizes)]
    assert [g.msg_type for g in got] == list(range(len(sizes)))
    if rx is not None:
        rx.close()
