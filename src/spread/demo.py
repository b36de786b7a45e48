"""python -m spread.demo: a tour of the classic API on the embedded daemon.

Starts a daemon in this process, connects two mailboxes, shows membership
notices and messages, then times a burst of multicasts read back by the
other mailbox.
"""

from __future__ import annotations

import time

import spread
from spread.daemon import Daemon
from spread.testing import free_port


def main() -> None:
    port = free_port()
    with Daemon(port) as daemon:
        print(f"embedded daemon on {daemon.address} and /tmp/{port}")
        alice = spread.connect(daemon.address, "alice")
        bob = spread.connect(daemon.unix_address, "bob")
        alice.join("demo")
        bob.join("demo")
        for _ in range(2):
            print("alice got", alice.receive())
        print("bob got  ", bob.receive())
        alice.multicast(spread.AGREED_MESS, "demo", b"hello from alice", 7)
        msg = bob.receive()
        print(f"bob got   {msg!r}: {msg.message!r}")
        alice.receive()

        count, size = 20000, 1024
        payload = b"x" * size
        bob.leave("demo")
        bob.receive()
        alice.receive()
        rx = spread.connect(daemon.unix_address, "reader", membership=0)
        rx.join("burst")
        start = time.perf_counter()
        sent = received = 0
        while received < count:
            while sent < count and sent - received < 500:
                alice.multicast(spread.RELIABLE_MESS, "burst", payload)
                sent += 1
            rx.receive()
            received += 1
        elapsed = time.perf_counter() - start
        print(f"{count} messages of {size} B sent and read in {elapsed:.2f} s: "
              f"{count / elapsed:,.0f} msg/s")
        for m in (alice, bob, rx):
            m.disconnect()


if __name__ == "__main__":
    main()
