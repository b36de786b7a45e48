"""python -m spread.demo finishes, whatever order the daemon handles the two
joins in."""

import os
import re
import subprocess
import sys

import pytest

from spread.testing import free_port

RUNS = 20
BURST = 2000

BOTH = re.compile(r"members=\('#(alice|bob)#localhost', '#(alice|bob)#localhost'\)")


def run_demo(port, one_cpu):
    # On one CPU the demo's process writes both joins before its daemon thread
    # runs, and the daemon then often takes bob's first: the order a demo that
    # counted notices got stuck on.
    # (PyPy's os has no sched_setaffinity: its runs are all unpinned.)
    one_cpu = one_cpu and hasattr(os, "sched_setaffinity")
    pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_cpu else None
    return subprocess.run(
        [sys.executable, "-m", "spread.demo", "--port", str(port), "--count", str(BURST)],
        capture_output=True,
        text=True,
        timeout=15,
        preexec_fn=pin,
    )


def check_output(out, port):
    lines = out.splitlines()
    assert lines[0] == f"embedded daemon on {port}@127.0.0.1 and /tmp/{port}"
    alice = [line for line in lines if line.startswith("alice got")]
    bob = [line for line in lines if line.startswith("bob got")]
    # Each saw the group with both members before the message was sent.
    assert any(BOTH.search(line) and "reason=0x100" in line for line in alice), out
    assert any(BOTH.search(line) and "reason=0x100" in line for line in bob), out
    assert bob[-1].startswith("bob got   <RegularMsg sender='#alice#localhost'"), out
    assert bob[-1].endswith("b'hello from alice'"), out
    # Then bob left (CAUSED_BY_LEAVE) and alice was alone.
    assert alice[-1].endswith(
        "reason=0x200 members=('#alice#localhost',) changed_member='#bob#localhost'>"
    ), out
    assert re.fullmatch(
        rf"{BURST} messages of 1024 B sent and read in \d+\.\d\d s: "
        r"[\d,]+ msg/s",
        lines[-1],
    ), out


@pytest.mark.timeout(60)
def test_demo_never_waits_on_an_order_the_daemon_does_not_promise():
    for i in range(RUNS):
        port = free_port()
        proc = run_demo(port, one_cpu=i % 2 == 0)
        assert proc.returncode == 0, f"run {i}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
        assert proc.stderr == "", proc.stderr
        check_output(proc.stdout, port)


def test_demo_rejects_a_port_outside_spreads_range():
    proc = subprocess.run(
        [sys.executable, "-m", "spread.demo", "--port", "40000"],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert proc.returncode == 2
    assert "--port: expected a port from 1 to 32767, not '40000'" in proc.stderr
