"""The command line of python -m spread.bench. Everything that can be wrong
with it is reported here, before any run starts."""

from __future__ import annotations

import argparse

from spread._cli import daemon_address, payload_size, port_number, positive_int

WORKLOADS = ("mcast", "self", "2proc", "rtt", "slow", "flow", "survive")
DEFAULT_SIZES = (100, 1024, 10240)


def sizes(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected payload sizes in bytes, e.g. 100,1024")
    return [payload_size(p) for p in parts]  # every workload sends to one group


def workloads(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(map(repr, unknown)) or repr(text)}: "
            f"choose from {','.join(WORKLOADS)}"
        )
    return names


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spread.bench", description=description)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--daemon",
        type=daemon_address,
        help="a running Spread daemon, e.g. 4803 or 4803@host (default: start the embedded daemon)",
    )
    where.add_argument(
        "--port",
        type=port_number,
        help="port for the embedded daemon, TCP and /tmp/<port> (default: a free one)",
    )
    p.add_argument(
        "--sizes",
        type=sizes,
        default=list(DEFAULT_SIZES),
        help="payload sizes in bytes, comma separated (default 100,1024,10240)",
    )
    p.add_argument("--repeats", type=positive_int, help="runs per cell (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="a short run (under 20 s)")
    p.add_argument("--json", metavar="FILE", help="write every raw figure to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency (matplotlib)")
    p.add_argument(
        "--only",
        type=workloads,
        default=list(WORKLOADS),
        help=f"workloads to run, comma separated: {','.join(WORKLOADS)} (default all)",
    )
    p.add_argument(
        "--backend",
        choices=["cython", "cffi"],
        help="the binding's backend to measure (default: what import spread picks)",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="the full table, every cell as median [min–max] (default: median ±spread, "
        "within 120 columns)",
    )
    return p


def parse_args(argv: list[str] | None, description: str | None = None) -> argparse.Namespace:
    p = parser(description)
    args = p.parse_args(argv)
    # Found out now, not after a run of several minutes.
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")  # files only: no display needed
            import matplotlib.pyplot  # noqa: F401
        except ImportError as e:
            p.error(f"--plot needs matplotlib ({e}): pip install 'spread-client[plot]'")
    return args
