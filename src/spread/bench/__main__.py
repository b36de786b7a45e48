"""python -m spread.bench: Python beside the native C client, same daemon,
same run. With no --daemon it starts the embedded daemon on a free port."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import spread
from spread.bench import report
from spread.bench import workloads as w
from spread.bench.options import parse_args
from spread.testing import EmbeddedDaemon, ExternalDaemon

PROG = "python -m spread.bench"


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total):
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def step(self, label):
        self.done += 1
        width = 30
        filled = int(width * self.done / self.total)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(78)[:78])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end(self):
        if self.tty:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def plan(args):
    quick = args.quick
    cfg: dict[str, int | float] = {
        "repeats": args.repeats or (1 if quick else 3),
        "seconds": 0.1 if quick else 0.4,
        # Messages per receiver run at sizes up to 4 KiB (fewer above): a few
        # tenths of a second at full speed, so start-up does not dominate.
        "count_2proc": 20000 if quick else 200000,
        "warmup": 50 if quick else 200,
        "rounds": 300 if quick else 2000,
        "slow_count": 3000,
        "slow_sleepy": 100 if quick else 200,
        "flow_count": 20000 if quick else 100000,
        "flow_slow_count": 300 if quick else 1000,
        "flow_sleep": 0.001,
        # The no-kill row: runs per size of the two-process pair
        # (ThreadedReceiver and C receiver), each counted killed or not.
        "survive_repeats": args.repeats or (1 if quick else 10),
    }
    steps = []
    for rep in range(int(cfg["repeats"])):
        for size in args.sizes:
            steps += [
                (kind, size, rep) for kind in ("mcast", "self", "2proc", "rtt") if kind in args.only
            ]
        if "slow" in args.only:
            steps.append(("slow", 1024, rep))
        if "flow" in args.only:
            steps.append(("flow", 1024, rep))
    if "survive" in args.only:
        for size in args.sizes:
            steps += [("survive", size, rep) for rep in range(int(cfg["survive_repeats"]))]
    return cfg, steps


def two_process_count(cfg, size):
    """Messages per two-process run: fewer above 4 KiB."""
    return int(cfg["count_2proc"] * min(1.0, 4096 / size))


def run_step(address, kind, size, rep, cfg, raw):
    # Alternate which side runs first so neither always gets the warmer daemon.
    order = ("py", "c") if rep % 2 == 0 else ("c", "py")
    key = f"{kind} {size}"
    cell = raw.setdefault(key, {"kind": kind, "size": size, "runs": []})
    run: dict[str, object] = {}
    if kind == "mcast":
        for impl in order:
            run[impl] = w.multicast_rate(address, size, cfg["seconds"], impl)
    elif kind == "self":
        for impl in order:
            run[impl] = w.self_rate(address, size, cfg["seconds"], impl)
    elif kind == "2proc":
        count = two_process_count(cfg, size)
        for impl in ("plain", "threaded", "threaded_busy", "c", "c_busy"):
            run[impl] = w.two_process(address, size, count, impl)
    elif kind == "survive":
        for impl in ("threaded", "c") if rep % 2 == 0 else ("c", "threaded"):
            run[impl] = w.survival(address, size, two_process_count(cfg, size), impl)
    elif kind == "rtt":
        for impl in order:
            rtts = sorted(w.ping_pong(address, size, cfg["warmup"], cfg["rounds"], impl))
            run[impl] = {
                "median": statistics.median(rtts),
                "p99": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
            }
    elif kind == "slow":
        for impl in ("plain", "threaded"):
            run[impl] = w.slow_reader(
                address, cfg["slow_count"], cfg["slow_sleepy"], impl == "threaded"
            )
    elif kind == "flow":
        run.update(
            w.flow_runs(address, size, cfg["flow_count"], cfg["flow_slow_count"], cfg["flow_sleep"])
        )
    cell["runs"].append(run)


def error_text(e: BaseException) -> str:
    """A SpreadError's text (its args are (code, text)), or the exception's."""
    if isinstance(e, spread.SpreadError) and len(e.args) == 2:
        return f"{e.args[1]} ({e.args[0]})"
    return str(e)


class Unreachable(Exception):
    """No daemon answers at the address."""


def check_daemon(address: str) -> None:
    """Connects once, so that a daemon that is not there is one clear line
    before any run rather than a failure in the middle of one."""
    port, at, host = address.partition("@")
    where = f"{port} on {host}" if at else f"{port} (unix socket /tmp/{port})"
    try:
        with spread.connect(address, membership=0, timeout=10):
            pass
    except spread.SpreadError as e:
        raise Unreachable(f"no Spread daemon answers at {where}: {error_text(e)}") from None


def measure(daemon, args, cfg, steps):
    """Runs every step against the daemon; returns (address, raw, seconds)."""
    raw: dict = {}
    with daemon:
        # Our own daemon is read over its unix socket; someone else's where they said.
        address = daemon.unix_address if args.daemon is None else daemon.address
        check_daemon(address)
        start = time.monotonic()
        progress = Progress(len(steps))
        try:
            for kind, size, rep in steps:
                progress.step(f"{kind} {size} B, run {rep + 1}")
                run_step(address, kind, size, rep, cfg, raw)
        finally:
            progress.end()  # so that an error is read on a clean line
    return address, raw, time.monotonic() - start


def main(argv=None):
    args = parse_args(argv, __doc__)
    if args.backend and args.backend != spread.backend:
        # The backend is chosen at import: run again with it (workers inherit it).
        os.environ["SPREAD_BACKEND"] = args.backend
        os.execv(
            sys.executable,
            [sys.executable, "-m", "spread.bench", *(sys.argv[1:] if argv is None else argv)],
        )
    cfg, steps = plan(args)
    daemon: ExternalDaemon | EmbeddedDaemon
    if args.daemon:
        daemon = ExternalDaemon(args.daemon)
        where = f"the Spread daemon at {args.daemon}"
    else:
        daemon = EmbeddedDaemon(args.port, log_level="error")
        where = "the embedded daemon" + (f" on port {args.port}" if args.port else "")
    try:
        address, raw, elapsed = measure(daemon, args, cfg, steps)
    except Unreachable as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except (spread.SpreadError, w.WorkerError, RuntimeError, OSError) as e:
        # RuntimeError: the embedded daemon did not start, or failed.
        print(f"{PROG}: {where}: {error_text(e)}", file=sys.stderr)
        return 1
    rows = report.summarize(raw)
    shown = address if args.daemon else f"the embedded daemon ({address})"
    print(
        "\n".join(
            report.title(
                shown,
                cfg["repeats"],
                elapsed,
                args.wide,
                cfg["survive_repeats"] if "survive" in args.only else None,
            )
            + report.table(rows, args.wide)
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "config": cfg,
                    "sizes": args.sizes,
                    "address": address,
                    "backend": spread.backend,
                    "elapsed": elapsed,
                    "results": raw,
                },
                f,
                indent=1,
            )
    if args.plot:
        from spread.bench.plot import plot

        plot(raw, args.sizes, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
