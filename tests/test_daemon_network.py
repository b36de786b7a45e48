"""The embedded daemon's simulated network (native/daemon/remote.[ch],
issue 14): remote daemons and their members, partitions, merges and crashes,
decoded by our client on both backends, with and without a
ThreadedReceiver, against SPEC.md 6.8; and the strong check: the bytes the
daemon sends for these events are the vectors' bytes (captured with a raw
socket client, the network's clock and our address set as the vectors
were made)."""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import time
from pathlib import Path

import pytest

import spread
from spread.daemon import ControlError, RemoteDaemon
from test_daemon_raw import raw_client
from vectors import load, records_of

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        bool(os.environ.get("SPREAD_TEST_DAEMON")),
        reason="the simulated network needs the embedded daemon (SPREAD_TEST_DAEMON is set)",
    ),
]

TIMEOUT = 10.0
ALICE, CAROL = "#alice#localhost", "#carol#localhost"
OURS = 0x7F000001


class Reader:
    """A mailbox read directly, or through a ThreadedReceiver."""

    def __init__(self, mbox, threaded: bool):
        self.mbox = mbox
        self.join_id: list[int] = []
        if threaded:
            mbox.start_receiver()

    def get(self):
        ready, _, _ = select.select([self.mbox], [], [], TIMEOUT)
        assert ready, "nothing arrived"
        return self.mbox.receive()

    def quiet(self) -> None:
        """Nothing is queued for it: a message to itself comes next."""
        self.mbox.multicast(spread.AGREED_MESS, self.mbox.private_group, b"sentinel")
        msg = self.get()
        assert isinstance(msg, spread.RegularMsg), msg
        assert msg.message == b"sentinel", msg


@pytest.fixture(params=["plain", "threaded"])
def threaded(request):
    return request.param == "threaded"


@pytest.fixture(params=["subprocess", "in_process"])
def daemon(request, spread_daemon_factory):
    d = spread_daemon_factory(in_process=request.param == "in_process")
    return d


def joined(daemon, name: str, threaded: bool, group: str = "chat") -> Reader:
    mbox = spread.connect(daemon.address, name)
    reader = Reader(mbox, threaded)
    mbox.join(group)
    msg = reader.get()
    assert msg.reason == spread.CAUSED_BY_JOIN and msg.changed_member == mbox.private_group
    reader.join_id = msg.group_id.id
    return reader


def bob_east_dave_west(daemon, threaded: bool):
    """Remote daemons east (#bob#east) and west (#dave#west), their members
    in "chat", then alice joined: (east, west, alice's reader)."""
    east, west = daemon.add_remote_daemon("east"), daemon.add_remote_daemon("west")
    east.member("bob").join("chat")
    west.member("dave").join("chat")
    return east, west, joined(daemon, "alice", threaded)


def expect_memb(msg, reason, members, vs_sets, extra, changed=None):
    assert isinstance(msg, spread.MembershipMsg), msg
    assert msg.msg_subtype == spread.REG_MEMB_MESS
    assert msg.reason == reason, msg
    assert msg.group == "chat"
    assert msg.members == tuple(members)
    assert msg.orig_members == tuple(tuple(s) for s in vs_sets)
    assert msg.extra == tuple(extra)
    assert msg.changed_member == changed
    assert msg.from_daemon
    return msg.group_id.id


def expect_trans(msg, gid):
    assert isinstance(msg, spread.MembershipMsg), msg
    assert msg.msg_subtype == spread.TRANSITION_MESS
    assert msg.reason == 0 and msg.members == () and msg.orig_members == ()
    assert msg.group_id.id == gid


# ---- remote members ----------------------------------------------------


