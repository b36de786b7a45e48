"""What installing takes and ships: a missing compiler is one line, the
wheel and sdist carry the LICENSE and no generated C, and python -m spread
says what is installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import spread

ROOT = Path(__file__).resolve().parents[1]
BUILD_PRODUCTS = ("build", "dist", "*.egg-info", "__pycache__", "_core.c", "*.so")
PYPROJECT = (ROOT / "pyproject.toml").read_text()
PY_CLASSIFIER = "Classifier: Programming Language :: Python :: 3."
# The CPythons the package declares (and CI tests: tools/find_pythons.py).
DECLARED_CPYTHONS = sorted(
    set(re.findall(r'"Programming Language :: Python :: (3\.\d+)"', PYPROJECT)),
    key=lambda v: int(v.split(".")[1]),
)
REQUIRES_PYTHON = re.search(r'^requires-python = "([^"]+)"', PYPROJECT, re.M).group(1)


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


@pytest.mark.slow  # (a pip build environment set up: 8-12 s; the same on every interpreter)
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


def built_dist(tmp_path: Path) -> Path:
    """A folder with the sdist and the wheel built from it: CI's own
    (SPREAD_TEST_DIST, made by `python -m build` in .ci/run), or else made
    here the same way from a copy of the source."""
    given = os.environ.get("SPREAD_TEST_DIST")
    if given:
        return Path(given)
    src = source_copy(tmp_path / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Building wheel from sdist" in proc.stdout + proc.stderr, proc.stderr
    return tmp_path / "dist"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_SECONDS + 20)
def test_the_sdist_builds_the_wheel_and_both_carry_what_they_must(tmp_path):
    dist = built_dist(tmp_path)
    (sdist,) = dist.glob("spread_client-*.tar.gz")
    (wheel,) = dist.glob("spread_client-*.whl")

    # The sdist: everything a build needs (every header the cffi build runs
    # through the preprocessor, every C and Cython source), the test vectors,
    # and no C that Cython generated.
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name and m.isfile()}
    assert "src/spread/_core.c" not in members
    assert not [m for m in members if m.endswith((".so", ".o", ".pyc"))]
    tracked = {
        p.relative_to(ROOT).as_posix()
        for pattern in (
            "native/**/*.[ch]",
            "src/spread/*.pyx",
            "src/spread/*.pxi",
            "tests/vectors/*",
        )
        for p in ROOT.glob(pattern)
        if "build" not in p.relative_to(ROOT).parts and p.name != "_core.c"
    }
    assert {p for p in tracked if p.startswith("tests/vectors/")}, "no test vectors found"
    missing = tracked - members
    assert not missing, f"missing from the sdist: {sorted(missing)}"
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in"} <= members
    # What the tests run beside the package, and the manual's source.
    for folder in ("tools", "bench", "docs"):
        wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*.py")}
        assert wanted and wanted <= members, (folder, sorted(wanted - members))

    # The wheel: compiled modules, stubs and typing marker, the licence, no sources.
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "MIT License" in z.read(license_file).decode()
    assert [n for n in names if n.endswith((".c", ".pyx", ".pxi"))] == []
    assert {"spread/_core.pyi", "spread/py.typed", "spread/libspread.pxd"} <= set(names)
    assert "spread/_cffi_core/__init__.py" in names and "spread/_cffi_core.py" not in names
    assert [n for n in names if n.startswith("spread/_cffi_native.")], names
    if sys.implementation.name == "cpython":
        assert [n for n in names if n.startswith("spread/_core.") and n.endswith(".so")], names
    lines = metadata.splitlines()
    assert "License-Expression: MIT" in lines
    assert "License-File: LICENSE" in lines
    assert f"Requires-Python: {REQUIRES_PYTHON}" in lines
    declared = {line.rsplit(" :: ", 1)[1] for line in lines if line.startswith(PY_CLASSIFIER)}
    assert declared >= set(DECLARED_CPYTHONS)


def test_this_interpreter_is_a_declared_one():
    assert DECLARED_CPYTHONS == ["3.10", "3.11", "3.12", "3.13"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name == "pypy":
        assert "Programming Language :: Python :: Implementation :: PyPy" in PYPROJECT
        assert sys.version_info >= (3, 9)
    else:
        assert version in DECLARED_CPYTHONS


def test_every_file_of_the_package_is_installed():
    # The suite runs against the installed package (CI: the wheel, from
    # outside the source folder): a module or stub that the wheel lacks
    # fails here by name, not as an ImportError somewhere else.
    installed = Path(spread.__file__).resolve().parent
    source = ROOT / "src" / "spread"
    if not source.is_dir():
        pytest.fail(f"no source tree at {source} to compare the installed package with")
    wanted = {
        p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".pyi", ".pxd", ".typed")
        and "__pycache__" not in p.parts
    }
    have = {p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file()}
    assert not wanted - have, f"not installed beside {spread.__file__}: {sorted(wanted - have)}"
    assert not [n for n in have if n.endswith((".c", ".pyx", ".pxi"))]


# The payload-recycling ring of the Cython backend (RING in _core.pyx): a
# payload only the ring still holds is refilled for the message RING places
# later, on the CPythons whose bytes layout and plain reference counts it
# relies on (README, "Which Pythons"). Elsewhere a new object is allocated
# before the old one is released, so the two never share an address.
RING = 2048
RECYCLING_CHECK = """
import sys
import spread

