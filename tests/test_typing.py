"""The public API as a type checker sees it: mypy --strict, run on the
installed package from a scratch directory, accepts tests/typing/good.py,
reports exactly the mistakes marked in tests/typing/bad.py, and sees every
name of spread.__all__ with a type (never Any). The stubs are also held
against the runtime classes of both backends, and good.py is run."""

from __future__ import annotations

import ast
import collections
import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import spread

pytest.importorskip("mypy.api", reason="mypy is in the test extras")

SAMPLES = Path(__file__).resolve().parent / "typing"
PACKAGE = Path(spread.__file__).resolve().parent
STUBS = ("__init__.pyi", "_core.pyi", "_constants.pyi", "_backend.pyi")
MYPY_TIMEOUT = 170
LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+): (?P<severity>error|note): "
    r"(?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
MARK = re.compile(r"#\s*E:\s*(?P<codes>[a-z0-9 -]+)$")


def _names_program() -> str:
    """Every name of spread.__all__ used once, in a file where an expression
    typed Any is an error."""
    lines = ["# mypy: disallow-any-expr", "import spread", ""]
    lines += [f"print(spread.{name})" for name in spread.__all__]
    return "\n".join(lines) + "\n"


def _search_path_env() -> dict[str, str]:
    """The environment for mypy: it finds spread as installed. When the
    imported package is not in site-packages (run from a source checkout on
    PYTHONPATH, or an editable install), mypy is pointed at its parent."""
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if PACKAGE.parent not in installed:
        env["MYPYPATH"] = str(PACKAGE.parent)
    return env


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory) -> dict[str, list[tuple[int, str | None, str]]]:
    """One mypy --strict run over the samples, copied into a scratch
    directory that is also the working directory (the source tree is never
    looked at, nor written to): file name -> [(line, code, message)]."""
    work = tmp_path_factory.mktemp("typing")
    for name in ("good.py", "bad.py"):
        shutil.copy(SAMPLES / name, work / name)
    (work / "names.py").write_text(_names_program())
    config = work / "mypy.ini"
    config.write_text("[mypy]\n")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        str(config),
        "--cache-dir",
        str(work / "cache"),
        "--no-pretty",
        "--show-error-codes",
        "--hide-error-context",
        "--no-color-output",
        "--no-error-summary",
        "good.py",
        "bad.py",
        "names.py",
    ]
    done = subprocess.run(
        command,
        cwd=work,
        env=_search_path_env(),
        capture_output=True,
        text=True,
        timeout=MYPY_TIMEOUT,
    )
    assert done.returncode in (0, 1), f"mypy failed:\n{done.stdout}\n{done.stderr}"
    found: dict[str, list[tuple[int, str | None, str]]] = collections.defaultdict(list)
    for text in done.stdout.splitlines():
        m = LINE.match(text)
        assert m, f"unexpected mypy output: {text!r}\n{done.stdout}"
        if m["severity"] == "error":
            found[Path(m["file"]).name].append((int(m["line"]), m["code"], m["message"]))
    return found


def test_the_installed_package_ships_its_stubs():
    for name in ("py.typed", *STUBS):
        assert (PACKAGE / name).is_file(), f"{name} is not installed beside {spread.__file__}"


@pytest.mark.timeout(180)
def test_every_public_name_is_typed(mypy_errors):
    assert mypy_errors["names.py"] == []


@pytest.mark.timeout(180)
def test_the_typed_sample_program_checks(mypy_errors):
    assert mypy_errors["good.py"] == []


@pytest.mark.timeout(180)
def test_mistakes_are_reported_where_marked(mypy_errors):
    expected = collections.Counter()
    for number, text in enumerate((SAMPLES / "bad.py").read_text().splitlines(), 1):
        m = MARK.search(text)
        if m:
            expected.update((number, code) for code in m["codes"].split())
    assert len(expected) >= 20
    got = collections.Counter((line, code) for line, code, _ in mypy_errors["bad.py"])
    messages = "\n".join(
        f"{line}: [{code}] {message}" for line, code, message in mypy_errors["bad.py"]
    )
    assert got == expected, f"mypy reported:\n{messages}"


def test_the_names_mypy_sees_are_the_names_spread_exports():
    stub = ast.parse((PACKAGE / "__init__.pyi").read_text())
    constants = ast.parse((PACKAGE / "_constants.pyi").read_text())
    names = set()
    for node in stub.body:
        if isinstance(node, ast.ImportFrom):
            if [a.name for a in node.names] == ["*"]:
                assert node.module == "_constants"
                names |= set(ast.literal_eval(_assigned(constants, "__all__")))
            names |= {a.name for a in node.names if a.asname == a.name}
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    assert names - {"__version__"} == set(spread.__all__)
    assert all(hasattr(spread, name) for name in names)


def _assigned(module: ast.Module, name: str) -> ast.expr:
    for node in module.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            name
        ]:
            return node.value
    raise AssertionError(f"{name} is not assigned")


def _stub_classes() -> dict[str, set[str]]:
    """The classes of _core.pyi and the attributes it gives each."""
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    return {
        node.name: {
            item.name if isinstance(item, ast.FunctionDef) else item.target.id
            for item in node.body
            if isinstance(item, (ast.FunctionDef, ast.AnnAssign))
        }
        for node in tree.body
        if isinstance(node, ast.ClassDef) and "TypedDict" not in ast.unparse(node)
    }


@pytest.mark.parametrize("module", ["spread._core", "spread._cffi_core"])
def test_the_stubs_describe_each_backend(module):
    core = pytest.importorskip(module)
    classes = _stub_classes()
    assert {"Mailbox", "RegularMsg", "MembershipMsg", "GroupId", "ThreadedReceiver"} <= set(classes)
    for cls, attributes in classes.items():
        # A class the Python layer defines (spread/_mailbox.py, _messages.py,
        # _receiver.py) is checked as `import spread` has it, over the
        # backend that loaded (the suite runs once per backend).
        runtime = getattr(core, cls, None) or getattr(spread, cls)
        public = {n for n in dir(runtime) if not n.startswith("_") or n in attributes}
        if cls in ("RegularMsg", "MembershipMsg"):  # cffi's slots are public attributes
            public |= set(getattr(runtime, "__slots__", ()))
        assert attributes <= public | {"__init__"}, f"{module}.{cls} lacks some"
        assert {n for n in public if not n.startswith("_")} <= attributes, (
            f"the stub of {cls} lacks some of {module}.{cls}'s"
        )


def _good():
    spec = importlib.util.spec_from_file_location("typing_good", SAMPLES / "good.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
def test_the_typed_sample_program_runs(spread_daemon):
    good = _good()
    good.exchange(spread_daemon.address)
    assert good.connect_either(spread_daemon.address, False) > 0
    assert good.connect_either(spread_daemon.address, True) > 0
    assert good.errors(spread_daemon.address) is spread.ConnectionClosed
    assert spread.__version__ in good.module_facts()