def test_remote_join_leave_disconnect(daemon, threaded):
    east = daemon.add_remote_daemon("east")
    assert isinstance(east, RemoteDaemon) and east.connected and east.alive
    alice = joined(daemon, "alice", threaded)
    bob = east.member("bob")
    assert bob.private_group == "#bob#east"
    assert bob.join("chat") == 1
    gid = expect_memb(
        alice.get(),
        spread.CAUSED_BY_JOIN,
        [ALICE, "#bob#east"],
        [["#bob#east"]],
        ["#bob#east"],
        "#bob#east",
    )
    assert gid[0] == OURS and gid[2] == 2  # the group's id goes on: c + 1
    assert bob.join("chat") == 0  # already a member: nothing
    carol = east.member("carol")
    carol.join("chat")
    m = alice.get()
    assert m.members == (ALICE, "#bob#east", "#carol#east") and m.group_id.id[2] == 3
    assert bob.leave("chat") == 1
    expect_memb(
        alice.get(),
        spread.CAUSED_BY_LEAVE,
        [ALICE, "#carol#east"],
        [["#bob#east"]],
        ["#bob#east"],
        "#bob#east",
    )
    assert carol.disconnect() == 1
    gid = expect_memb(
        alice.get(),
        spread.CAUSED_BY_DISCONNECT,
        [ALICE],
        [["#carol#east"]],
        ["#carol#east"],
        "#carol#east",
    )
    assert gid[2] == 5
    alice.quiet()
    # A local member of the same group sees the remote ones in its join.
    dave = spread.connect(daemon.address, "dave")
    bob.join("chat")
    alice.get()
    dave.join("chat")
    m = dave.receive()
    assert m.members == (ALICE, "#dave#localhost", "#bob#east")
    assert m.changed_member == "#dave#localhost" and m.extra == ("#dave#localhost",)
    assert alice.get().members == m.members
    dave.disconnect()
    m = alice.get()
    assert m.reason == spread.CAUSED_BY_DISCONNECT and m.members == (ALICE, "#bob#east")
    alice.mbox.disconnect()


def test_a_group_without_local_members_lives_on_remotely(daemon):
    east = daemon.add_remote_daemon("east")
    east.member("bob").join("chat")
    with spread.connect(daemon.address, "alice") as alice:
        alice.join("chat")
        m = alice.receive()
        assert m.members == (ALICE, "#bob#east")
        first = m.group_id.id
        alice.leave("chat")
        assert alice.receive().reason == spread.CAUSED_BY_LEAVE  # the self-leave
        alice.join("chat")
        m = alice.receive()
        assert m.members == (ALICE, "#bob#east")
        assert m.group_id.id[:2] == first[:2] and m.group_id.id[2] == first[2] + 2


# ---- network events ----------------------------------------------------


def test_partition_then_merge(daemon, threaded):
    east = daemon.add_remote_daemon("east")
    bob = east.member("bob")
    bob.join("chat")
    alice = joined(daemon, "alice", threaded)
    carol = joined(daemon, "carol", threaded)
    old = alice.get()  # carol's join
    assert old.members == (ALICE, CAROL, "#bob#east")
    alice.quiet()
    assert daemon.partition(east) == 2  # TRANS and NET, each to both local members
    assert not east.connected and east.alive
    for reader in (alice, carol):
        trans = reader.get()
        assert trans.msg_subtype == spread.TRANSITION_MESS
        net = reader.get()
        gid = expect_memb(
            net, spread.CAUSED_BY_NETWORK, [ALICE, CAROL], [[ALICE, CAROL]], [ALICE, CAROL]
        )
        assert gid[0] == OURS and gid[2] == 1 and gid[1] > old.group_id.id[1]
        assert trans.group_id == old.group_id  # the old id
    # Nothing crosses the partition; events over there are not seen.
    assert bob.multicast(spread.AGREED_MESS, "chat", b"lost") == 0
    assert east.member("eve").join("chat") == 0
    alice.quiet()
    # The merge: no transitional, a vs-set per side (ours first: its id leads).
    assert daemon.merge(east) == 1
    assert east.connected
    merged = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, CAROL, "#bob#east", "#eve#east"],
        [[ALICE, CAROL], ["#bob#east", "#eve#east"]],
        [ALICE, CAROL],
    )
    assert merged[0] == OURS and merged[2] == 1 and merged[1] > gid[1]
    assert carol.get().group_id.id == merged
    alice.quiet()
    for reader in (alice, carol):
        reader.mbox.disconnect()


def test_three_way_split_healed_in_one_merge(daemon, threaded):
    east, west, alice = bob_east_dave_west(daemon, threaded)
    daemon.partition(east)
    alice.get()  # TRANSITION_MESS
    expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#dave#west"],
        [[ALICE, "#dave#west"]],
        [ALICE, "#dave#west"],
    )
    daemon.partition(west)
    alice.get()
    expect_memb(alice.get(), spread.CAUSED_BY_NETWORK, [ALICE], [[ALICE]], [ALICE])
    assert daemon.merge(east, west) == 1
    gid = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#bob#east", "#dave#west"],
        [[ALICE], ["#bob#east"], ["#dave#west"]],
        [ALICE],
    )
    assert gid[0] == OURS and gid[2] == 1
    alice.quiet()
    alice.mbox.disconnect()


