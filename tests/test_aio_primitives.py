"""The backends' private non-blocking send primitives that spread.aio's
writer is built on: the same outcomes on both backends (CI runs this file
with SPREAD_BACKEND=cython and cffi), and a clean fallback over an external
library (SPREAD_LIBRARY), which has none of them."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

import spread
from spread import _backend
from spread._backend import core
from spread.aio import fast

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.timeout(60)]

WOULD_BLOCK, PARTIAL = -1001, -1002
NOWAIT = getattr(core, "NATIVE", True)  # the Cython backend is always on our library


def test_flag_says_whether_they_exist(spread_mailbox_factory):
    m = spread_mailbox_factory()
    assert m._NOWAIT_SENDS is NOWAIT


def test_nowait_sends_and_requests(spread_mailbox_factory):
    m = spread_mailbox_factory(name="prim")
    r = m._request_nowait(b"pg", True)
    if not NOWAIT:
        assert r == WOULD_BLOCK  # nothing sent: the caller uses the blocking form
        assert m._multicast_nowait(spread.FIFO_MESS, "pg", b"x") == WOULD_BLOCK
        assert m._multigroup_multicast_nowait(spread.FIFO_MESS, ["pg"], b"x") == WOULD_BLOCK
        return
    assert r == 0
    assert isinstance(m.receive(), spread.MembershipMsg)
    assert m._multicast_nowait(spread.FIFO_MESS, "pg", b"abc", 5) == 3
    assert m._multigroup_multicast_nowait(spread.FIFO_MESS, ["pg"], memoryview(b"de"), 6) == 2
    got = [m.receive() for _ in range(2)]
    assert [(g.message, g.msg_type) for g in got] == [(b"abc", 5), (b"de", 6)]
    assert m._request_nowait(b"pg", False) == 0


def test_the_same_checks_as_the_hot_sends(spread_mailbox_factory):
    m = spread_mailbox_factory()
    with pytest.raises(spread.IllegalService):
        m._multicast_nowait(spread.FIFO_MESS | spread.REG_MEMB_MESS, "g", b"")
    with pytest.raises(spread.IllegalGroup):
        m._multicast_nowait(spread.FIFO_MESS, "", b"")
    with pytest.raises(spread.MessageTooLong):
        m._multicast_nowait(spread.FIFO_MESS, "g", bytes(143_952))
    with pytest.raises(spread.MessageTooLong):
        m._multigroup_multicast_nowait(spread.FIFO_MESS, ["g", "h"], bytes(143_952 - 32))
    with pytest.raises(ValueError):
        m._multicast_nowait(spread.FIFO_MESS, "g", b"", 70_000)
    assert m._check_service(spread.SAFE_MESS | spread.SELF_DISCARD) == (
        spread.SAFE_MESS | spread.SELF_DISCARD
    )
    with pytest.raises(spread.IllegalService):
        m._check_service(spread.FIFO_MESS | spread.AGREED_MESS)
    with pytest.raises(TypeError):
        m._check_service(1.0)


@pytest.mark.skipif(not NOWAIT, reason="an external library has no non-blocking sends")
def test_partial_then_finish_without_waiting(spread_mailbox_factory):
    """Fill the socket until a send is partly written, then finish it with
    the non-blocking finish while a reader drains: every message arrives
    whole; nothing else can be sent meanwhile (the library holds the rest)."""
    rx = spread_mailbox_factory(name="primrx")
    rx.join("full")
    rx.start_receiver()
    assert isinstance(rx.receive(), spread.MembershipMsg)
    tx = spread_mailbox_factory(membership=0)
    payload = bytes(range(256)) * 390  # ~100 KB
    sent = 0
    while True:
        r = tx._multicast_nowait(spread.FIFO_MESS, "full", payload, sent)
        if r == WOULD_BLOCK:
            continue  # nothing sent: try again
        sent += 1
        if r == PARTIAL:
            break
        assert r == len(payload)
    assert tx._multicast_nowait(spread.FIFO_MESS, "full", b"", 0) == WOULD_BLOCK
    while (r := tx._finish_send_nowait()) == PARTIAL:
        pass
    assert r == len(payload)
    for i in range(sent):
        msg = rx.receive()
        assert (msg.msg_type, msg.message) == (i, payload)
    with pytest.raises(spread.IllegalSession):
        tx._finish_send_nowait()  # nothing held


@pytest.mark.skipif(not NOWAIT, reason="an external library has no non-blocking sends")
def test_abort_gives_the_rest_up_and_fails_the_connection(spread_mailbox_factory):
    rx = spread_mailbox_factory()
    rx.join("abort")
    rx.start_receiver()
    tx = spread_mailbox_factory(membership=0)
    while tx._multicast_nowait(spread.FIFO_MESS, "abort", bytes(100_000)) != PARTIAL:
        pass
    tx._abort_send()
    with pytest.raises(spread.SpreadError):
        tx.multicast(spread.FIFO_MESS, "abort", b"")
    tx.disconnect()  # does not wait for a lock nobody holds


# -- the hot paths' bases (spread/aio/fast.py): the Cython backend's in C
# (spread/_aio_fast.pxi), the same in Python everywhere. Both are checked
# here where the backend has both, over a stand-in inbox whose slow paths
# record that they ran.
BASES = [fast.PyInboxBase] + ([core.AioInbox] if hasattr(core, "AioInbox") else [])


def test_the_cython_backend_has_its_bases_in_c():
    in_c = _backend.name == "cython"
    assert (fast.InboxBase is not fast.PyInboxBase) is in_c
    assert (fast.ConnectionBase is not fast.PyConnectionBase) is in_c
    assert (fast.WriterBase is not fast.PyWriterBase) is in_c
    assert issubclass(fast.ConnectionBase, fast.InboxBase)


def box(base, *messages):
    """An inbox over base holding messages; its slow paths record their
    calls, wait a turn of the loop (or for .gate, if set) and take one."""

    class Box(base):
        def __init__(self):
            super().__init__()
            self.slow = []
            self.gate = None

        async def _receive_slow(self, timeout):
            self.slow.append(("receive", timeout))
            return await self._rest()

        async def _anext_slow(self):
            self.slow.append(("anext", None))
            if not self._buf and self.gate is None:
                raise StopAsyncIteration
            return await self._rest()

        async def _rest(self):
            try:
                await (asyncio.sleep(0) if self.gate is None else self.gate.wait())
            except asyncio.CancelledError:
                self.slow.append("cancelled")
                raise
            return self._buf.popleft() if self._buf else "nothing"

    b = Box()
    b._buf.extend(messages)
    b._plain, b._limit, b._failures = True, 10, 0
    return b


@pytest.mark.parametrize("base", BASES)
def test_a_take_is_immediate_only_when_it_has_nothing_more_to_do(base):
    async def main():
        b = box(base, *range(8))
        assert await b.receive() == 0
        async for m in b:
            assert m == 1
            break
        assert b.slow == []  # plain: taken at once
        b._plain, b._limit = False, 6  # the reader paused; after this take (6 -> 5) it may read
        assert await b.receive(2.5) == 2
        assert b.slow == [("receive", 2.5)]
        b._limit = 4  # the inbox stays full (5 -> 4): resume() would not register the reader
        assert await b.receive() == 3
        b._failures = 1  # a Failure waits: its take raises it
        assert await b.__anext__() == 4
        assert b.slow == [("receive", 2.5), ("anext", None)]
        b._failures, b._plain = 0, True
        assert [m async for m in b] == [5, 6, 7]  # then the slow path's StopAsyncIteration
        assert await b.receive() == "nothing"
        assert b._buf == deque()

    asyncio.run(main())


@pytest.mark.parametrize("base", BASES)
def test_a_call_does_nothing_until_it_is_first_awaited(base):
    """As a coroutine: nothing is taken by a call closed, thrown into or
    sent a value before it starts, or by a task cancelled before its first
    step; asyncio takes it for a coroutine; an ended call cannot be reused."""

    async def main():
        b = box(base, "a", "b")
        call = b.receive()
        assert asyncio.iscoroutine(call)
        call.close()
        call = b.receive()
        with pytest.raises(TypeError):
            call.send(1)
        call.close()
        call = b.__anext__()
        with pytest.raises(ValueError):
            call.throw(ValueError("in"))
        task = asyncio.ensure_future(b.receive())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert list(b._buf) == ["a", "b"] and b.slow == []
        call = b.receive()
        assert await call == "a"
        with pytest.raises(RuntimeError):
            await call
        assert await asyncio.create_task(b.receive()) == "b"

    asyncio.run(main())


@pytest.mark.parametrize("base", BASES)
def test_an_iterator_survives_cancelled_anext(base):
    """Unlike an async generator (one cancelled anext() ends it), the
    iterator goes on after a cancelled __anext__, and two pending
    __anext__ calls of one iterator are two calls, each taking when awaited."""

    async def main():
        b = box(base)
        it = b.__aiter__()
        b.gate = asyncio.Event()  # the slow path waits
        for _ in range(3):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(it.__anext__(), 0.001)
        assert b.slow.count("cancelled") == 3
        b._buf.extend(["x", "y", "z"])
        first, second = it.__anext__(), it.__anext__()
        assert first is not second
        assert await second == "x"  # (taken when awaited)
        assert await first == "y"
        assert await it.__anext__() == "z"
        b.gate.set()
        assert await it.__anext__() == "nothing"

    asyncio.run(main())


@pytest.mark.parametrize("base", BASES)
def test_each_result_is_its_own_when_driven_by_hand(base):
    """send(None) by hand: each call's StopIteration carries its own value,
    tuples and exceptions included, and one a caller keeps is never reused
    (Python 3.12+ raises one kept for the purpose while nobody holds it)."""
    err = ValueError("a value, not raised")
    b = box(base, 1, (2, 3), err, 4)
    kept = []
    for _ in range(3):
        call = b.receive()
        with pytest.raises(StopIteration) as e:
            call.send(None)
        kept.append(e.value)
    assert [e.value for e in kept] == [1, (2, 3), err]
    assert len({id(e) for e in kept}) == 3
    call = b.receive()
    with pytest.raises(StopIteration) as e:
        next(call.__await__())
    assert e.value.value == 4
