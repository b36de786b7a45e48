"""Backend selection: the one that loaded is the one asked for, and it
exports the whole contract."""

import os
import subprocess
import sys

import spread
from spread import _backend


def test_the_backend_under_test_really_loaded():
    wanted = os.environ.get("SPREAD_BACKEND")
    assert spread.backend == (wanted or "cython")
    assert _backend.core.__name__ == _backend.MODULES[spread.backend]
    for name in _backend.PUBLIC_API:
        assert hasattr(_backend.core, name), name


def test_unknown_backend_is_refused():
    env = dict(os.environ, SPREAD_BACKEND="fortran")
    proc = subprocess.run([sys.executable, "-c", "import spread"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "SPREAD_BACKEND must be one of" in proc.stderr