def test_partition_of_two_daemons_together(daemon):
    east, west, alice = bob_east_dave_west(daemon, False)
    daemon.partition(east, west)
    assert alice.get().msg_subtype == spread.TRANSITION_MESS
    expect_memb(alice.get(), spread.CAUSED_BY_NETWORK, [ALICE], [[ALICE]], [ALICE])
    # Over there they still see each other: a merge brings back one set.
    daemon.merge(east)
    expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#bob#east", "#dave#west"],
        [[ALICE], ["#bob#east", "#dave#west"]],
        [ALICE],
    )
    assert west.connected
    alice.mbox.disconnect()


def test_crash_is_a_cut(daemon, threaded):
    east = daemon.add_remote_daemon("east")
    east.member("bob").join("chat")
    alice = joined(daemon, "alice", threaded)
    assert daemon.crash(east) == 2
    trans = alice.get()
    assert trans.msg_subtype == spread.TRANSITION_MESS and trans.group_id.id[2] == 2
    expect_memb(alice.get(), spread.CAUSED_BY_NETWORK, [ALICE], [[ALICE]], [ALICE])
    assert not east.alive and not east.connected
    with pytest.raises(ControlError, match="crashed"):
        east.member("bob")
    with pytest.raises(ControlError, match="crashed"):
        daemon.partition(east)
    # Merging it restarts it without members: nothing to tell.
    assert daemon.merge(east) == 0
    assert east.alive and east.connected
    alice.quiet()
    east.member("bob").join("chat")
    m = alice.get()
    assert m.reason == spread.CAUSED_BY_JOIN and m.members == (ALICE, "#bob#east")
    alice.mbox.disconnect()


# ---- churn: changes in two steps, cascades, delays (SPEC.md 6.8) --------

EVE = "#eve#localhost"


def test_churn_inside_a_transitional_period(daemon, threaded):
    """A cut begun, not yet installed: a leave and a join inside the
    transitional period are network memberships (the cut-off daemon's
    member still listed, in a set of its own; a joiner alone last; the
    transitional id with c counting on), each followed by another
    TRANSITION_MESS: TRANS, NET, TRANS, NET, TRANS ... then the installation,
    one network membership with c = 1."""
    east, west = daemon.add_remote_daemon("east"), daemon.add_remote_daemon("west")
    bob, dave = east.member("bob"), west.member("dave")
    bob.join("chat")
    dave.join("chat")
    alice = joined(daemon, "alice", threaded)
    carol = joined(daemon, "carol", threaded)
    old = alice.get().group_id.id  # carol's join
    assert daemon.partition(east, settle=False) == 1  # one TRANSITION_MESS, to both
    assert daemon.network()["pending"] and east.connected and not east.reachable
    for reader in (alice, carol):
        expect_trans(reader.get(), old)
    assert dave.leave("chat") == 2  # west stays: NET, then TRANS
    for reader in (alice, carol):
        gid = expect_memb(
            reader.get(),
            spread.CAUSED_BY_NETWORK,
            [ALICE, CAROL, "#bob#east"],
            [[ALICE, CAROL], ["#bob#east"]],
            [ALICE, CAROL],
        )
        assert gid[0] == OURS and gid[1] > old[1] and gid[2] == old[2] + 1
        expect_trans(reader.get(), gid)
    eve = Reader(spread.connect(daemon.address, "eve"), threaded)
    eve.mbox.join("chat")  # a local join: NET (the joiner's own view), TRANS
    members = [ALICE, CAROL, EVE, "#bob#east"]
    sets = [[ALICE, CAROL], ["#bob#east"], [EVE]]
    for reader, mine in ((alice, [ALICE, CAROL]), (carol, [ALICE, CAROL]), (eve, [EVE])):
        joined_id = expect_memb(reader.get(), spread.CAUSED_BY_NETWORK, members, sets, mine)
        assert joined_id == (gid[0], gid[1], gid[2] + 1)
        expect_trans(reader.get(), joined_id)
    # The daemon on its way out: its members cannot act, their data is lost.
    with pytest.raises(ControlError, match="on its way cuts that daemon off"):
        bob.leave("chat")
    assert bob.multicast(spread.AGREED_MESS, "chat", b"lost") == 0
    alice.quiet()
    assert daemon.settle() == 1
    for reader, mine in ((alice, [ALICE, CAROL, EVE]), (eve, [ALICE, CAROL, EVE])):
        final = expect_memb(
            reader.get(), spread.CAUSED_BY_NETWORK, mine, [[ALICE, CAROL, EVE]], mine
        )
        assert final[0] == OURS and final[2] == 1 and final[1] > gid[1]
    assert carol.get().group_id.id == final
    assert not daemon.network()["pending"] and not east.connected
    with pytest.raises(ControlError, match="no network change is pending"):
        daemon.settle()
    for reader in (alice, carol, eve):
        reader.quiet()
    for reader in (alice, carol, eve):
        reader.mbox.disconnect()


