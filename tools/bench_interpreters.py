"""Benchmark rows of several interpreters in one run, on one daemon.

    python tools/bench_interpreters.py "CPython 3.11, Cython=/venv/bin/python" \\
        "PyPy 3.9, cffi=/venv-pypy/bin/python" [--only mcast,rtt] [--repeats 3]

Starts one embedded daemon (a subprocess, spread.testing.EmbeddedDaemon),
then runs `python -m spread.bench --quick --daemon ... --json` with each
interpreter in turn against it, and prints one row per workload and size:
each interpreter's figure with its Python/C ratio (spread.bench's own C loop,
measured in that interpreter's run), and each figure over the first one's.
The interpreters must have spread-client installed (each picks its default
backend, unless LABEL=PATH is followed by @cython or @cffi).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from spread.testing import EmbeddedDaemon

UNITS = {"mcast": "msg/s", "self": "msg/s", "rtt": "µs", "2proc": "msg/s"}


def run_bench(python: str, backend: str | None, address: str, args, out: Path) -> dict:
    command = [python, "-m", "spread.bench", "--quick", "--daemon", address, "--json", str(out)]
    command += ["--only", args.only, "--sizes", args.sizes, "--repeats", str(args.repeats)]
    if backend:
        command += ["--backend", backend]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=out.parent)
    if proc.returncode:
        raise SystemExit(f"{python} -m spread.bench failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(out.read_text())


def figure(result: dict, side: str) -> float | None:
    value = result["summary"][side].get("median")
    return None if value is None else float(value)


def cell(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ratio(p: float | None, q: float | None) -> str:
    return "—" if p is None or not q else f"{p / q:.2f}"


def table(labels: list[str], reports: list[dict]) -> list[str]:
    head = ["workload", "size B"]
    for i, label in enumerate(labels):
        head += [label, "Python/C"] + ([f"/ {labels[0]}"] if i else [])
    rows = [head]
    for key, first in reports[0]["results"].items():
        kind, size = first["kind"], first["size"]
        row = [f"{kind} [{UNITS.get(kind, '')}]", str(size)]
        base = figure(first, "py")
        for i, report in enumerate(reports):
            result = report["results"].get(key)
            py = figure(result, "py") if result else None
            c = figure(result, "c") if result else None
            row += [cell(py), ratio(py, c)] + ([ratio(py, base)] if i else [])
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("interpreters", nargs="+", metavar="LABEL=PATH[@BACKEND]")
    p.add_argument("--only", default="mcast,rtt")
    p.add_argument("--sizes", default="100,1024")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    pairs = []
    for spec in args.interpreters:
        label, _, rest = spec.rpartition("=")
        path, _, backend = rest.partition("@")
        if not label or not os.access(path, os.X_OK):
            p.error(f"{spec!r}: expected LABEL=PATH to an interpreter")
        pairs.append((label, path, backend or None))
    with tempfile.TemporaryDirectory() as work, EmbeddedDaemon() as daemon:
        reports = []
        for i, (_, path, backend) in enumerate(pairs):
            reports.append(run_bench(path, backend, daemon.address, args, Path(work, f"{i}.json")))
    labels = [f"{label} ({report['backend']})" for (label, _, _), report in zip(pairs, reports)]
    print(
        f"spread.bench --quick on one embedded daemon ({daemon.address}), median of "
        f"{args.repeats} run(s); Python/C: against spread.bench's C loop in the same run "
        "(rates: higher is better; rtt: lower is better)"
    )
    print("\n".join(table(labels, reports)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
