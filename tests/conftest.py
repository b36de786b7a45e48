import signal
import sys
from pathlib import Path

# Test helpers (vectors.py, ...) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # A suite started with SIGINT ignored (by a shell's `&` without job
    # control, or nohup) could not test Ctrl-C: Python keeps an inherited
    # SIG_IGN, and so do the interpreters the tests start. Take it back.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # CI (.ci/run) runs the slow tests once, on its main interpreter with
    # nothing else running, and `-m "not slow"` on every other interpreter
    # and build, two runs at a time: a test of many seconds, or one whose
    # timing bound needs the machine to itself (a full-rate flood), is slow.
    config.addinivalue_line(
        "markers",
        "slow: a stress scenario, a timing bound under full load, or a whole build; "
        "deselect with -m 'not slow' for a quick run",
    )