def test_a_merge_while_a_partition_is_pending(daemon, threaded):
    """West is cut off; east's cut begins; west merges back before east's
    cut is installed: one network membership for both (a set per
    component), and no second TRANSITION_MESS."""
    east, west, alice = bob_east_dave_west(daemon, threaded)
    daemon.partition(west)
    alice.get()  # TRANS
    cut = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#bob#east"],
        [[ALICE, "#bob#east"]],
        [ALICE, "#bob#east"],
    )
    assert daemon.partition(east, settle=False) == 1
    expect_trans(alice.get(), cut)
    assert daemon.merge(west) == 1  # settles the pending cut with it
    gid = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#dave#west"],
        [[ALICE], ["#dave#west"]],
        [ALICE],
    )
    assert gid[2] == 1 and gid[1] > cut[1]
    assert west.connected and not east.connected and not daemon.network()["pending"]
    alice.quiet()
    alice.mbox.disconnect()


def test_cascaded_partitions_and_an_undone_cut(daemon):
    """Two cuts begun one after the other: one TRANSITION_MESS, one
    installation. A cut begun and undone by a merge before it is installed
    still closes the transitional period with a network membership."""
    east, west, alice = bob_east_dave_west(daemon, False)
    old = alice.join_id
    assert daemon.partition(east, settle=False) == 1
    assert daemon.partition(west, settle=False) == 0  # told already
    expect_trans(alice.get(), old)
    assert daemon.settle() == 1
    cut = expect_memb(alice.get(), spread.CAUSED_BY_NETWORK, [ALICE], [[ALICE]], [ALICE])
    assert not east.connected and not west.connected
    daemon.merge(east, west)  # two cuts, two components over there: three sets
    merged = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#bob#east", "#dave#west"],
        [[ALICE], ["#bob#east"], ["#dave#west"]],
        [ALICE],
    )
    assert merged[1] > cut[1]
    assert daemon.partition(west, settle=False) == 1
    expect_trans(alice.get(), merged)
    assert daemon.merge(west) == 1  # undone before it was installed
    again = expect_memb(
        alice.get(),
        spread.CAUSED_BY_NETWORK,
        [ALICE, "#bob#east", "#dave#west"],
        [[ALICE, "#bob#east", "#dave#west"]],
        [ALICE, "#bob#east", "#dave#west"],
    )
    assert again[2] == 1 and again[1] > merged[1]
    alice.quiet()
    alice.mbox.disconnect()


def test_crash_and_partition_differ(daemon):
    """Both look like a cut to local members; a partitioned daemon's members
    come back with a merge, a crashed one comes back empty. A crash begun:
    its members fall silent at once."""
    east, west, alice = bob_east_dave_west(daemon, False)
    for remote in (east, west):
        if remote is east:
            assert daemon.partition(east) == 2
        else:
            assert daemon.crash(west, settle=False) == 1
            with pytest.raises(ControlError, match="on its way"):
                west.member("dave").leave("chat")
            assert daemon.settle() == 1
        assert alice.get().msg_subtype == spread.TRANSITION_MESS
        assert alice.get().reason == spread.CAUSED_BY_NETWORK
    assert east.alive and not west.alive
    assert daemon.merge(east, west) == 1
    m = alice.get()
    assert m.members == (ALICE, "#bob#east")  # dave is gone with west
    assert m.orig_members == ((ALICE,), ("#bob#east",))
    assert west.alive and west.connected
    alice.quiet()
    alice.mbox.disconnect()


