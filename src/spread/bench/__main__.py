"""python -m spread.bench: Python beside the native C client, same daemon,
same run. With no --daemon it starts the embedded daemon on a free port."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import spread
from spread.bench import workloads as w
from spread.testing import EmbeddedDaemon, ExternalDaemon

DEFAULT_SIZES = (100, 1024, 10240)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m spread.bench", description=__doc__)
    p.add_argument("--daemon", help="a running Spread daemon, e.g. 4803 or 4803@host "
                                    "(default: start the embedded daemon)")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="payload sizes in bytes, comma separated (default 100,1024,10240)")
    p.add_argument("--repeats", type=int, help="runs per cell (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="a short run (under 20 s)")
    p.add_argument("--json", metavar="FILE", help="write every raw figure to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency (matplotlib)")
    p.add_argument("--only", help="workloads to run, comma separated: "
                                  "mcast,self,2proc,rtt,slow (default all)")
    p.add_argument("--backend", choices=["cython", "cffi"],
                   help="the binding's backend to measure (default: what import spread picks)")
    return p.parse_args(argv)


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


def spread_of(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def plan(args):
    sizes = [int(s) for s in args.sizes.split(",") if s]
    only = set(args.only.split(",")) if args.only else {"mcast", "self", "2proc", "rtt", "slow"}
    quick = args.quick
    cfg = {
        "repeats": args.repeats or (1 if quick else 3),
        "seconds": 0.1 if quick else 0.4,
        # Messages per receiver run at sizes up to 4 KiB (fewer above): a few
        # tenths of a second at full speed, so start-up does not dominate.
        "count_2proc": 20000 if quick else 200000,
        "warmup": 50 if quick else 200,
        "rounds": 300 if quick else 2000,
        "slow_count": 3000,
        "slow_sleepy": 100 if quick else 200,
    }
    steps = []
    for rep in range(cfg["repeats"]):
        for size in sizes:
            if "mcast" in only:
                steps.append(("mcast", size, rep))
            if "self" in only:
                steps.append(("self", size, rep))
            if "2proc" in only:
                steps.append(("2proc", size, rep))
            if "rtt" in only:
                steps.append(("rtt", size, rep))
        if "slow" in only:
            steps.append(("slow", 1024, rep))
    return sizes, cfg, steps


def run_step(address, kind, size, rep, cfg, raw):
    # Alternate which side runs first so neither always gets the warmer daemon.
    order = ("py", "c") if rep % 2 == 0 else ("c", "py")
    key = f"{kind} {size}"
    cell = raw.setdefault(key, {"kind": kind, "size": size, "runs": []})
    run = {}
    if kind == "mcast":
        for impl in order:
            run[impl] = w.multicast_rate(address, size, cfg["seconds"], impl)
    elif kind == "self":
        for impl in order:
            run[impl] = w.self_rate(address, size, cfg["seconds"], impl)
    elif kind == "2proc":
        count = int(cfg["count_2proc"] * min(1.0, 4096 / size))
        for impl in ("plain", "threaded", "threaded_busy", "c", "c_busy"):
            run[impl] = w.two_process(address, size, count, impl)
    elif kind == "rtt":
        for impl in order:
            rtts = sorted(w.ping_pong(address, size, cfg["warmup"], cfg["rounds"], impl))
            run[impl] = {"median": statistics.median(rtts),
                         "p99": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]}
    elif kind == "slow":
        for impl in ("plain", "threaded"):
            run[impl] = w.slow_reader(address, cfg["slow_count"], cfg["slow_sleepy"],
                                      impl == "threaded")
    cell["runs"].append(run)


def fmt(x, digits=0):
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if digits else f"{x:.0f}"


def cell_text(stats, digits=0):
    if stats is None:
        return "—"
    return f"{fmt(stats['median'], digits)} [{fmt(stats['min'], digits)}–{fmt(stats['max'], digits)}]"


def summarize(raw):
    """Rows of (workload, size, python, c, ratio, notes) with medians and ranges."""
    rows = []
    for key, cell in raw.items():
        kind, size, runs = cell["kind"], cell["size"], cell["runs"]
        if kind in ("mcast", "self"):
            py = [r["py"] for r in runs]
            c = [r["c"] for r in runs]
            ratio = [p / q for p, q in zip(py, c)]
            label = "multicast only" if kind == "mcast" else "send + receive own"
            mb = statistics.median(py) * size / 1e6
            rows.append((label, size, spread_of(py), spread_of(c), spread_of(ratio),
                         f"{mb:.1f} MB/s Python", "msg/s"))
            cell["summary"] = {"py": spread_of(py), "c": spread_of(c), "ratio": spread_of(ratio)}
        elif kind == "2proc":
            cell["summary"] = {}
            for impl, label, field, base in (
                    ("plain", "receiver: receive()", "rate", "c"),
                    ("threaded", "receiver: ThreadedReceiver get_batch", "rate", "c"),
                    ("threaded", "  its drain thread", "drain_rate", "c"),
                    ("threaded_busy", "  drain, Python thread spinning", "drain_rate", "c"),
                    # The same, against a C receiver whose process has the same
                    # spinning thread: on a machine with few cores the spinner
                    # takes a core from the sender and the daemon either way.
                    ("threaded_busy", "  same, C also beside a spinner", "drain_rate",
                     "c_busy")):
                c = [r[base]["rate"] for r in runs]
                py = [r[impl][field] or 0.0 for r in runs]
                ratio = [p / q if q else 0.0 for p, q in zip(py, c)]
                killed = sum(r[impl]["killed"] for r in runs)
                ckilled = sum(r[base]["killed"] for r in runs)
                note = f"killed {killed}/{len(runs)} (C {ckilled}/{len(runs)})"
                if field == "rate":
                    # What receiving costs the receiving process, whatever the
                    # scheduler did: CPU time per message, Python and C.
                    cpu = statistics.median(r[impl].get("cpu_us_per_message") or 0 for r in runs)
                    ccpu = statistics.median(r[base].get("cpu_us_per_message") or 0 for r in runs)
                    note += f"; CPU {cpu:.2f} µs/msg (C {ccpu:.2f})"
                rows.append((label, size, spread_of(py), spread_of(c), spread_of(ratio), note,
                             "msg/s"))
                cell["summary"][f"{impl} {field}"] = {"py": spread_of(py), "c": spread_of(c),
                                                      "ratio": spread_of(ratio), "killed": killed}
        elif kind == "rtt":
            py = [r["py"]["median"] for r in runs]
            c = [r["c"]["median"] for r in runs]
            ratio = [p / q for p, q in zip(py, c)]
            p99 = statistics.median(r["py"]["p99"] for r in runs)
            cp99 = statistics.median(r["c"]["p99"] for r in runs)
            rows.append(("round trip (median)", size, spread_of(py), spread_of(c),
                         spread_of(ratio), f"p99 {p99:.0f} µs (C {cp99:.0f})", "µs"))
            cell["summary"] = {"py": spread_of(py), "c": spread_of(c), "ratio": spread_of(ratio)}
        elif kind == "slow":
            for impl, label in (("plain", "slow reader: receive()"),
                                ("threaded", "slow reader: ThreadedReceiver")):
                killed = sum(r[impl]["killed"] for r in runs)
                lost = [r[impl]["lost"] for r in runs]
                rows.append((label, size, None, None, None,
                             f"killed {killed}/{len(runs)}, lost {max(lost)} of "
                             f"{runs[0][impl]['sent']}", ""))
            cell["summary"] = {impl: {"killed": sum(r[impl]["killed"] for r in runs),
                                      "lost": max(r[impl]["lost"] for r in runs)}
                               for impl in ("plain", "threaded")}
    return rows


def print_table(rows, address, repeats, elapsed):
    head = ("workload", "size B", "Python", "C", "Python/C", "notes")
    body = []
    for label, size, py, c, ratio, note, unit in rows:
        name = f"{label} [{unit}]" if unit else label
        body.append((name, str(size), cell_text(py), cell_text(c), cell_text(ratio, 2), note))
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    print(f"spread {spread.__version__} ({spread.backend}) against {address}; "
          f"median [min–max] of {repeats} run(s); {elapsed:.0f} s")
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(head)))
    print("  ".join("-" * wd for wd in widths))
    for r in body:
        print("  ".join(v.ljust(widths[i]) if i in (0, 5) else v.rjust(widths[i])
                        for i, v in enumerate(r)))


def plot(raw, sizes, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install 'spread-client[plot]')", file=sys.stderr)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, style in (("mcast", "o"), ("self", "s")):
        for impl, colour in (("py", "tab:blue"), ("c", "tab:orange")):
            xs = [s for s in sizes if f"{kind} {s}" in raw]
            ys = [raw[f"{kind} {s}"]["summary"][impl]["median"] for s in xs]
            if xs:
                ax1.plot(xs, ys, marker=style, color=colour,
                         label=f"{kind} {'Python' if impl == 'py' else 'C'}")
    ax1.set_xscale("log")
    ax1.set_xlabel("payload [B]")
    ax1.set_ylabel("msg/s")
    ax1.set_title("throughput")
    ax1.legend()
    for impl, colour in (("py", "tab:blue"), ("c", "tab:orange")):
        xs = [s for s in sizes if f"rtt {s}" in raw]
        ys = [raw[f"rtt {s}"]["summary"][impl]["median"] for s in xs]
        if xs:
            ax2.plot(xs, ys, marker="o", color=colour, label="Python" if impl == "py" else "C")
    ax2.set_xscale("log")
    ax2.set_xlabel("payload [B]")
    ax2.set_ylabel("round trip [µs]")
    ax2.set_title("latency (median)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    args = parse_args(argv)
    if args.backend and args.backend != spread.backend:
        # The backend is chosen at import: run again with it (workers inherit it).
        os.environ["SPREAD_BACKEND"] = args.backend
        os.execv(sys.executable, [sys.executable, "-m", "spread.bench",
                                  *(sys.argv[1:] if argv is None else argv)])
    sizes, cfg, steps = plan(args)
    daemon = ExternalDaemon(args.daemon) if args.daemon else EmbeddedDaemon(log_level="error")
    raw: dict = {}
    start = time.monotonic()
    progress = Progress(len(steps))
    with daemon:
        address = daemon.unix_address if args.daemon is None else daemon.address
        for kind, size, rep in steps:
            progress.step(f"{kind} {size} B, run {rep + 1}")
            run_step(address, kind, size, rep, cfg, raw)
    progress.end()
    elapsed = time.monotonic() - start
    rows = summarize(raw)
    print_table(rows, address if args.daemon else f"the embedded daemon ({address})",
                cfg["repeats"], elapsed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "sizes": sizes, "address": address, "backend": spread.backend,
                       "elapsed": elapsed, "results": raw}, f, indent=1)
    if args.plot:
        plot(raw, sizes, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
