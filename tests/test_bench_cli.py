"""python -m spread.bench's command line: bad input is refused before any run,
a daemon that is not there is one line, and the table fits 120 columns."""

import subprocess
import sys

import pytest

from spread.bench import report
from spread.testing import free_port

SMALL = ["--quick", "--sizes", "100"]


def bench(*args, hide=None, timeout=30):
    """Runs the command; `hide` names a module made unimportable in it."""
    prelude = f"import sys; sys.modules[{hide!r}] = None; " if hide else ""
    code = prelude + "import runpy; runpy.run_module('spread.bench', run_name='__main__')"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(30)
def test_plot_without_matplotlib_fails_before_the_run(tmp_path):
    out = tmp_path / "raw.json"
    proc = bench(
        *SMALL,
        "--only",
        "mcast",
        "--json",
        str(out),
        "--plot",
        str(tmp_path / "p.png"),
        hide="matplotlib",
    )
    assert proc.returncode == 2
    assert "--plot needs matplotlib" in proc.stderr
    assert "pip install 'spread-client[plot]'" in proc.stderr
    assert "1/1" not in proc.stderr and proc.stdout == ""  # nothing ran
    assert not out.exists()


@pytest.mark.timeout(30)
def test_a_daemon_that_is_not_there_is_one_line():
    port = free_port()  # nothing listens there
    proc = bench(*SMALL, "--only", "mcast", "--daemon", str(port))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"python -m spread.bench: no Spread daemon answers at {port} (unix socket /tmp/{port}): "
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "option, value, message",
    [
        (
            "--sizes",
            "abc",
            "argument --sizes: expected a payload size in bytes from 1 to 143519, not 'abc'",
        ),
        (
            "--sizes",
            "100,0",
            "argument --sizes: expected a payload size in bytes from 1 to 143519, not '0'",
        ),
        (
            "--only",
            "mcast,nope",
            "argument --only: unknown workload 'nope': choose from mcast,self,2proc,rtt,slow",
        ),
        ("--repeats", "0", "argument --repeats: expected a whole number of at least 1, not '0'"),
        ("--daemon", "48o3", "argument --daemon: expected PORT or PORT@HOST"),
        ("--port", "40000", "argument --port: expected a port from 1 to 32767, not '40000'"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(option, value, message):
    proc = bench("--quick", option, value)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1].startswith(f"python -m spread.bench: error: {message}"), (
        proc.stderr
    )


@pytest.mark.timeout(60)
def test_the_table_fits_120_columns_on_the_given_port():
    port = free_port()
    proc = bench(*SMALL, "--only", "2proc", "--port", str(port))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"against the embedded daemon ({port})" in lines[0]
    assert "receiver: ThreadedReceiver get_batch" in proc.stdout
    assert max(len(line) for line in lines) <= 120, proc.stdout


# -- the report, from made-up figures ------------------------------------------


def receiver(rate, killed=False, failed=False):
    result = {"rate": rate, "drain_rate": rate, "killed": killed, "cpu_us_per_message": 1.5}
    if failed:
        result.update(error="timeout", failed=True)
    return result


def two_process_cell(runs):
    return {"2proc 1024": {"kind": "2proc", "size": 1024, "runs": runs}}


def run(plain, c=None):
    if c is None:
        c = receiver(500_000.0)
    return {
        "plain": plain,
        "threaded": receiver(400_000.0),
        "threaded_busy": receiver(300_000.0),
        "c": c,
        "c_busy": receiver(450_000.0),
    }


def test_killed_runs_are_left_out_of_the_medians_and_shown_as_killed():
    raw = two_process_cell(
        [run(receiver(200_000.0)), run(receiver(0.0, killed=True)), run(receiver(300_000.0))]
    )
    plain = report.summarize(raw)[0]
    assert plain.label == "receiver: receive()" and plain.py and plain.ratio
    assert (plain.py["median"], plain.py["min"], plain.py["lost"]) == (250_000.0, 200_000.0, 1)
    assert plain.ratio["median"] == pytest.approx(0.5)
    assert "killed 1/3 (C 0/3)" in plain.brief
    lines = report.table([plain], wide=False)
    assert "250,000 ±20%" in lines[2] and "killed 1/3" in lines[2]


def test_a_cell_whose_every_run_was_killed_says_so():
    raw = two_process_cell(
        [run(receiver(0.0, killed=True), c=receiver(0.0, failed=True, killed=True))]
    )
    plain = report.summarize(raw)[0]
    cells = report.table([plain], wide=True)[2].split()
    assert cells[cells.index("1024") + 1 :][:3] == ["killed", "failed", "—"]
    assert "killed 1/1 (C failed 1/1)" in plain.notes


def test_the_compact_table_fits_120_columns_with_the_widest_figures():
    big = receiver(12_345_678.0)
    runs = [run(receiver(1_000.0, killed=True), c=receiver(1.0, killed=True))] + [
        run(big, c=big)
    ] * 2
    rows = report.summarize(two_process_cell(runs))
    assert max(len(line) for line in report.table(rows, wide=False)) <= 120
    assert max(len(line) for line in report.table(rows, wide=True)) > 120  # --wide: all of it
