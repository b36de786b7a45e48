"""Recovery across a partition and a merge (issue 17) on the embedded
daemon's simulated network: a flow sender on a remote daemon keeps sending
while it is cut off from us; after the merge our receiver repairs its
stream from the sender's retention (what it retains), and reports the rest
as DataLoss. Our receiver is a real flow Session reading the daemon's real
network memberships (TRANSITION_MESS, CAUSED_BY_NETWORK, SPEC 6.8).

The remote sender is a FlowCore driven here: its frames go out as the
remote member's multicasts (which the daemon drops across a partition); the
daemon cannot deliver to a simulated member, so what our session sends to
its private group is carried to its core by a relay around our mailbox, as
the network would (and dropped while the daemon is unreachable)."""

from __future__ import annotations

import threading
import time

import pytest

import spread
import spread.flow as flow
from flow_sim import JOIN, NETWORK, REG_MEMB_MESS, Membership, Regular

G = "gm"


class RemoteSender:
    """A flow sender on a simulated remote daemon."""

    def __init__(self, daemon, remote, name: str, **channel) -> None:
        self.remote = remote
        self.member = remote.member(name)
        self.me = self.member.private_group
        self.core = flow.FlowCore(self.me)
        self.lock = threading.Lock()
        self.cut = False  # (set with the daemon's partition: no control round trip per message)
        with self.lock:
            # (its own frames never come back to it: no self delivery)
            self.ch = self.core.channel(G, stream=0xFA12, self_delivery=False, **channel)
            self.core.join(G)
            self._perform()
        self.member.join(G)

    def _perform(self) -> None:
        for a in self.core.actions():
            self.member.multicast(a.service_type, a.group, a.data, a.msg_type)

    def view(self, members: tuple[str, ...], cause: int, vs: tuple[str, ...]) -> None:
        """Its daemon's view of G (the remote side of the daemon's membership)."""
        with self.lock:
            msg = Membership(REG_MEMB_MESS | cause, G, tuple(sorted(members)), None, vs)
            if cause & JOIN:
                msg.changed_member = vs[0]
            self.core.on_message(msg, time.monotonic())
            self._perform()

    def deliver(self, sender: str, group: str, data: bytes, msg_type: int, service: int) -> None:
        with self.lock:
            msg = Regular(sender, (group,), data, msg_type, service)
            self.core.on_message(msg, time.monotonic())
            self._perform()

    def send(self, first: int, n: int) -> None:
        for i in range(first, first + n):
            with self.lock:
                assert self.ch.offer(b"r%05d" % i, 0, time.monotonic())
                self._perform()

    def tick(self) -> None:
        with self.lock:
            self.core.tick(time.monotonic())
            self._perform()


class Relay:
    """Our mailbox, but what goes to the remote sender (its private group,
    or G) is also handed to its core while its daemon is reachable."""

    def __init__(self, mailbox, remote: RemoteSender) -> None:
        self._mbox = mailbox
        self._remote = remote

    def multicast(self, service, group, data, msg_type=0):
        r = self._remote
        if group in (r.me, G) and not r.cut:
            r.deliver(self._mbox.private_group, group, bytes(data), msg_type, service)
        if group == r.me:
            return len(data)  # (the daemon would drop it: nobody local has that name)
        return self._mbox.multicast(service, group, data, msg_type)

    def __getattr__(self, name):
        return getattr(self._mbox, name)


def take(rx, n: int, timeout: float = 30.0) -> tuple[list[bytes], list]:
    got: list[bytes] = []
    events: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(got)} of {n}; events {events[-4:]}"
        try:
            m = rx.receive(timeout=min(left, 0.05))
        except spread.Empty:
            continue
        if isinstance(m, flow.FlowMsg):
            got.append(m.message)
        elif isinstance(m, flow.FlowEvent):
            events.append(m)
    return got, events


def expect(first: int, n: int) -> list[bytes]:
    return [b"r%05d" % i for i in range(first, first + n)]


@pytest.mark.timeout(60)
def test_a_stream_from_a_partitioned_daemon_is_repaired_after_the_merge(spread_daemon_factory):
    daemon = spread_daemon_factory(slow_reader_budget=0)
    east = daemon.add_remote_daemon("east")
    mbox = spread.connect(daemon.address, "rx", membership=1)
    rtx = RemoteSender(daemon, east, "rtx", window=8, retention_frames=64, max_batch_items=1)
    rx = flow.Session(Relay(mbox, rtx), drain=False, owns_mailbox=True)
    try:
        rx.join(G)
        me = rx.private_group
        deadline = time.monotonic() + 10
        while True:  # (our join first: a frame ordered before it is not ours)
            m = rx.receive(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(m, spread.MembershipMsg) and me in m.members:
                break
        rtx.view((rtx.me, me), JOIN, (me,))  # the remote side sees rx join
        rtx.send(0, 20)
        got, _ = take(rx, 20)
        assert got == expect(0, 20)

        # Cut off: the remote sender does not wait for us, and what it sends
        # never arrives; we orphan its stream (not drop it).
        daemon.partition(east)
        rtx.cut = True
        rtx.view((rtx.me,), NETWORK, (rtx.me,))
        rtx.send(20, 40)
        seen = []
        with pytest.raises(spread.Empty):
            while True:  # the transitional and network memberships, then nothing
                seen.append(rx.receive(timeout=0.2))
        assert [type(m) for m in seen] == [spread.MembershipMsg] * 2
        st = rx.core.receiver.streams[(rtx.me, 0xFA12)]
        assert st.orphaned < float("inf")

        # The merge: its HELLO names the stream's last frame; we ask for the
        # rest, it resends within our window.
        daemon.merge(east)
        rtx.cut = False
        rtx.view((rtx.me, me), NETWORK, (rtx.me,))
        got, events = take(rx, 40)
        assert got == expect(20, 40)
        assert not [e for e in events if isinstance(e, (flow.DataLoss, flow.StreamEnded))]
        assert rtx.ch.stats["resent"] == 40

        # Again, past its retention (64 frames): the loss is named exactly.
        daemon.partition(east)
        rtx.cut = True
        rtx.view((rtx.me,), NETWORK, (rtx.me,))
        rtx.send(60, 100)  # frames 61..160; it holds 97..160
        daemon.merge(east)
        rtx.cut = False
        rtx.view((rtx.me, me), NETWORK, (rtx.me,))
        got, events = take(rx, 64)
        losses = [e for e in events if isinstance(e, flow.DataLoss)]
        assert [(e.sender, e.first, e.last) for e in losses] == [(rtx.me, 61, 96)]
        assert got == expect(96, 64)
        rtx.send(160, 3)  # and the stream goes on
        assert take(rx, 3)[0] == expect(160, 3)
    finally:
        rx.close()
