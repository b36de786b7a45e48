import sys
from pathlib import Path

# Test helpers (vectors.py, ...) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # CI (.ci/run) runs the slow tests once, on its main interpreter, and
    # `-m "not slow"` on every other interpreter and build.
    config.addinivalue_line(
        "markers",
        "slow: a stress scenario or a whole build of many seconds; "
        "deselect with -m 'not slow' for a quick run",
    )
