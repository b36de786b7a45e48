"""Finds an interpreter for every CPython version the package declares.

    python tools/find_pythons.py

The versions are read from pyproject.toml's classifiers
("Programming Language :: Python :: 3.X"), so the list CI tests is the one
users see. Each is looked for under pyenv's versions (PYENV_ROOT, ~/.pyenv,
/root/.pyenv), then as pythonX.Y on PATH, and is kept only if it runs and
says it is CPython X.Y (a pyenv shim of a version that is not installed
does not). Prints "X.Y PATH" a line; a version with no interpreter is a line
on stderr and exit status 1: CI fails rather than test fewer versions.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = re.compile(r'"Programming Language :: Python :: (3\.\d+)"')
PROBE = "import platform, sys; print(platform.python_implementation(), *sys.version_info[:2])"


def declared_versions(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The CPython versions of the classifiers, oldest first."""
    found = set(CLASSIFIER.findall(pyproject.read_text()))
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def candidates(version: str) -> list[str]:
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    found = []
    for root in filter(None, roots):
        found += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    on_path = shutil.which(f"python{version}")
    return [*found, *([on_path] if on_path else [])]


def runs_as(python: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", PROBE], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == ["CPython", *version.split(".")]


def find(version: str) -> str | None:
    return next((p for p in candidates(version) if runs_as(p, version)), None)


def main() -> int:
    versions = declared_versions()
    if not versions:
        print("pyproject.toml declares no Python 3.X classifier", file=sys.stderr)
        return 1
    missing = []
    for version in versions:
        python = find(version)
        if python is None:
            missing.append(version)
        else:
            print(version, python)
    for version in missing:
        print(
            f"no CPython {version} interpreter found (pyenv or python{version} on PATH)",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