mbox = spread.connect(sys.argv[1], "recycle", membership=0)
group = mbox.private_group
ids = []
for i in range(RING + 8):
    mbox.multicast(spread.RELIABLE_MESS, group, bytes([i % 251]) * 100, 0)
    msg = mbox.receive()
    assert msg.message == bytes([i % 251]) * 100
    ids.append(id(msg.message))
    del msg
same = [ids[k] == ids[k - RING] for k in range(RING, RING + 8)]
assert len(set(same)) == 1, same
print("recycled" if same[0] else "allocated")
"""


def recycling_expected() -> bool:
    """Whether this interpreter recycles payloads: CPython 3.11 to 3.13 with
    the GIL (3.10's bytes objects and free-threaded reference counts differ)."""
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return (3, 11) <= sys.version_info[:2] < (3, 14) and not free_threaded


def test_payload_recycling_is_on_exactly_where_the_readme_says(spread_daemon):
    if sys.implementation.name != "cpython":
        # No Cython backend, and so no CPython internals, anywhere else.
        assert importlib.util.find_spec("spread._core") is None
        return
    proc = subprocess.run(
        [sys.executable, "-c", f"RING = {RING}\n{RECYCLING_CHECK}", spread_daemon.address],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPREAD_BACKEND": "cython"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["recycled" if recycling_expected() else "allocated"]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_audit_refuses_what_a_manylinux_wheel_must_not_need():
    problems = load_tool("check_wheel").problems
    good = {
        "pure": False,
        "overall_tag": "manylinux_2_34_x86_64",
        "versioned_symbols": {"libc.so.6": ["GLIBC_2.34"]},
        "external_libs": {},
    }
    assert problems(good) == []
    assert problems({**good, "external_libs": {"libssl.so.3": "/usr/lib/libssl.so.3"}}) == [
        "needs shared libraries from outside the wheel: libssl.so.3"
    ]
    assert problems({**good, "versioned_symbols": {"libstdc++.so.6": []}}) == [
        "links unexpected system libraries: libstdc++.so.6"
    ]
    assert problems({**good, "overall_tag": "linux_x86_64"}) == [
        "no manylinux tag fits it (auditwheel says 'linux_x86_64')"
    ]
    assert problems({**good, "pure": True}) == ["a pure wheel: the extensions are missing"]


def test_ci_finds_an_interpreter_for_every_declared_version_or_fails(tmp_path, monkeypatch):
    tool = load_tool("find_pythons")
    assert tool.declared_versions() == DECLARED_CPYTHONS
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name == "cpython":
        assert tool.runs_as(sys.executable, mine)
    assert not tool.runs_as(sys.executable, "3.99")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('classifiers = ["Programming Language :: Python :: 3.99"]\n')
    monkeypatch.setattr(tool, "declared_versions", lambda: ["3.99"])
    assert tool.main() == 1


def test_the_interpreter_benchmark_rows_compare_with_the_first_interpreter():
    tool = load_tool("bench_interpreters")

    def report(backend, py, c):
        median = lambda v: {"median": v}  # noqa: E731
        result = {"kind": "mcast", "size": 100, "summary": {"py": median(py), "c": median(c)}}
        return {"backend": backend, "results": {"mcast 100": result}}

    lines = tool.table(
        ["CPython", "PyPy"], [report("cython", 200.0, 400.0), report("cffi", 300.0, None)]
    )
    assert lines[0].split() == [
        "workload",
        "size",
        "B",
        "CPython",
        "Python/C",
        "PyPy",
        "Python/C",
        "/",
        "CPython",
    ]
    assert lines[2].split() == ["mcast", "[msg/s]", "100", "200", "0.50", "300", "—", "1.50"]


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
