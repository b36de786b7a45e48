"""What python -m spread.bench prints: the raw figures of every run reduced
to one row per workload and size, and the table of those rows.

A run whose receiver the daemon killed (or whose worker failed) has no rate:
it is left out of the medians and shown as killed, never counted as 0 msg/s.
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field

import spread

WIDTH = 120  # the compact table's width


@dataclass
class Row:
    label: str
    unit: str
    size: int
    py: dict | None = None
    c: dict | None = None
    ratio: dict | None = None
    notes: list[str] = field(default_factory=list)  # the wide table's notes
    brief: list[str] = field(default_factory=list)  # the compact table's


def figures(values: list, lost: str = "killed") -> dict:
    """Median, min and max of the runs that finished (None marks one that did
    not), with how many did not and what to call them."""
    done = [v for v in values if v is not None]
    out = {
        "median": None,
        "min": None,
        "max": None,
        "runs": len(values),
        "lost": len(values) - len(done),
        "lost_as": lost,
    }
    if done:
        out.update(median=statistics.median(done), min=min(done), max=max(done))
    return out


def ratios(py: list, c: list) -> list:
    return [p / q if p is not None and q else None for p, q in zip(py, c)]


def _finished(result: dict, value):
    return None if result.get("killed") else value


def _lost_as(results: list[dict]) -> str:
    """ "failed" when every run that did not finish had a worker fail (a
    timeout, a crash) rather than a receiver the daemon killed."""
    lost = [r for r in results if r.get("killed")]
    return "failed" if lost and all(r.get("failed") for r in lost) else "killed"


def _median_of(values) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def _rates(cell: dict, kind: str) -> list[Row]:
    size, runs = cell["size"], cell["runs"]
    py = [r["py"] for r in runs]
    c = [r["c"] for r in runs]
    row = Row(
        "multicast only" if kind == "mcast" else "send + receive own",
        "msg/s",
        size,
        figures(py),
        figures(c),
        figures(ratios(py, c), "—"),
    )
    row.notes = row.brief = [f"{statistics.median(py) * size / 1e6:.1f} MB/s Python"]
    cell["summary"] = {"py": row.py, "c": row.c, "ratio": row.ratio}
    return [row]


TWO_PROCESS = (
    # (receiver, label, figure, C receiver it is set beside)
    ("plain", "receiver: receive()", "rate", "c"),
    ("threaded", "receiver: ThreadedReceiver get_batch", "rate", "c"),
    ("threaded", "  its drain thread", "drain_rate", "c"),
    ("threaded_busy", "  drain, Python thread spinning", "drain_rate", "c"),
    # The same, against a C receiver whose process has the same spinning
    # thread: on a machine with few cores the spinner takes a core from the
    # sender and the daemon either way.
    ("threaded_busy", "  same, C also beside a spinner", "drain_rate", "c_busy"),
)


def _two_process(cell: dict) -> list[Row]:
    size, runs = cell["size"], cell["runs"]
    rows = []
    cell["summary"] = {}
    for impl, label, fig, base in TWO_PROCESS:
        mine = [r[impl] for r in runs]
        theirs = [r[base] for r in runs]
        py = [_finished(r, r.get(fig)) for r in mine]
        c = [_finished(r, r.get("rate")) for r in theirs]
        py_fig, c_fig = figures(py, _lost_as(mine)), figures(c, _lost_as(theirs))
        row = Row(label, "msg/s", size, py_fig, c_fig, figures(ratios(py, c), "—"))
        lost, clost, n = py_fig["lost"], c_fig["lost"], len(runs)
        how, chow = py_fig["lost_as"], c_fig["lost_as"]
        row.notes = [f"{how} {lost}/{n} (C {'' if chow == how else chow + ' '}{clost}/{n})"]
        if lost or clost:
            row.brief = list(row.notes)
        if fig == "rate":
            # What receiving costs the receiving process, whatever the
            # scheduler did: CPU time per message, Python and C.
            cpu = _median_of(_finished(r, r.get("cpu_us_per_message")) for r in mine)
            ccpu = _median_of(_finished(r, r.get("cpu_us_per_message")) for r in theirs)
            cpu_note = f"CPU {fmt(cpu, 2)} µs/msg (C {fmt(ccpu, 2)})"
            row.notes.append(cpu_note)
            row.brief.append(cpu_note)
        rows.append(row)
        cell["summary"][f"{impl} {fig}"] = {
            "py": row.py,
            "c": row.c,
            "ratio": row.ratio,
            "killed": lost,
        }
    return rows


def _round_trip(cell: dict) -> list[Row]:
    runs = cell["runs"]
    py = [r["py"]["median"] for r in runs]
    c = [r["c"]["median"] for r in runs]
    row = Row(
        "round trip (median)",
        "µs",
        cell["size"],
        figures(py),
        figures(c),
        figures(ratios(py, c), "—"),
    )
    p99 = statistics.median(r["py"]["p99"] for r in runs)
    cp99 = statistics.median(r["c"]["p99"] for r in runs)
    row.notes = row.brief = [f"p99 {p99:.0f} µs (C {cp99:.0f})"]
    cell["summary"] = {"py": row.py, "c": row.c, "ratio": row.ratio}
    return [row]


def _slow_reader(cell: dict) -> list[Row]:
    runs = cell["runs"]
    rows = []
    cell["summary"] = {}
    for impl, label in (
        ("plain", "slow reader: receive()"),
        ("threaded", "slow reader: ThreadedReceiver"),
    ):
        killed = sum(bool(r[impl]["killed"]) for r in runs)
        lost = max(r[impl]["lost"] for r in runs)
        row = Row(label, "", cell["size"])
        row.notes = row.brief = [
            f"killed {killed}/{len(runs)}, lost {lost} of {runs[0][impl]['sent']}"
        ]
        rows.append(row)
        cell["summary"][impl] = {"killed": killed, "lost": lost}
    return rows


def _kills(results: list[dict]) -> dict:
    """How the runs of one receiver ended: killed by the daemon, failed (the
    worker itself), and the messages lost by runs that were not killed,
    which must be none."""
    killed = [r for r in results if r.get("killed") and not r.get("failed")]
    return {
        "runs": len(results),
        "killed": len(killed),
        "failed": sum(bool(r.get("failed")) for r in results),
        "lost_unkilled": sum(r.get("lost", 0) for r in results if not r.get("killed")),
        "killed_after": [r.get("messages") or 0 for r in killed],
    }


def _ended(k: dict) -> str:
    failed = f", failed {k['failed']}" if k["failed"] else ""
    return f"killed {k['killed']}/{k['runs']}{failed}, lost {k['lost_unkilled']} unkilled"


def _survive(cell: dict) -> list[Row]:
    """The no-kill row: the ThreadedReceiver under a C sender at full speed,
    every run counted killed or not, beside the C receiver in the same runs
    (its rate in the C column, its kills in the notes)."""
    size, runs = cell["size"], cell["runs"]
    mine = [r["threaded"] for r in runs]
    theirs = [r["c"] for r in runs]
    py = [_finished(r, r.get("rate")) for r in mine]
    c = [_finished(r, r.get("rate")) for r in theirs]
    row = Row(
        "no kill: ThreadedReceiver get_batch",
        "msg/s",
        size,
        figures(py, _lost_as(mine)),
        figures(c, _lost_as(theirs)),
        figures(ratios(py, c), "—"),
    )
    k, ck = _kills(mine), _kills(theirs)
    row.brief = [f"{_ended(k)} (C {_ended(ck)})"]
    row.notes = list(row.brief)
    sent = max((r.get("sent", 0) for r in mine), default=0)
    for who, got in (("", k), ("C ", ck)):
        if got["killed_after"]:
            after = ", ".join(fmt(n) for n in got["killed_after"])
            row.notes.append(f"{who}killed after {after} of {fmt(sent)}")
    cell["summary"] = {"py": row.py, "c": row.c, "ratio": row.ratio, "threaded": k, "c_kills": ck}
    return [row]


def _flow(cell: dict) -> list[Row]:
    """spread.flow's rows: Python only (the C column is empty); the notes
    set each rate beside what it is compared with in the same run."""
    runs = cell["runs"]
    size = cell["size"]
    n = len(runs)

    def rate(r: dict, side: str):
        got = r[side]
        if got["receiver"].get("killed"):
            return None
        return got["sender"].get("rate") if side != "batch" else got["receiver"].get("rate")

    flow = [rate(r, "flow") for r in runs]
    raw = [r["raw"] for r in runs]
    ratio = figures(ratios(flow, raw), "—")
    on = Row("flow: send, fast flow receiver", "msg/s", size, figures(flow), None, None)
    on.notes = on.brief = [
        f"{fmt(ratio['median'], 2)} of raw multicast() from Python "
        f"({fmt(_median_of(raw))} msg/s, same run)"
    ]
    batch = [rate(r, "batch") for r in runs]
    single = [rate(r, "batch_single") for r in runs]
    frames = _median_of(
        r["batch"]["receiver"]["messages"] / max(1, r["batch"]["sender"].get("frames", 1))
        for r in runs
    )
    bat = Row("flow: batching, send_many 16 B", "logical msg/s", 16, figures(batch), None, None)
    unbatched = [rate(r, "unbatched") if "unbatched" in r else None for r in runs]
    gain = _median_of(ratios(batch, unbatched))
    bat.notes = bat.brief = [
        f"{fmt(frames, 1)} msgs per daemon message; send() one by one "
        f"{fmt(_median_of(single))} msg/s; unbatched (a daemon message each) "
        f"{fmt(_median_of(unbatched))} msg/s, batched {fmt(gain, 1)}x that"
    ]
    slow = [r["slow"] for r in runs]
    sender = [s["sender"].get("rate") for s in slow]
    consumer = [s["receiver"].get("rate") for s in slow]
    killed = sum(bool(s["receiver"].get("killed")) for s in slow)
    peak_f = max(s["receiver"].get("peak_frames", 0) for s in slow)
    peak_m = max(s["receiver"].get("peak_messages", 0) for s in slow)
    track = _median_of(ratios(sender, consumer))
    sl = Row("flow: slow consumer 1 ms/msg, sender", "msg/s", size, figures(sender), None, None)
    sl.notes = sl.brief = [
        f"consumer {fmt(_median_of(consumer))} msg/s (sender/consumer {fmt(track, 2)}); "
        f"killed {killed}/{n}; peak backlog {peak_f} frames, {peak_m} msgs (window 32)"
    ]
    cell["summary"] = {
        "flow_vs_raw": ratio,
        "batch_rate": figures(batch),
        "batch_over_unbatched": gain,
        "slow_killed": killed,
        "slow_sender_over_consumer": track,
        "slow_peak_frames": peak_f,
    }
    return [on, bat, sl]


SUMMARIES = {
    "mcast": lambda cell: _rates(cell, "mcast"),
    "self": lambda cell: _rates(cell, "self"),
    "2proc": _two_process,
    "rtt": _round_trip,
    "slow": _slow_reader,
    "flow": _flow,
    "survive": _survive,
}


def summarize(raw: dict) -> list[Row]:
    """The rows of the table; also stores each cell's figures in
    raw[key]["summary"] for the JSON file and the plot."""
    rows = []
    for cell in raw.values():
        rows += SUMMARIES[cell["kind"]](cell)
    return rows


def fmt(x, digits=0) -> str:
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def cell_text(fig: dict | None, wide: bool, digits: int = 0) -> str:
    if fig is None:
        return ""
    median, low, high = fig["median"], fig["min"], fig["max"]
    if median is None:
        return fig["lost_as"] if fig["runs"] else "—"
    if wide:
        return f"{fmt(median, digits)} [{fmt(low, digits)}–{fmt(high, digits)}]"
    if high == low or not median:
        return fmt(median, digits)
    return f"{fmt(median, digits)} ±{100 * max(high - median, median - low) / median:.0f}%"


HEAD = ("workload", "size B", "Python", "C", "Python/C", "notes")


def table(rows: list[Row], wide: bool) -> list[str]:
    """The table's lines; unless wide, none longer than WIDTH (long notes
    wrap within their column)."""
    body = [
        (
            f"{r.label} [{r.unit}]" if r.unit else r.label,
            str(r.size),
            cell_text(r.py, wide),
            cell_text(r.c, wide),
            cell_text(r.ratio, wide, 2),
            "; ".join(r.notes if wide else r.brief),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [HEAD, *body]) for i in range(len(HEAD) - 1)]
    indent = sum(widths) + 2 * len(widths)
    notes_width = max(len(line[-1]) for line in [HEAD, *body])
    if not wide:
        notes_width = min(notes_width, max(WIDTH - indent, 20))
    widths.append(notes_width)

    def line(cells):
        left = "  ".join(
            v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(cells[:-1])
        )
        return f"{left}  {cells[-1]}".rstrip()

    out = [line(HEAD), line(["-" * w for w in widths])]
    for cells in body:
        notes = textwrap.wrap(cells[-1], notes_width) if not wide and cells[-1] else [cells[-1]]
        out.append(line([*cells[:-1], notes[0]]))
        out += [" " * indent + more for more in notes[1:]]
    return out


def title(
    address: str, repeats: int, elapsed: float, wide: bool, no_kill_runs: int | None = None
) -> list[str]:
    how = "median [min–max]" if wide else "median ±largest deviation"
    runs = f"{repeats} run(s)"
    if no_kill_runs is not None:
        runs += f" ({no_kill_runs} for the no-kill row)" if no_kill_runs != repeats else ""
    text = (
        f"spread {spread.__version__} ({spread.backend}) against {address}; "
        f"{how} of {runs}; {elapsed:.0f} s"
    )
    return [text] if wide else textwrap.wrap(text, WIDTH)
