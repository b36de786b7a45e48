"""Instructions per message in the client process, counted with valgrind's
callgrind (repeatable on a noisy machine), for our Python paths and for the
C baseline loops, as the marginal cost between two message counts:

    python bench/instructions.py [--sizes 100,1024] [--counts 5000,15000]

Each row runs the client under callgrind twice (small and large count) and
divides the difference in total instructions by the difference in messages,
which cancels start-up and interpreter costs. The last column counts the
interpreter's main thread alone: for the ThreadedReceiver, the consumer's
cost without its C drain thread. The daemon runs outside
valgrind with a very large slow-reader limit, so the slowed-down client is
never killed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import spread
from spread._backend import core as _core
from spread.testing import EmbeddedDaemon

GROUP = "icount"


def _sender(address, group, size, count):
    """Fills the reader's queue from another process (not under valgrind)."""
    return subprocess.run(
        [sys.executable, __file__, "--fill", address, group, str(size), str(count)], check=True
    )


def child(mode: str, size: int, count: int, address: str) -> None:
    """The measured client. Every mode does the same set-up, so that only
    the per-message work differs between the two counts."""
    data = b"x" * size
    svc = spread.RELIABLE_MESS
    m = spread.connect(address, membership=0)
    group = GROUP + m.private_group.split("#")[1]
    if mode in ("receive", "get_batch", "c_receive"):
        m.join(group)
        rx = m.start_receiver() if mode == "get_batch" else None
        _sender(address, group, size, count)
        if mode == "receive":
            recv = m.receive
            for _ in range(count):
                recv()
        elif mode == "get_batch":
            got = 0
            get_batch = rx.get_batch
            while got < count:
                got += len(get_batch(1000))
            rx.close()
        else:
            _core.c_receive(m, 99)
    elif mode == "multicast":
        mc = m.multicast
        for _ in range(count):
            mc(svc, group, data)
    elif mode == "c_multicast":
        _core.c_multicast(m, group, size, count)
    elif mode == "self":
        m.join(group)
        mc, recv = m.multicast, m.receive
        sent = got = 0
        while got < count:
            while sent < count and sent - got < 100:
                mc(svc, group, data)
                sent += 1
            recv()
            got += 1
    elif mode == "c_self":
        m.join(group)
        _core.c_self(m, group, size, count, 100)
    m.disconnect()


def fill(address: str, group: str, size: int, count: int) -> None:
    with spread.connect(address, membership=0) as m:
        _core.c_multicast(m, group, size, count, 0)
        m.multicast(spread.RELIABLE_MESS, group, b"", 99)  # the end for c_receive


def instructions(mode: str, size: int, count: int, address: str) -> tuple[int, int]:
    """(whole process, main thread only) instructions for one client run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            mode,
            str(size),
            str(count),
            address,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not m:
            raise RuntimeError(f"callgrind run failed: {proc.stderr[-2000:]}")
        main = 0
        with open(out + "-01") as f:  # thread 1: the interpreter's main thread
            for line in f:
                if line.startswith("totals:"):
                    main = int(line.split()[1])
        return int(m.group(1)), main


ROWS = [
    ("multicast()", "multicast", "c_multicast"),
    ("receive()", "receive", "c_receive"),
    ("ThreadedReceiver.get_batch()", "get_batch", "c_receive"),
    ("send + receive own", "self", "c_self"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1024")
    p.add_argument("--counts", default="5000,15000")
    p.add_argument("--child", nargs=4, metavar=("MODE", "SIZE", "COUNT", "ADDRESS"))
    p.add_argument("--fill", nargs=4, metavar=("ADDRESS", "GROUP", "SIZE", "COUNT"))
    args = p.parse_args(argv)
    if args.child:
        mode, size, count, address = args.child
        child(mode, int(size), int(count), address)
        return 0
    if args.fill:
        address, group, size, count = args.fill
        fill(address, group, int(size), int(count))
        return 0
    small, large = (int(c) for c in args.counts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    with EmbeddedDaemon(max_session_messages=100_000_000, log_level="error") as d:
        address = d.unix_address
        print(f"instructions per message, client process (callgrind, {small} vs {large} messages)")
        print(
            f"{'path':32} {'size B':>7} {'Python':>9} {'C':>7} {'ratio':>6}  "
            f"{'Python main thread':>18}"
        )
        for label, py_mode, c_mode in ROWS:
            for size in sizes:
                py_l, py_s = (instructions(py_mode, size, n, address) for n in (large, small))
                c_l, c_s = (instructions(c_mode, size, n, address) for n in (large, small))
                py = (py_l[0] - py_s[0]) / (large - small)
                py_main = (py_l[1] - py_s[1]) / (large - small)
                c = (c_l[0] - c_s[0]) / (large - small)
                print(
                    f"{label:32} {size:>7} {py:>9,.0f} {c:>7,.0f} {py / c:>6.2f}  "
                    f"{py_main:>18,.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
