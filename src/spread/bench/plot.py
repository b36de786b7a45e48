"""--plot: throughput and round trip against payload size, Python beside C.
The command line has checked that matplotlib imports before any run."""

from __future__ import annotations

IMPLS = (("py", "tab:blue", "Python"), ("c", "tab:orange", "C"))


def _medians(raw, kind, sizes, impl):
    xs = [s for s in sizes if f"{kind} {s}" in raw]
    return xs, [raw[f"{kind} {s}"]["summary"][impl]["median"] for s in xs]


def _axes(ax, ylabel, title):
    ax.set_xscale("log")
    ax.set_xlabel("payload [B]")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()


def plot(raw: dict, sizes: list[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rates, trips) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, marker in (("mcast", "o"), ("self", "s")):
        for impl, colour, name in IMPLS:
            xs, ys = _medians(raw, kind, sizes, impl)
            if xs:
                rates.plot(xs, ys, marker=marker, color=colour, label=f"{kind} {name}")
    _axes(rates, "msg/s", "throughput")
    for impl, colour, name in IMPLS:
        xs, ys = _medians(raw, "rtt", sizes, impl)
        if xs:
            trips.plot(xs, ys, marker="o", color=colour, label=name)
    _axes(trips, "round trip [µs]", "latency (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
