"""Do TCP readers that fall behind stall? One socket-buffer choice against
another, over TCP on loopback:

    python bench/stalls.py                         # the embedded daemon
    python bench/stalls.py --daemon 4903@127.0.0.1 # a daemon someone runs

Each run: a reader process joins a group and reads it with a lag (a plain
receive() loop that sleeps --lag-ms every --lag-every messages, or with
--reader threaded a ThreadedReceiver that blocks at a 256 KiB backlog while
its consumer sleeps the same way); then a C sender (spread.bench's
c_multicast) sends --count messages of --size bytes, in bursts of --burst at
full speed --pause-ms apart (on average slower than the reader, so that a
reader that keeps up between its sleeps is not killed for the lag), and an
end message. Both connect with the run's choice of socket buffers. The reader
times the gap between consecutive messages (its own sleeps, far shorter,
included): a gap longer than --stall-ms before the end message is a stall,
since the sender had more to send ("gaps > half" counts those over half of
it: a single retransmission time-out, 200 ms at least on Linux, can end just
under the threshold). A reader the daemon disconnects is a kill; a run that
does not end within --run-timeout is a kill too (marked "hung").

Choices are interleaved (run 1 of every choice, then run 2, ... in a rotated
order) so that the noise of a shared machine falls on all of them alike.
Output: one JSON line per run on stderr (with the kernel's TCP drop and
retransmission counters over the run, machine-wide), then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

# Per choice: connect()'s socket_buffer and a SO_SNDBUF set after connecting
# (or None), for both sides, or {"receive": ..., "send": ...} to tell which
# side's socket matters.
AUTO = (0, None)
FIXED = (204800, None)
SNDBUF = (0, 204800)
CHOICES: dict[str, object] = {
    "default": (None, None),  # what connect() does when not told
    "auto": AUTO,  # the kernel's autotuning, by name
    "fixed200k": FIXED,  # Spread's library: both fixed at 200 KiB
    "sndbuf200k": SNDBUF,  # receive buffer autotuned, send buffer fixed
    "fixed1m": (1 << 20, None),
    "fixed4m": (4 << 20, None),  # capped at net.core.rmem_max (often 208 KiB)
    "fixed200k-reader": {"receive": FIXED, "send": AUTO},
    "fixed200k-sender": {"receive": AUTO, "send": FIXED},
    "sndbuf200k-reader": {"receive": SNDBUF, "send": AUTO},
    "sndbuf200k-sender": {"receive": AUTO, "send": SNDBUF},
}
END = 99


def _tcp_counters() -> dict[str, int]:
    """The kernel's TCP counters that tell drops and retransmissions (all
    connections of the machine: a hint, not a measurement of one run)."""
    want = {
        "TCPRcvQDrop",
        "TCPRcvPruned",
        "TCPBacklogDrop",
        "TCPTimeouts",
        "RetransSegs",
        "TCPZeroWindowDrop",
        "TCPRcvCollapsed",
        "TCPLossProbes",
    }
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            for n, v in zip(names.split()[1:], values.split()[1:], strict=False):
                if n in want:
                    out[n] = int(v)
    return out


# -- the two sides, run as `python stalls.py --role ROLE JSON` ------------------------


def _connect(address, choice, role):
    import spread

    setting = CHOICES[choice]
    buf, sndbuf = setting[role] if isinstance(setting, dict) else setting
    m = spread.connect(address, membership=0, socket_buffer=buf)
    if sndbuf is not None:
        with socket.socket(fileno=os.dup(m.fileno())) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return m


def role_send(address, group, choice, size, count, burst, pause_ms):
    """Bursts of `burst` messages at full speed (the C loop), `pause_ms`
    apart, then the end message."""
    from spread._backend import core

    m = _connect(address, choice, "send")
    start = time.monotonic()
    try:
        left = count
        while left > 0:
            n = min(burst or left, left)
            core.c_multicast(m, group, size, n)
            left -= n
            if left and pause_ms:
                time.sleep(pause_ms / 1000)
        core.c_multicast(m, group, size, 1, END)
    finally:
        m.disconnect()
    return {"sent": count, "seconds": time.monotonic() - start}


def role_receive(address, group, choice, reader, lag_every, lag_ms, stall_ms):
    import spread

    m = _connect(address, choice, "receive")
    m.join(group)
    # Our own join notice is not asked for (membership=0); wait until the
    # daemon has the join before saying ready, with a message to ourselves.
    m.multicast(spread.RELIABLE_MESS, m.private_group, b"", 1)
    while m.receive().msg_type != 1:
        pass
    # A copy of the descriptor: with a receiver, fileno() is the receiver's.
    sock = socket.socket(fileno=os.dup(m.fileno()))
    bufs = [sock.getsockopt(socket.SOL_SOCKET, o) for o in (socket.SO_RCVBUF, socket.SO_SNDBUF)]
    rx = (
        m.start_receiver(max_backlog_bytes=256 * 1024, on_overflow="block")
        if reader == "threaded"
        else None
    )
    get = rx.get if rx is not None else m.receive
    print("ready", flush=True)
    clock = time.monotonic
    gaps: list[float] = []  # gaps over half the stall threshold, in seconds
    worst = 0.0
    n = 0
    killed = False
    error = None
    first = last = None
    limit = stall_ms / 1000
    sleep = lag_ms / 1000
    try:
        while True:
            msg = get()
            now = clock()
            if last is None:
                first = now  # the wait for the first message is the sender starting
            else:
                gap = now - last
                worst = max(worst, gap)
                if gap > limit / 2:
                    gaps.append(gap)
            last = now
            if getattr(msg, "msg_type", None) == END:
                break
            n += 1
            if lag_every and n % lag_every == 0:
                time.sleep(sleep)
    except spread.SpreadError as e:
        killed, error = True, str(e)
    elapsed = clock() - (first or clock())
    after = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sock.close()
    try:
        if rx is not None:
            rx.close()
        m.disconnect()
    except spread.SpreadError:
        pass
    return {
        "messages": n,
        "seconds": elapsed,
        "stalls": sum(1 for g in gaps if g > limit),
        "half_stalls": len(gaps),
        "worst_gap_ms": worst * 1000,
        "gaps_ms": [round(g * 1000) for g in gaps],
        "killed": killed,
        "error": error,
        "rcvbuf": bufs[0],
        "sndbuf": bufs[1],
        "rcvbuf_after": after,
    }


ROLES = {"send": role_send, "receive": role_receive}


# -- the driver -------------------------------------------------------------------


def _worker(role, **args):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", role, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def one_run(address, choice, args):
    group = f"st{uuid.uuid4().hex[:12]}"
    before = _tcp_counters()
    rx = _worker(
        "receive",
        address=address,
        group=group,
        choice=choice,
        reader=args.reader,
        lag_every=args.lag_every,
        lag_ms=args.lag_ms,
        stall_ms=args.stall_ms,
    )
    line = rx.stdout.readline()
    if "ready" not in line:
        rx.kill()
        rx.wait()
        raise SystemExit(f"the reader did not start (choice {choice})")
    start = time.monotonic()
    tx = _worker(
        "send",
        address=address,
        group=group,
        choice=choice,
        size=args.size,
        count=args.count,
        burst=args.burst,
        pause_ms=args.pause_ms,
    )
    got = _result(rx, args.run_timeout)
    sent = _result(tx, max(1.0, args.run_timeout - (time.monotonic() - start)))
    after = _tcp_counters()
    if got is None:
        got = {
            "messages": None,
            "stalls": 0,
            "worst_gap_ms": None,
            "killed": True,
            "error": "hung",
            "half_stalls": 0,
            "gaps_ms": [],
        }
    got["choice"] = choice
    got["sent"] = sent["sent"] if sent else None
    got["wall_s"] = time.monotonic() - start
    got["tcp"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return got


def table(rows, title):
    print(f"\n{title}")
    head = (
        "choice",
        "runs",
        "runs stalled",
        "stalls",
        "gaps > half",
        "worst gap ms",
        "median worst ms",
        "kills",
        "median run s",
        "TCPRcvQDrop",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for choice in dict.fromkeys(r["choice"] for r in rows):
        rs = [r for r in rows if r["choice"] == choice]
        worst = [r["worst_gap_ms"] for r in rs if r["worst_gap_ms"] is not None]
        cells = [
            choice,
            len(rs),
            sum(1 for r in rs if r["stalls"]),
            sum(r["stalls"] for r in rs),
            sum(r["half_stalls"] for r in rs),
            f"{max(worst):.0f}" if worst else "-",
            f"{statistics.median(worst):.0f}" if worst else "-",
            sum(1 for r in rs if r["killed"]),
            f"{statistics.median(r['wall_s'] for r in rs):.2f}",
            sum(r["tcp"].get("TCPRcvQDrop", 0) for r in rs),
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--role", help=argparse.SUPPRESS)
    p.add_argument("role_args", nargs="?", help=argparse.SUPPRESS)
    p.add_argument(
        "--daemon",
        help="a running daemon, PORT@HOST (default: start the embedded daemon, read over TCP)",
    )
    p.add_argument(
        "--choices",
        default="fixed200k,auto,sndbuf200k,fixed4m",
        help=f"comma-separated, of: {', '.join(CHOICES)}",
    )
    p.add_argument("--runs", type=int, default=8, help="runs per choice (default 8)")
    p.add_argument("--reader", choices=("plain", "threaded"), default="plain")
    p.add_argument("--count", type=int, default=60000, help="messages per run")
    p.add_argument("--size", type=int, default=1024, help="bytes per message")
    p.add_argument(
        "--burst",
        type=int,
        default=1000,
        help="the sender sends this many messages at full speed (0: all) ...",
    )
    p.add_argument("--pause-ms", type=float, default=10.0, help="... then pauses this long")
    p.add_argument(
        "--lag-every",
        type=int,
        default=2000,
        help="the reader sleeps after every this many messages",
    )
    p.add_argument("--lag-ms", type=float, default=10.0, help="for this long")
    p.add_argument(
        "--stall-ms", type=float, default=200.0, help="a wait longer than this is a stall"
    )
    p.add_argument("--run-timeout", type=float, default=90.0)
    p.add_argument(
        "--max-session-messages",
        type=int,
        default=None,
        help="the embedded daemon's slow-reader limit (default: its own, Spread's 1000)",
    )
    p.add_argument("--json", help="also write every run to this file")
    args = p.parse_args(argv)
    if args.role:
        print(json.dumps(ROLES[args.role](**json.loads(args.role_args))), flush=True)
        return
    choices = args.choices.split(",")
    for c in choices:
        if c not in CHOICES:
            p.error(f"unknown choice {c!r}: one of {', '.join(CHOICES)}")
    import spread
    from spread.testing import EmbeddedDaemon, ExternalDaemon

    limits = (
        {}
        if args.max_session_messages is None
        else {"max_session_messages": args.max_session_messages}
    )
    if args.daemon and limits:
        p.error("--max-session-messages is the embedded daemon's")
    daemon = (
        ExternalDaemon(args.daemon) if args.daemon else EmbeddedDaemon(log_level="error", **limits)
    )
    rows = []
    with daemon:
        address = daemon.address
        if "@" not in address:
            p.error("the daemon must be reached over TCP: PORT@HOST")
        for run in range(args.runs):
            k = run % len(choices)
            for choice in choices[k:] + choices[:k]:
                row = one_run(address, choice, args)
                row["run"] = run
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "backend": spread.backend, "rows": rows}, f)
    table(
        rows,
        f"{args.daemon or 'embedded daemon'}, {args.reader} reader, {args.count} x "
        f"{args.size} B in bursts of {args.burst} every {args.pause_ms:g} ms, reader "
        f"sleeps {args.lag_ms:g} ms every {args.lag_every} messages, "
        f"backend {spread.backend}",
    )


if __name__ == "__main__":
    main()
