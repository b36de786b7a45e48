"""Errors say what was wrong and what is allowed, keep the classic
``args == (code, text)``, and show as ``spread.X``."""

from __future__ import annotations

import select

import pytest

import spread


def test_a_malformed_address_shows_the_forms():
    with pytest.raises(spread.IllegalSpread) as ei:
        spread.connect("localhost:4803")
    code, text = ei.value.args
    assert code == spread.ILLEGAL_SPREAD
    assert "'<port>@<host>'" in text and "/tmp/<port>" in text and "32767" in text
    assert isinstance(ei.value, ValueError)


def test_an_empty_or_missing_address_is_refused():
    with pytest.raises(spread.IllegalSpread):
        spread.connect("")
    with pytest.raises(TypeError):
        spread.connect(None)


def test_a_long_group_names_the_limit(spread_mailbox_factory):
    mbox = spread_mailbox_factory()
    with pytest.raises(spread.IllegalGroup) as ei:
        mbox.join("g" * 40)
    code, text = ei.value.args
    assert code == spread.ILLEGAL_GROUP and "40 bytes" in text and "1 to 31 bytes" in text
    assert isinstance(ei.value, ValueError)
    with pytest.raises(spread.IllegalGroup):
        mbox.multicast(spread.AGREED_MESS, "g" * 32, b"x")


def test_membership_and_reject_bits_are_refused_when_sending(spread_mailbox_factory):
    mbox = spread_mailbox_factory()
    for bits in (
        spread.REG_MEMB_MESS,
        spread.TRANSITION_MESS,
        spread.CAUSED_BY_JOIN,
        spread.CAUSED_BY_NETWORK,
        spread.REJECT_MESS,
    ):
        with pytest.raises(spread.IllegalService) as ei:
            mbox.multicast(spread.AGREED_MESS | bits, "chat", b"x")
        assert isinstance(ei.value, ValueError) and "SELF_DISCARD" in ei.value.args[1]
        with pytest.raises(spread.IllegalService):
            mbox.multigroup_multicast(spread.AGREED_MESS | bits, ["chat"], b"x")
    assert mbox.multicast(spread.AGREED_MESS | spread.SELF_DISCARD, "chat", b"x") == 1


def test_ints_are_never_truncated(spread_mailbox_factory):
    mbox = spread_mailbox_factory()
    with pytest.raises(TypeError):
        mbox.multicast(spread.AGREED_MESS, "chat", b"x", 2.9)
    with pytest.raises(TypeError):
        mbox.multicast(1.5, "chat", b"x")
    with pytest.raises(TypeError):
        spread.connect("4803", priority=1.5)
    with pytest.raises(TypeError):
        spread.connect("4803", membership="yes")


def test_public_exceptions_show_as_spread():
    for name in (
        "SpreadError",
        "ConnectionClosed",
        "IllegalGroup",
        "ConnectTimeout",
        "BacklogOverflow",
        "Empty",
    ):
        assert getattr(spread, name).__module__ == "spread", name
    assert repr(spread.ConnectionClosed(-8, "x")) == "ConnectionClosed(-8, 'x')"


def test_fileno_after_disconnect_is_minus_one(spread_daemon):
    mbox = spread.connect(spread_daemon.address)
    assert mbox.fileno() >= 0
    mbox.disconnect()
    assert mbox.fileno() == -1
    with pytest.raises(ValueError):  # as for a closed socket: never another file's number
        select.select([mbox], [], [], 0)


def test_receiver_fileno_after_close_and_drain_is_minus_one(spread_daemon):
    with spread.connect(spread_daemon.address, membership=0) as mbox:
        mbox.join("fileno-grp")
        mbox.multicast(spread.AGREED_MESS, "fileno-grp", b"one")
        rx = mbox.start_receiver()
        assert rx.get(timeout=5).message == b"one"
        mbox.multicast(spread.AGREED_MESS, "fileno-grp", b"two")
        deadline_msgs = rx.get_batch(1, timeout=5)
        assert deadline_msgs[0].message == b"two"
        mbox.multicast(spread.AGREED_MESS, "fileno-grp", b"three")
        while rx.qsize() == 0:
            select.select([rx], [], [], 5)
        rx.close()
        assert rx.fileno() >= 0  # a message still queued: still readable
        assert select.select([rx], [], [], 0)[0] == [rx]
        assert rx.get_nowait().message == b"three"
        assert rx.fileno() == -1
        assert mbox.fileno() >= 0  # the mailbox reads its socket again
    assert mbox.fileno() == -1


def test_disconnect_closes_the_socket_at_once(spread_daemon):
    """Not when the object is finalised (which on PyPy waits for a GC)."""
    import os

    mbox = spread.connect(spread_daemon.address)
    fd = mbox.fileno()
    link = os.readlink(f"/proc/self/fd/{fd}")
    assert link.startswith("socket:")
    mbox.disconnect()
    assert not os.path.exists(f"/proc/self/fd/{fd}") or os.readlink(f"/proc/self/fd/{fd}") != link
    del mbox
