"""Each fact once: the sp.h constants are listed in spread/_names.py alone;
_constants.pxi and _constants.pyi are generated from it by
tools/gen_constants.py and must be up to date; the error classes are keyed
by constant name."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spread
from spread import _errors, _names

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "tools" / "gen_constants.py"
PACKAGE = ROOT / "src" / "spread"

pytestmark = pytest.mark.skipif(
    not GENERATOR.is_file(), reason="tools/ is not beside the tests (not a source tree)"
)


def generator():
    spec = importlib.util.spec_from_file_location("gen_constants", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_files_are_up_to_date():
    for path, text in generator().outputs(PACKAGE).items():
        assert path.read_text() == text, f"{path.name} is stale: run python tools/gen_constants.py"


def test_check_says_stale_and_a_run_makes_it_current(tmp_path):
    shutil.copy(PACKAGE / "_names.py", tmp_path / "_names.py")

    def run(*args):
        return subprocess.run(
            [sys.executable, str(GENERATOR), "--package", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    missing = run("--check")
    assert missing.returncode == 1 and "_constants.pxi is stale" in missing.stderr
    assert not (tmp_path / "_constants.pxi").exists()
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert (tmp_path / "_constants.pyi").read_text() == (PACKAGE / "_constants.pyi").read_text()

    names = tmp_path / "_names.py"
    names.write_text(names.read_text().replace('"SAFE_MESS",', '"SAFE_MESS", "NEW_ONE",'))
    stale = run("--check")
    assert stale.returncode == 1
    assert "_constants.pyi is stale" in stale.stderr
    assert run().returncode == 0
    assert "        NEW_ONE\n" in (tmp_path / "_constants.pxi").read_text()
    assert "NEW_ONE: Final[int]\n" in (tmp_path / "_constants.pyi").read_text()


def test_the_generator_reads_the_names_the_package_has():
    assert generator().sp_constants(PACKAGE) == _names.SP_CONSTANTS


@pytest.mark.parametrize("module", ["spread._core", "spread._cffi_core"])
def test_error_classes_are_keyed_by_sp_h_names(module):
    core = pytest.importorskip(module)
    assert set(_errors._BY_NAME) <= set(_names.SP_CONSTANTS)
    for name, cls in _errors._BY_NAME.items():
        code = getattr(core, name)
        assert code < 0
        assert spread.error_class(code) is cls, name
    assert spread.error_class(spread.BUFFER_TOO_SHORT) is spread.SpreadError
    assert spread.error_class(-12345) is spread.SpreadError
    assert spread.error_class(spread.CONNECTION_CLOSED) is spread.ConnectionClosed
