"""The benchmark command runs end to end (a short run; figures are not checked)."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spread.bench",
            "--quick",
            "--sizes",
            "100",
            "--only",
            "mcast,self,2proc,rtt,slow,survive",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Python/C" in proc.stdout and "multicast only" in proc.stdout
    data = json.loads(out.read_text())
    kinds = {cell["kind"] for cell in data["results"].values()}
    assert kinds == {"mcast", "self", "2proc", "rtt", "slow", "survive"}
    # The slow-reader row: each run either lost nothing or was killed (then
    # it is reported as killed). Whether the drain thread keeps up with an
    # unthrottled C sender is a benchmark figure, not this test's: on a
    # loaded 2-core machine it was killed once in 12 runs over the external
    # library (the issue-16 row "never killed over 10 repeats" measures it).
    for run in data["results"]["slow 1024"]["runs"]:
        for impl in ("plain", "threaded"):
            got = run[impl]
            assert got["lost"] == 0 or got["killed"], (impl, got)
            assert 0 <= got["lost"] <= got["sent"], (impl, got)

    # The no-kill row: one run per receiver in --quick, either killed or
    # with every message received, and its figures in the table.
    survive = data["results"]["survive 100"]
    assert len(survive["runs"]) == 1
    for run in survive["runs"]:
        for impl in ("threaded", "c"):
            got = run[impl]
            assert got["sent"] == 19999, (impl, got)
            assert got["lost"] == 0 or got["killed"], (impl, got)
    assert survive["summary"]["threaded"]["runs"] == 1
    assert "no kill: ThreadedReceiver get_batch" in proc.stdout


def _survival(rate, messages=99, killed=False, failed=False):
    got = {"rate": rate, "messages": messages, "sent": 99, "lost": 99 - messages}
    if killed:
        got["killed"] = True
    if failed:
        got.update(failed=True, error="timeout")
    return got


def test_the_no_kill_row_counts_kills_and_losses_per_run():
    from spread.bench import report

    runs = [
        {"threaded": _survival(1000.0), "c": _survival(2000.0)},
        {"threaded": _survival(0.0, 40, killed=True), "c": _survival(2000.0)},
        # Not killed, yet a message short: a loss the row must show.
        {"threaded": _survival(3000.0, 98), "c": _survival(0.0, 10, killed=True, failed=True)},
    ]
    raw = {"survive 1024": {"kind": "survive", "size": 1024, "runs": runs}}
    (row,) = report.summarize(raw)
    assert row.label == "no kill: ThreadedReceiver get_batch"
    assert row.py and row.c and row.ratio
    assert (row.py["median"], row.py["lost"]) == (2000.0, 1)  # the killed run has no rate
    assert (row.c["median"], row.c["lost_as"]) == (2000.0, "failed")
    assert row.ratio["median"] == 0.5
    summary = raw["survive 1024"]["summary"]
    assert summary["threaded"] == {
        "runs": 3,
        "killed": 1,
        "failed": 0,
        "lost_unkilled": 1,
        "killed_after": [40],
    }
    assert summary["c_kills"]["killed"] == 0 and summary["c_kills"]["failed"] == 1
    assert row.brief == ["killed 1/3, lost 1 unkilled (C killed 0/3, failed 1, lost 0 unkilled)"]
    assert "killed after 40 of 99" in row.notes


def test_the_no_kill_row_runs_ten_times_per_size_unless_told():
    from spread.bench.__main__ import plan
    from spread.bench.options import parse_args

    _, steps = plan(parse_args(["--only", "survive", "--sizes", "100,10240"]))
    assert steps == [("survive", 100, r) for r in range(10)] + [
        ("survive", 10240, r) for r in range(10)
    ]
    _, steps = plan(parse_args(["--only", "survive", "--sizes", "100", "--repeats", "3"]))
    assert len(steps) == 3


STALLS = __import__("pathlib").Path(__file__).resolve().parents[1] / "bench" / "stalls.py"


@pytest.mark.skipif(
    bool(os.environ.get("SPREAD_LIBRARY")),
    reason="the script compares socket_buffer choices, which need our library",
)
def test_stalls_script_runs(tmp_path):
    # bench/stalls.py end to end, one tiny run per choice (the figures are
    # the machine's: only the shape of the output is checked).
    out = tmp_path / "stalls.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(STALLS),
            "--runs",
            "1",
            "--choices",
            "default,fixed200k",
            "--count",
            "300",
            "--burst",
            "100",
            "--pause-ms",
            "1",
            "--lag-every",
            "100",
            "--lag-ms",
            "1",
            "--run-timeout",
            "30",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| default | 1 |" in proc.stdout and "| fixed200k | 1 |" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    by_choice = {r["choice"]: r for r in rows}
    assert set(by_choice) == {"default", "fixed200k"}
    assert by_choice["fixed200k"]["rcvbuf"] == 2 * 204800  # the choice reached the socket
    for r in rows:
        assert r["killed"] or r["messages"] == 300


def test_stalls_script_refuses_an_unknown_choice():
    proc = subprocess.run(
        [sys.executable, str(STALLS), "--choices", "auto,huge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown choice 'huge'" in proc.stderr


LONGRUN = STALLS.parent / "longrun.py"


@pytest.mark.slow
def test_longrun_script_quick_run(tmp_path):
    # bench/longrun.py --quick end to end: every benchmark prints every row
    # (the figures are the machine's and are not checked).
    out = tmp_path / "longrun.json"
    proc = subprocess.run(
        [sys.executable, str(LONGRUN), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for row in (
        "| ThreadedReceiver.get_batch | 20000 |",
        "| receive() | 20000 |",
        "| disconnect() | start |",
        "| disconnect() | 600 |",
        "| disconnect() | after gc.collect() |",
        "| dropped, no disconnect() | 600 |",
        "| dropped, no disconnect() | after gc.collect() |",
        "| 0 |",
        "| 20,000 |",
        "| nr0 | yes |",
        "| nr3 | yes |",
        "daemon RSS:",
    ):
        assert row in text, row
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"clientrss", "cycles", "churn", "noread"}
    assert [r["messages"] for r in results["clientrss"]] == [20000, 20000]
    assert [(r["cycles"], r["error"]) for r in results["cycles"]] == [(600, None)] * 2
    assert results["churn"]["samples"][-1][0] == 20000
    assert [r["error"] for r in results["noread"]["readers"]] == ["spread.ConnectionClosed"] * 4
