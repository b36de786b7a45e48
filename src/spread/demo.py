"""python -m spread.demo: a tour of the classic API on the embedded daemon.

Starts a daemon in this process, connects two mailboxes, shows membership
notices and messages, then times a burst of multicasts read back by a third
mailbox.

The daemon orders messages per connection only: two mailboxes that join at
once may be handled in either order, so every step below waits for the state
it needs (a notice listing both members, say) rather than for a count of
messages, and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import select
import sys
import time

import spread
from spread._cli import payload_size, port_number, positive_int
from spread.daemon import Daemon
from spread.testing import free_port

GROUP = "demo"
STEP_TIMEOUT = 10.0  # seconds any one step may take before the demo gives up


class DemoTimeout(Exception):
    """A step did not see what it waited for in time."""


def _wait_readable(mbox, deadline: float, what: str) -> None:
    # The client library never reads ahead of the message it returns, so the
    # socket is readable exactly while a message is pending.
    remaining = deadline - time.monotonic()
    if mbox.poll() == 0 and (
        remaining <= 0 or not select.select([mbox.fileno()], [], [], remaining)[0]
    ):
        raise DemoTimeout(f"no {what} within {STEP_TIMEOUT:.0f} s")


def receive_until(mbox, done, label: str | None, what: str):
    """Reads `mbox` until done(msg) holds and returns that message; prints
    every message read, after `label`, unless label is None."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        _wait_readable(mbox, deadline, what)
        msg = mbox.receive()
        if label is not None:
            print(label, describe(msg))
        if done(msg):
            return msg


def describe(msg) -> str:
    if isinstance(msg, spread.RegularMsg):
        return f"{msg!r}: {msg.message!r}"
    return repr(msg)


def membership(group: str, members: set[str]):
    """A test for the notice of `group` whose members are exactly `members`."""
    return lambda msg: (
        isinstance(msg, spread.MembershipMsg) and msg.group == group and set(msg.members) == members
    )


def regular(msg) -> bool:
    return isinstance(msg, spread.RegularMsg)


def burst(daemon, sender, count: int, size: int) -> float:
    """Multicasts `count` messages of `size` bytes, with at most 500 in flight,
    to a reader on the unix socket; returns the seconds it took."""
    rx = spread.connect(daemon.unix_address, "reader")
    rx.join("burst")
    # Until the daemon has handled this join, messages to the group would go
    # to nobody: wait for its notice before sending.
    receive_until(rx, membership("burst", {rx.private_group}), None, "join notice for the reader")
    rx_receive, rx_poll = rx.receive, rx.poll
    payload = b"x" * size
    start = time.perf_counter()
    deadline = time.monotonic() + STEP_TIMEOUT
    sent = received = 0
    while received < count:
        while sent < count and sent - received < 500:
            sender.multicast(spread.RELIABLE_MESS, "burst", payload)
            sent += 1
        if not rx_poll():
            _wait_readable(rx, deadline, f"burst message ({received} of {count} read)")
        rx_receive()
        received += 1
    elapsed = time.perf_counter() - start
    rx.disconnect()
    return elapsed


def tour(daemon, count: int, size: int) -> None:
    print(f"embedded daemon on {daemon.address} and /tmp/{daemon.port}")
    alice = spread.connect(daemon.address, "alice")
    bob = spread.connect(daemon.unix_address, "bob")
    both = {alice.private_group, bob.private_group}
    alice.join(GROUP)
    bob.join(GROUP)
    # One notice or two each, depending on whose join the daemon took first.
    receive_until(alice, membership(GROUP, both), "alice got", "notice of both members for alice")
    receive_until(bob, membership(GROUP, both), "bob got  ", "notice of both members for bob")

    alice.multicast(spread.AGREED_MESS, GROUP, b"hello from alice", 7)
    receive_until(bob, regular, "bob got  ", "message from alice for bob")
    receive_until(alice, regular, None, "alice's own message")  # not SELF_DISCARD: hers too

    bob.leave(GROUP)
    # Bob's notice of his own leave lists nobody; alice's lists only her.
    receive_until(bob, membership(GROUP, set()), None, "bob's leave notice")
    receive_until(
        alice,
        membership(GROUP, {alice.private_group}),
        "alice got",
        "notice of bob's leave for alice",
    )
    bob.disconnect()

    elapsed = burst(daemon, alice, count, size)
    print(
        f"{count} messages of {size} B sent and read in {elapsed:.2f} s: "
        f"{count / elapsed:,.0f} msg/s"
    )
    alice.disconnect()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spread.demo", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--port",
        type=port_number,
        help="port of the embedded daemon, TCP and /tmp/<port> (default: a free one)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        default=20000,
        help="messages in the timed burst (default 20000)",
    )
    p.add_argument(
        "--size",
        type=payload_size,
        default=1024,
        help="payload bytes per burst message (default 1024)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        daemon = Daemon(args.port if args.port is not None else free_port())
    except (OSError, ValueError) as e:
        print(f"spread.demo: cannot start the embedded daemon: {e}", file=sys.stderr)
        return 1
    with daemon:
        try:
            tour(daemon, args.count, args.size)
        except (DemoTimeout, spread.SpreadError) as e:
            print(f"spread.demo: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