def test_delayed_events_arrive_at_their_time(daemon, threaded):
    """after=SECONDS: the messages arrive no earlier than that (a real
    network takes ~11 s to notice a crash); the crashed daemon's members
    fall silent at once. A delayed merge likewise."""
    east = daemon.add_remote_daemon("east")
    bob = east.member("bob")
    bob.join("chat")
    alice = joined(daemon, "alice", threaded)
    start = time.monotonic()
    assert daemon.crash(east, after=0.3) == 0
    assert not east.reachable and east.alive and daemon.network()["scheduled"] == 1
    assert bob.multicast(spread.AGREED_MESS, "chat", b"lost") == 0
    trans = alice.get()
    assert time.monotonic() - start >= 0.3
    assert trans.msg_subtype == spread.TRANSITION_MESS
    expect_memb(alice.get(), spread.CAUSED_BY_NETWORK, [ALICE], [[ALICE]], [ALICE])
    assert not east.alive and daemon.network()["scheduled"] == 0
    # A delayed partition, then a merge later still: in order, each at its time.
    west = daemon.add_remote_daemon("west")
    west.member("dave").join("chat")
    alice.get()
    start = time.monotonic()
    daemon.partition(west, after=0.2)
    daemon.merge(west, after=0.4)
    assert alice.get().msg_subtype == spread.TRANSITION_MESS
    assert alice.get().members == (ALICE,)
    merged = alice.get()
    assert time.monotonic() - start >= 0.4
    assert merged.reason == spread.CAUSED_BY_NETWORK and merged.members == (ALICE, "#dave#west")
    # A delayed settle of a begun change.
    daemon.partition(west, settle=False)
    assert alice.get().msg_subtype == spread.TRANSITION_MESS
    daemon.settle(after=0.1)
    assert alice.get().members == (ALICE,)
    alice.quiet()
    alice.mbox.disconnect()


def test_bad_churn_requests(spread_daemon_factory):
    daemon = spread_daemon_factory()
    east = daemon.add_remote_daemon("east")
    with pytest.raises(ValueError, match="after must be 0 to 3600"):
        daemon.partition(east, after=-1)
    with pytest.raises(TypeError, match="after must be a number"):
        daemon.crash(east, after="1")
    with pytest.raises(TypeError, match="settle must be a bool"):
        daemon.merge(east, settle=0)
    daemon.partition(east, settle=False)
    with pytest.raises(ControlError, match="on its way"):
        daemon.add_remote_daemon("west")  # connected: it would install the change
    daemon.add_remote_daemon("far", connected=False)
    daemon.settle()
    with pytest.raises(ControlError, match="no network change is pending"):
        daemon._request("after 0 settle")  # 0: at once


# ---- remote multicasts -------------------------------------------------


