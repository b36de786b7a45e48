"""Instructions per message in the client process, counted with valgrind's
callgrind (repeatable on a noisy machine), for our Python paths on each
backend and for the C baseline loops, as the marginal cost between two
message counts:

    python bench/instructions.py [--sizes 100,1024] [--counts 5000,15000]
                                 [--backends cython,cffi] [--rows receive,self]

Each row runs the client under callgrind twice (small and large count) and
divides the difference in total instructions by the difference in messages,
which cancels start-up and interpreter costs. Every row prints the C loop's
figure of the same run beside it (the C loop runs once a row and size, for
all backends), and the ratio. The last column counts the interpreter's main
thread alone: for the ThreadedReceiver, the consumer's cost without its C
drain thread. The Python loops iterate with itertools.repeat, so that no
loop counter is allocated per message (~100 instructions that are the
harness's, not the call's). The daemon runs outside valgrind with a very
large slow-reader limit, so the slowed-down client is never killed.
"""

from __future__ import annotations

import argparse
import itertools
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
    if mode in ("receive", "rx_receive", "get_batch", "c_receive"):
        m.join(group)
        rx = m.start_receiver() if mode in ("get_batch", "rx_receive") else None
        _sender(address, group, size, count)
        if mode in ("receive", "rx_receive"):
            recv = m.receive
            for _ in itertools.repeat(None, count):
                recv()
            if rx is not None:
                rx.close()
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
        for _ in itertools.repeat(None, count):
            mc(svc, group, data)
    elif mode == "c_multicast":
        _core.c_multicast(m, group, size, count)
    elif mode == "self":
        m.join(group)
        mc, recv = m.multicast, m.receive
        window = min(100, count)  # messages in flight, as c_self's
        for _ in itertools.repeat(None, window):
            mc(svc, group, data)
        for _ in itertools.repeat(None, count - window):  # one back, one more out
            recv()
            mc(svc, group, data)
        for _ in itertools.repeat(None, window):
            recv()
    elif mode == "c_self":
        m.join(group)
        _core.c_self(m, group, size, count, 100)
    m.disconnect()


def fill(address: str, group: str, size: int, count: int) -> None:
    with spread.connect(address, membership=0) as m:
        _core.c_multicast(m, group, size, count, 0)
        m.multicast(spread.RELIABLE_MESS, group, b"", 99)  # the end for c_receive


def instructions(
    mode: str, size: int, count: int, address: str, backend: str = ""
) -> tuple[int, int]:
    """(whole process, main thread only) instructions for one client run on
    backend (SPREAD_BACKEND; "" for the default)."""
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
        env = dict(os.environ, SPREAD_BACKEND=backend) if backend else None
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not m:
            raise RuntimeError(f"callgrind run failed: {proc.stderr[-2000:]}")
        main = 0
        with open(out + "-01") as f:  # thread 1: the interpreter's main thread
            for line in f:
                if line.startswith("totals:"):
                    main = int(line.split()[1])
        return int(m.group(1)), main


ROWS = {  # name: (label, Python mode, C mode)
    "multicast": ("multicast()", "multicast", "c_multicast"),
    "receive": ("receive()", "receive", "c_receive"),
    "rx_receive": ("receive() through a receiver", "rx_receive", "c_receive"),
    "get_batch": ("ThreadedReceiver.get_batch()", "get_batch", "c_receive"),
    "self": ("send + receive own", "self", "c_self"),
}


def marginal(mode: str, size: int, small: int, large: int, address: str, backend: str = ""):
    """(whole process, main thread) instructions per message."""
    hi, lo = (instructions(mode, size, n, address, backend) for n in (large, small))
    return (hi[0] - lo[0]) / (large - small), (hi[1] - lo[1]) / (large - small)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1024")
    p.add_argument("--counts", default="5000,15000")
    p.add_argument("--backends", default="cython,cffi")
    p.add_argument("--rows", default=",".join(ROWS), help="of: " + ", ".join(ROWS))
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
    backends = [b for b in args.backends.split(",") if b]
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    with EmbeddedDaemon(max_session_messages=100_000_000, log_level="error") as d:
        address = d.unix_address
        print(f"instructions per message, client process (callgrind, {small} vs {large} messages)")
        print(
            f"{'path':32} {'backend':8} {'size B':>7} {'Python':>9} {'C':>7} {'ratio':>6}  "
            f"{'Python main thread':>18}"
        )
        for row in rows:
            label, py_mode, c_mode = ROWS[row]
            for size in sizes:
                c = marginal(c_mode, size, small, large, address)[0]
                for backend in backends:
                    py, py_main = marginal(py_mode, size, small, large, address, backend)
                    print(
                        f"{label:32} {backend:8} {size:>7} {py:>9,.0f} {c:>7,.0f} "
                        f"{py / c:>6.2f}  {py_main:>18,.0f}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
