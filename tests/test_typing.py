"""The public API as a type checker sees it: mypy --strict, run on the
installed package from a scratch directory, accepts tests/typing/good.py,
reports exactly the mistakes marked in tests/typing/bad.py, and sees every
name of spread.__all__ with a type (never Any). The stubs are also held
against the runtime classes: _core.pyi against both backends, the public
classes' stubs against spread's; and good.py is run."""

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
STUBS = (
    "__init__.pyi",
    "_core.pyi",
    "_constants.pyi",
    "_backend.pyi",
    "_mailbox.pyi",
    "_receiver.pyi",
    "_messages.pyi",
)
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
    assert {p.name for p in PACKAGE.glob("*.pyi")} == set(STUBS)


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


# The stubs of classes: the backend contract, and the public classes of the
# Python layer above it (module name -> the stub that describes it).
BACKEND_STUB = "_core.pyi"
PUBLIC_STUBS = {
    "spread._mailbox": "_mailbox.pyi",
    "spread._receiver": "_receiver.pyi",
    "spread._messages": "_messages.pyi",
}


def _parse(stub: str) -> ast.Module:
    return ast.parse((PACKAGE / stub).read_text())


def _class_nodes(stub: str) -> dict[str, ast.ClassDef]:
    """The classes a stub declares (TypedDicts, which are stub-only, left out)."""
    return {
        node.name: node
        for node in _parse(stub).body
        if isinstance(node, ast.ClassDef) and "TypedDict" not in ast.unparse(node)
    }


def _imports(stub: str) -> dict[str, str]:
    """Name -> the stub it is imported from, for a stub's relative imports."""
    return {
        a.asname or a.name: f"{node.module}.pyi"
        for node in _parse(stub).body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for a in node.names
    }


def _base_name(expr: ast.expr) -> str:
    """MailboxBase[AnyStr] -> MailboxBase; Generic[AnyStr] -> Generic."""
    if isinstance(expr, ast.Subscript):
        expr = expr.value
    return expr.attr if isinstance(expr, ast.Attribute) else expr.id


def _stub_bases(stub: str, cls: str) -> list[tuple[str, str]]:
    """The (stub, class) pairs a stub class derives from, other stubs' included."""
    imported = _imports(stub)
    found = []
    for base in _class_nodes(stub)[cls].bases:
        name = _base_name(base)
        if name in _class_nodes(stub):
            found.append((stub, name))
        elif name in imported and name in _class_nodes(imported[name]):
            found.append((imported[name], name))
    return found


def _stub_attributes(stub: str, cls: str) -> set[str]:
    """The attributes the stubs give a class, inherited ones counted."""
    own = {
        item.name if isinstance(item, ast.FunctionDef) else item.target.id
        for item in _class_nodes(stub)[cls].body
        if isinstance(item, (ast.FunctionDef, ast.AnnAssign))
    }
    for base_stub, base in _stub_bases(stub, cls):
        own |= _stub_attributes(base_stub, base)
    return own


def _check_class(stub: str, cls: str, runtime: type, where: str) -> None:
    """Both directions: every attribute the stubs give cls exists on runtime
    (its inherited ones counted), and every public attribute of runtime is in
    the stubs."""
    attributes = _stub_attributes(stub, cls)
    public = {n for n in dir(runtime) if not n.startswith("_") or n in attributes}
    public |= {n for n in getattr(runtime, "__slots__", ()) if not n.startswith("_")}
    assert attributes <= public | {"__init__"}, (
        f"{where} lacks {sorted(attributes - public - {'__init__'})} of {stub}'s {cls}"
    )
    assert {n for n in public if not n.startswith("_")} <= attributes, (
        f"{stub}'s {cls} lacks {sorted(n for n in public - attributes if not n.startswith('_'))}"
        f" of {where}"
    )


def _stub_functions(stub: str) -> set[str]:
    return {node.name for node in _parse(stub).body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("module", ["spread._core", "spread._cffi_core"])
def test_the_stubs_describe_each_backend(module):
    """_core.pyi is the backend contract: its classes and functions hold for
    each backend module, and it declares all of _backend.py's lists."""
    core = pytest.importorskip(module)
    classes = _class_nodes(BACKEND_STUB)
    assert {"MailboxBase", "ReceiverBase", "RegularMsg", "NativeDaemon"} <= set(classes)
    assert not {"Mailbox", "ThreadedReceiver", "GroupId", "MembershipMsg"} & set(classes)
    for cls in classes:
        _check_class(BACKEND_STUB, cls, getattr(core, cls), f"{module}.{cls}")
    declared = set(classes) | _stub_functions(BACKEND_STUB)
    declared |= {
        node.target.id for node in _parse(BACKEND_STUB).body if isinstance(node, ast.AnnAssign)
    }
    from spread import _backend

    assert set(_backend.BACKEND_API + _backend.INTERNAL_API) <= declared
    assert all(hasattr(core, name) for name in declared), (
        f"{module} lacks {sorted(n for n in declared if not hasattr(core, n))}"
    )
    constants = ast.literal_eval(_assigned(_parse("_constants.pyi"), "__all__"))
    assert all(hasattr(core, name) for name in constants)  # _core.pyi star-imports them


@pytest.mark.parametrize("module", sorted(PUBLIC_STUBS))
def test_the_stubs_describe_the_public_classes(module):
    """The Python layer's stubs hold for spread's classes (on the backend in
    use: they subclass its classes), members inherited from _core.pyi's
    classes counted; each stub base is a runtime base."""
    stub = PUBLIC_STUBS[module]
    classes = _class_nodes(stub)
    assert classes
    runtime_module = importlib.import_module(module)
    for cls in classes:
        runtime = getattr(runtime_module, cls)
        assert getattr(spread, cls) is runtime, f"spread.{cls} is not {module}.{cls}"
        _check_class(stub, cls, runtime, f"spread.{cls}")
        for base_stub, base in _stub_bases(stub, cls):
            base_module = (
                spread._backend.core
                if base_stub == BACKEND_STUB
                else importlib.import_module({v: k for k, v in PUBLIC_STUBS.items()}[base_stub])
            )
            assert issubclass(runtime, getattr(base_module, base)), (
                f"spread.{cls} is not a subclass of {base_module.__name__}.{base}"
            )


def test_every_public_class_has_its_stub():
    described = set().union(*(_class_nodes(stub) for stub in PUBLIC_STUBS.values()))
    assert described == {"Mailbox", "ThreadedReceiver", "GroupId", "MembershipMsg"}


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