def test_remote_multicast(daemon, threaded):
    east = daemon.add_remote_daemon("east")
    bob = east.member("bob")
    bob.join("chat")
    alice = joined(daemon, "alice", threaded)
    assert bob.multicast(spread.SAFE_MESS, "chat", b"hello", 7) == 1
    m = alice.get()
    assert isinstance(m, spread.RegularMsg)
    assert (m.sender, m.groups, m.message, m.msg_type) == ("#bob#east", ("chat",), b"hello", 7)
    assert m.service_type == spread.SAFE_MESS
    # To several groups and a private group at once; a negative type; str data.
    bob.multicast(spread.FIFO_MESS | spread.SELF_DISCARD, ["chat", ALICE, "other"], "hé", -2)
    m = alice.get()
    assert m.groups == ("chat", ALICE, "other") and m.message == "hé".encode()
    assert m.msg_type == -2 and m.service_type == spread.FIFO_MESS | spread.SELF_DISCARD
    # An empty payload, and the largest one.
    bob.multicast(spread.AGREED_MESS, "chat", b"")
    assert alice.get().message == b""
    big = bytes(range(256)) * (143952 // 256 - 1)
    bob.multicast(spread.AGREED_MESS, "chat", big, 65535)
    m = alice.get()
    assert m.message == big and m.msg_type == -1
    # To nobody here (another daemon's private group, a group with no one).
    assert bob.multicast(spread.AGREED_MESS, ["#x#west", "nobody"], b"x") == 0
    alice.quiet()
    daemon.partition(east)
    alice.get(), alice.get()
    assert bob.multicast(spread.AGREED_MESS, "chat", b"lost") == 0
    alice.quiet()
    daemon.merge(east)
    alice.get()
    bob.multicast(spread.AGREED_MESS, "chat", b"back")
    assert alice.get().message == b"back"
    alice.mbox.disconnect()


def test_remote_messages_count_against_the_slow_reader_limit(spread_daemon_factory):
    daemon = spread_daemon_factory(slow_reader_budget=0, max_session_messages=20)
    east = daemon.add_remote_daemon("east")
    bob = east.member("bob")
    bob.join("chat")
    sleeper = spread.connect(daemon.address, "sleeper")
    sleeper.join("chat")
    daemon.pause_session(sleeper, requests=False, deliveries=True)
    for i in range(25):
        bob.multicast(spread.AGREED_MESS, "chat", b"%d" % i)
    fig = daemon.session("sleeper")
    assert fig["killed"] and fig["reason"] == "not reading"
    assert fig["peak_messages"] == 20
    with pytest.raises(spread.ConnectionClosed):
        while True:
            sleeper.receive()
    # bob sees nothing (simulated), but the model was told of the disconnect.
    with spread.connect(daemon.address, "alice") as alice:
        alice.join("chat")
        assert alice.receive().members == (ALICE, "#bob#east")


# ---- errors --------------------------------------------------------------


def test_bad_requests_are_clear_errors(spread_daemon_factory):
    daemon = spread_daemon_factory()
    with pytest.raises(ControlError, match="no remote daemon east"):
        daemon.partition("east")
    east = daemon.add_remote_daemon("east")
    with pytest.raises(ControlError, match="exists already"):
        daemon.add_remote_daemon("east")
    with pytest.raises(ControlError, match="is this daemon"):
        daemon.partition("localhost")
    with pytest.raises(ControlError, match="address is taken"):
        daemon.add_remote_daemon("west", address="127.0.0.2")
    with pytest.raises(ControlError, match="no member #zed#east"):
        daemon._request("remote-member east zed disconnect")
    with pytest.raises(ControlError, match="network-address comes before"):
        daemon.set_network_address("127.0.0.9")
    for bad in ("", "a b", "x#y", "n" * 20):
        with pytest.raises(ValueError, match="remote daemon name"):
            daemon.add_remote_daemon(bad)
    with pytest.raises(ValueError, match="member name"):
        east.member("elevenchars")
    bob = east.member("bob")
    with pytest.raises(ValueError, match="group name"):
        bob.join("")
    with pytest.raises(ValueError, match="group name"):
        bob.join("g" * 32)
    with pytest.raises(ValueError, match="private group"):
        bob.join("#a#b")
    with pytest.raises(ValueError, match="exactly one"):
        bob.multicast(spread.AGREED_MESS | spread.SAFE_MESS, "chat", b"")
    with pytest.raises(ValueError, match="exactly one"):
        bob.multicast(spread.REG_MEMB_MESS | spread.AGREED_MESS, "chat", b"")
    with pytest.raises(ValueError, match="msg_type"):
        bob.multicast(spread.AGREED_MESS, "chat", b"", 65536)
    with pytest.raises(TypeError):
        bob.multicast(spread.AGREED_MESS, "chat", b"", 1.0)
    with pytest.raises(ValueError, match="143952"):
        bob.multicast(spread.AGREED_MESS, "chat", bytes(143952 - 31))
    with pytest.raises(TypeError, match="at least one"):
        daemon.merge()
    # The channel itself refuses what the Python layer would not send.
    for line, text in [
        ("remote-add", "remote-add takes"),
        ("remote-add a 1.2.3", "ADDRESS"),
        ("remote-add a 0.0.0.0", "ADDRESS"),
        ("remote-member east bob hop chat", "remote-member takes"),
        ("remote-multicast east bob agreed 0 chat", "remote-multicast takes"),
        ("remote-multicast east bob 3 0 chat 0", "exactly one"),
        ("remote-multicast east bob agreed 70000 chat 0", "message type"),
        ("remote-multicast east bob agreed 0 a,,b 0", "group name"),
        ("remote-multicast east bob agreed 0 #a 0", "private group"),
        ("remote-multicast east bob agreed 0 chat 144001", "payload length"),
        ("partition east east", "twice"),
        ("crash east west", "crash takes one"),
        ("network-clock 0", "network-clock takes"),
        ("network x", "no arguments"),
        ("after", "after takes MS"),
        ("after x partition east", "after takes MS"),
        ("after 3600001 partition east", "after takes MS"),
        ("after 10 ping", "after takes a partition"),
        ("begin settle", "begin takes partition"),
        ("begin", "begin takes partition"),
        ("settle now", "settle takes no arguments"),
        ("after 10 partition nobody", "no remote daemon nobody"),
    ]:
        with pytest.raises(ControlError, match=text):
            daemon._request(line)
    # A refused multicast's payload is skipped, not read as requests.
    with pytest.raises(ControlError, match="no member"):
        daemon._request("remote-multicast east nobody agreed 0 chat 5", b"ping\n")
    with pytest.raises(ControlError, match="exactly one"):
        daemon._request("remote-multicast east bob 3 0 chat 5", b"ping\n")
    assert daemon._request("ping") == ["ok pong"]
    assert daemon.network()["daemons"]["east"]["connected"]


def test_remote_add_alone_and_addresses(spread_daemon_factory):
    daemon = spread_daemon_factory(name="hub")
    far = daemon.add_remote_daemon("far", address="10.0.0.9", connected=False)
    near = daemon.add_remote_daemon("near")
    net = daemon.network()
    assert net["local"] == "hub"
    assert net["daemons"]["far"] == {
        "index": 1,
        "address": "10.0.0.9",
        "local": False,
        "connected": False,
        "alive": True,
        "reachable": True,
    }
    assert net["daemons"]["near"]["address"] == "127.0.0.2"  # above the highest
    assert not far.connected and near.connected
    far.member("x").join("chat")
    with spread.connect(daemon.address, "alice") as alice:
        alice.join("chat")
        assert alice.receive().members == ("#alice#hub",)  # far is not in our component
        daemon.merge(far)
        m = alice.receive()
        # Configuration order is by address: 10.0.0.9 comes before 127.0.0.1.
        assert m.reason == spread.CAUSED_BY_NETWORK and m.members == ("#x#far", "#alice#hub")
        assert m.orig_members == (("#x#far",), ("#alice#hub",))
        assert m.extra == ("#alice#hub",)


def test_the_fixture(spread_network):
    daemon, remote = spread_network
    assert remote.connected and remote.name in daemon.network()["daemons"]


# ---- the strong check: the vectors' bytes ------------------------------


def read_message(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 48:
        chunk = s.recv(48 - len(head))
        assert chunk, "the daemon closed"
        head += chunk
    num_groups, _, data_len = struct.unpack_from("<iIi", head, 36)
    body = b""
    need = num_groups * 32 + data_len
    while len(body) < need:
        chunk = s.recv(need - len(body))
        assert chunk
        body += chunk
    return head + body


def raw_join(s: socket.socket, name: bytes, group: bytes) -> None:
    from test_daemon_raw import request

    s.sendall(request(0x00010000, b"#" + name + b"#localhost", [group]))


def vector_bytes(name: str) -> bytes:
    (rec,) = records_of(load(name))
    return rec.data


def test_cut_and_merge_bytes_are_the_vectors(spread_daemon_factory):
    """The model's test sequence (native/tests/test_remote.c), through the
    daemon: the cut gives synthetic_transitional then synthetic_network_cut,
    the merge back synthetic_network_merge, byte for byte, at alice's socket."""
    daemon = spread_daemon_factory()
    daemon.set_network_clock(1700000000)
    r1 = daemon.add_remote_daemon("r1")
    assert daemon.network()["memb_id"] == (OURS, 1700000000)
    m1, m2 = r1.member("m1"), r1.member("m2")
    with raw_client(daemon.port, b"bob") as bob, raw_client(daemon.port, b"alice") as alice:
        raw_join(bob, b"bob", b"grp")
        read_message(bob)
        m1.join("grp")
        raw_join(alice, b"alice", b"grp")
        read_message(alice)
        m1.leave("grp")
        m1.join("grp")
        m2.join("grp")
        for _ in range(3):
            read_message(alice)
        daemon.set_network_clock(1700000200)
        daemon.partition(r1)
        assert read_message(alice) == vector_bytes("synthetic_transitional")
        assert read_message(alice) == vector_bytes("synthetic_network_cut")
        m2.leave("grp")  # over there: not seen here
        daemon.set_network_clock(1700000300)
        daemon.merge(r1)
        assert read_message(alice) == vector_bytes("synthetic_network_merge")
        # bob got the same bytes (the local offset is the same set's).
        msgs = [read_message(bob) for _ in range(8)]
        assert msgs[-1] == vector_bytes("synthetic_network_merge")
        assert msgs[-3] == vector_bytes("synthetic_transitional")


def test_three_way_heal_bytes_are_the_vector(spread_daemon_factory):
    """synthetic_network_membership: a heal of a three-way split with three
    vs-sets, our daemon at 127.0.0.3 between d1 (.1) and d2 (.2)."""
    daemon = spread_daemon_factory()
    daemon.set_network_address("127.0.0.3")
    daemon.set_network_clock(1699999100)
    d1 = daemon.add_remote_daemon("d1", address="127.0.0.1")
    d2 = daemon.add_remote_daemon("d2", address="127.0.0.2")
    with raw_client(daemon.port, b"alice") as alice, raw_client(daemon.port, b"y") as y:
        raw_join(alice, b"alice", b"grp")
        d1.member("d1a").join("grp")
        d1.member("d1b").join("grp")
        d2.member("x").join("grp")
        raw_join(y, b"y", b"grp")
        for _ in range(5):
            read_message(alice)
        daemon.set_network_clock(1700000000)
        daemon.partition(d1)
        daemon.set_network_clock(1700000050)
        daemon.partition(d2)
        daemon.set_network_clock(1700000100)
        daemon.merge(d1, d2)
        for _ in range(4):
            read_message(alice)
        assert read_message(alice) == vector_bytes("synthetic_network_membership")
    daemon.set_network_clock(None)
    assert daemon.network()["clock"] is None


def test_churn_bytes_are_the_vectors(spread_daemon_factory):
    """synthetic_network_churn_join and _leave (their library_results
    recorded from the Spread 4.0.0 library): alice joins while r1's cut is
    pending, then r2's m2 leaves; each network membership is followed by a
    TRANSITION_MESS with its id; the installation is one more."""
    daemon = spread_daemon_factory()
    daemon.set_network_clock(1700000000)
    r1, r2 = daemon.add_remote_daemon("r1"), daemon.add_remote_daemon("r2")
    m1, m2 = r1.member("m1"), r2.member("m2")
    with raw_client(daemon.port, b"bob") as bob, raw_client(daemon.port, b"alice") as alice:
        raw_join(bob, b"bob", b"grp")
        m1.join("grp")
        m2.join("grp")
        for _ in range(3):
            read_message(bob)
        daemon.set_network_clock(1700000400)
        daemon.partition(r1, settle=False)
        raw_join(alice, b"alice", b"grp")
        assert read_message(alice) == vector_bytes("synthetic_network_churn_join")
        trans = read_message(alice)
        assert trans[:4] == bytes.fromhex("80200080")  # TRANSITION_MESS
        assert struct.unpack_from("<3i", trans, 48) == (OURS, 1700000400, 4)
        m2.leave("grp")
        assert read_message(alice) == vector_bytes("synthetic_network_churn_leave")
        assert struct.unpack_from("<3i", read_message(alice), 48) == (OURS, 1700000400, 5)
        daemon.set_network_clock(1700000500)
        daemon.settle()
        final = read_message(alice)
        assert struct.unpack_from("<iii", final, 48 + 2 * 32) == (OURS, 1700000500, 1)
        # bob: TRANS (the old id), then the same ids, his offset at the first set.
        msgs = [read_message(bob) for _ in range(6)]
        assert struct.unpack_from("<3i", msgs[0], 48) == (OURS, 1700000001, 3)
        assert msgs[1][:48] == vector_bytes("synthetic_network_churn_join")[:48]
        assert struct.unpack_from("<i", msgs[1], 48 + 4 * 32 + 16)[0] == 0  # local offset
        assert msgs[3] == vector_bytes("synthetic_network_churn_leave")  # the same set is his
        assert msgs[5] == final


# ---- the README's example -------------------------------------------------


def readme_example(name: str) -> str:
    """The README's python block that defines test function `name`."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if f"def {name}(" in block:
            return block
    raise AssertionError(f"README.md has no example {name}")


def test_the_readme_partition_example(spread_network):
    namespace: dict = {}
    exec(compile(readme_example("test_rehearse_a_partition"), "README.md", "exec"), namespace)
    namespace["test_rehearse_a_partition"](spread_network)


def test_the_readme_churn_example(spread_network):
    namespace: dict = {}
    exec(compile(readme_example("test_rehearse_churn"), "README.md", "exec"), namespace)
    namespace["test_rehearse_churn"](spread_network)
