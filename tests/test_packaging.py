"""What installing takes and ships: a missing compiler is one line, the
wheel and sdist carry the LICENSE and no generated C, and python -m spread
says what is installed."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import spread

ROOT = Path(__file__).resolve().parents[1]
BUILD_PRODUCTS = ("build", "dist", "*.egg-info", "__pycache__", "_core.c", "*.so")


def source_copy(dest: Path) -> Path:
    """The project's files as a clone would have them (plus files not yet
    committed), without build products, in dest."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*BUILD_PRODUCTS, ".git"))
        return dest
    for name in names:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


# A whole wheel build (Cython, the native library, both extensions; under
# ASan in CI's sanitized run) on a shared, loaded machine: minutes, not seconds.
BUILD_SECONDS = 280


def pip_wheel(src: Path, out: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        env={**os.environ, **env},
    )


@pytest.mark.timeout(BUILD_SECONDS + 20)
def test_a_missing_compiler_fails_the_build_with_one_line(tmp_path):
    src = source_copy(tmp_path / "src")
    proc = pip_wheel(src, tmp_path / "dist", CC="/nonexistent/cc")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in out, out
    said = [line.strip() for line in out.splitlines() if "spread-client needs" in line]
    assert said == [
        "error: spread-client needs a C compiler to build its native library, and "
        "'/nonexistent/cc' (from $CC or Python's build settings) was not found: "
        "install gcc or clang (e.g. apt-get install gcc) or set CC to one"
    ], out
    assert not list((tmp_path / "dist").glob("*.whl"))


@pytest.mark.timeout(BUILD_SECONDS + 20)
def test_the_wheel_and_sdist_carry_the_license_and_no_generated_c(tmp_path):
    src = source_copy(tmp_path / "src")
    proc = pip_wheel(src, tmp_path / "dist")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("spread_client-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "MIT License" in z.read(license_file).decode()
    assert [n for n in names if n.endswith((".c", ".pyx", ".pxi"))] == []
    assert {"spread/_core.pyi", "spread/py.typed", "spread/libspread.pxd"} <= set(names)
    assert "spread/_cffi_core/__init__.py" in names and "spread/_cffi_core.py" not in names
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()

    # The sdist's file list, as setuptools wrote it for this build: what a
    # build from it needs (every header, the Cython sources), not the C that
    # Cython generated.
    sdist = set((src / "src/spread_client.egg-info/SOURCES.txt").read_text().split())
    assert "src/spread/_core.c" not in sdist
    found = [
        p.relative_to(src)
        for pattern in ("native/**/*.[ch]", "src/spread/*.pxi")
        for p in src.glob(pattern)
    ]
    needed = {p.as_posix() for p in found if "tests" not in p.parts}
    assert needed | {"LICENSE", "src/spread/_core.pyx", "src/spread/libspread.pxd"} <= sdist


def spread_info(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spread", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def test_python_m_spread_says_what_is_installed():
    proc = spread_info()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"spread-client {spread.__version__}"
    assert lines[1].startswith(f"backend: {spread.backend} ")
    library = os.environ.get("SPREAD_LIBRARY") if spread.backend == "cffi" else None
    assert lines[2].startswith(
        f"native library: external, SPREAD_LIBRARY={library}"
        if library
        else f"native library: ours, built into the {spread.backend} backend"
    )
    commands = [line.split()[:3] for line in lines if line.startswith("  python -m ")]
    assert commands == [["python", "-m", f"spread.{c}"] for c in ("demo", "daemon", "bench")]


def test_python_m_spread_names_an_external_library():
    # Our cffi module carries the Spread API too: a stand-in for another libspread.
    import spread._cffi_native as ours

    proc = spread_info(SPREAD_BACKEND="cffi", SPREAD_LIBRARY=ours.__file__)
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.splitlines()[2] == f"native library: external, SPREAD_LIBRARY={ours.__file__}"
    )


def test_python_m_spread_version_is_one_line():
    proc = spread_info("--version")
    assert (proc.returncode, proc.stdout) == (0, f"spread-client {spread.__version__}\n")


def test_the_version_is_written_once():
    from spread import _version

    assert spread.__version__ == _version.__version__
    try:
        installed = importlib.metadata.version("spread-client")
    except importlib.metadata.PackageNotFoundError:
        installed = None  # run from a source tree on PYTHONPATH
    assert installed in (None, _version.__version__)
    project = (ROOT / "pyproject.toml").read_text().split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project
    assert not [line for line in project.splitlines() if line.startswith("version")]
