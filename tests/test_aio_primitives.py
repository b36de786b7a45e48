"""The backends' private non-blocking send primitives that spread.aio's
writer is built on: the same outcomes on both backends (CI runs this file
with SPREAD_BACKEND=cython and cffi), and a clean fallback over an external
library (SPREAD_LIBRARY), which has none of them."""

from __future__ import annotations

import pytest

import spread
from spread._backend import core

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
