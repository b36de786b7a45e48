"""How fast does a flow receiver recover what it missed (issue 17)?

    python bench/recovery.py                          # the embedded daemon
    python bench/recovery.py --daemon 4903@127.0.0.1  # a daemon someone runs
    python bench/recovery.py --messages 50000 --size 100 --repeat 5

Each run, on one group, a flow sender and a flow receiver (its own process
each is not needed: both are sessions with their drain threads):
1. live: the sender sends --messages messages of --size bytes while the
   receiver consumes them; the live rate is messages over the time to the
   last one received;
2. the daemon kills the receiver's session (the control's kill, as for a
   slow reader; with --daemon, the client drops its own connection), and the
   sender sends --messages more, not held for it (kept in its retention);
3. the receiver reconnects (after --hold seconds: the messages are all sent
   by then) and catches up from the sender's retention, paced by its own
   window: the recovered rate is messages over the time from its Reconnected
   event to the last one received.
Output: a JSON line per run on stderr, then a table with the recovered rate
against the live rate of the same run (the ratio is the figure: this machine
is shared, absolute rates wander).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from typing import Any

import spread
import spread.flow as flow


def _payload(i: int, size: int) -> bytes:
    head = b"%08d:" % i
    return head + b"x" * max(0, size - len(head))


class _Consumer:
    """Takes n flow messages on a thread; notes when it saw Reconnected."""

    def __init__(self, session: Any, n: int, timeout: float) -> None:
        self.session, self.n, self.timeout = session, n, timeout
        self.got = 0
        self.reconnected_at: float | None = None
        self.done_at = 0.0
        self.losses = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while self.got < self.n:
                m = self.session.receive(timeout=max(0.0, deadline - time.monotonic()))
                if isinstance(m, flow.FlowMsg):
                    self.got += 1
                elif isinstance(m, flow.Reconnected):
                    self.reconnected_at = time.monotonic()
                elif isinstance(m, flow.DataLoss):
                    self.losses += m.last - m.first + 1
            self.done_at = time.monotonic()
        except BaseException as e:  # noqa: BLE001 - reported by the run
            self.error = e

    def wait(self) -> None:
        self.thread.join(self.timeout + 5)
        if self.error is not None:
            raise self.error
        if self.thread.is_alive():
            raise TimeoutError(f"the receiver took {self.got} of {self.n}")


def _until(session: Any, done: Any, what: str, timeout: float = 30.0) -> None:
    """Receives on session (memberships reach its channels so) until done()."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        try:
            session.receive(timeout=0.05)
        except spread.Empty:
            pass


def one_run(
    address: str, kill: Any, *, messages: int, size: int, window: int, hold: float, tag: str
) -> dict[str, Any]:
    """One live phase, one kill, one recovery; returns the figures."""
    group = f"rb{tag}"[:31]
    backoff = flow.Backoff(first=hold, most=hold, jitter=0.0, attempts=50)
    with (
        flow.connect(address, f"t{tag}"[:10]) as tx,
        flow.connect(address, f"r{tag}"[:10], reconnect=backoff, groups=[group]) as rx,
    ):
        ch = tx.channel(
            group,
            window=window,
            window_bytes=window * (size + 64) * 8,
            retention_frames=4 * messages,
            retention_bytes=8 * messages * (size + 64),
        )
        _until(tx, lambda: rx.private_group in ch.members(), "the receiver never joined")
        live = _Consumer(rx, messages, 120)
        start = time.monotonic()
        ch.send_many(_payload(i, size) for i in range(messages))
        live.wait()
        live_s = live.done_at - start
        catch = _Consumer(rx, messages, 120)
        kill(rx)
        # tx sees it go: not held for it
        _until(tx, lambda: rx.private_group not in ch.members(), "the kill never reached tx")
        sent_at = time.monotonic()
        ch.send_many(_payload(messages + i, size) for i in range(messages))
        ch.flush(timeout=60)
        send_s = time.monotonic() - sent_at
        catch.wait()
        if catch.reconnected_at is None:
            raise RuntimeError("no Reconnected event")
        recover_s = catch.done_at - catch.reconnected_at
        return {
            "messages": messages,
            "size": size,
            "window": window,
            "live_rate": messages / live_s,
            "recover_s": recover_s,
            "recovered_rate": messages / recover_s,
            "ratio": (messages / recover_s) / (messages / live_s),
            "sent_while_away_s": send_s,
            "resent_frames": ch.stats["resent"],
            "lost_frames": catch.losses,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--daemon", help="PORT@HOST of a running daemon (default: an embedded one)")
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--window", type=int, default=64, help="frames")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds before it reconnects")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    runs = []
    if args.daemon:
        daemon = None
        address = args.daemon

        def kill(session: Any) -> None:  # no control: the client drops its connection
            session.mailbox.disconnect()
    else:
        from spread.testing import EmbeddedDaemon

        daemon = EmbeddedDaemon(slow_reader_budget=0).start()
        address = daemon.address

        def kill(session: Any) -> None:
            daemon.kill_session(session.private_group)

    try:
        for r in range(args.repeat):
            fig = one_run(
                address,
                kill,
                messages=args.messages,
                size=args.size,
                window=args.window,
                hold=args.hold,
                tag=f"{r}{int(time.time()) % 10000}",
            )
            print(json.dumps(fig), file=sys.stderr)
            runs.append(fig)
    finally:
        if daemon is not None:
            daemon.stop()
    keys = ("live_rate", "recovered_rate", "ratio", "recover_s")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    lost = sum(r["lost_frames"] for r in runs)
    head = ("messages", "size", "live msg/s", "recovered msg/s", "ratio", "recover s", "lost")
    print("{:>9} {:>5} {:>11} {:>16} {:>6} {:>10} {:>5}".format(*head))
    print(
        f"{args.messages:>9} {args.size:>5} {med['live_rate']:>11,.0f} "
        f"{med['recovered_rate']:>16,.0f} {med['ratio']:>6.2f} {med['recover_s']:>10.3f} {lost:>5}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
