"""Both backends offer the same public surface, and the constants are
listed once (spread/_names.py) and match what the Cython backend compiles."""

import re
from pathlib import Path

import pytest

from spread import _backend, _names

core = pytest.importorskip("spread._core")
cffi_core = pytest.importorskip("spread._cffi_core")

CLASSES = ["Mailbox", "RegularMsg", "MembershipMsg", "GroupId", "ThreadedReceiver",
           "NativeDaemon"]


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_both_backends_export_the_contract():
    for module in (core, cffi_core):
        missing = [n for n in _backend.PUBLIC_API if not hasattr(module, n)]
        assert missing == [], module.__name__


@pytest.mark.parametrize("name", CLASSES)
def test_classes_have_the_same_public_members(name):
    assert public(getattr(core, name)) == public(getattr(cffi_core, name))


def test_constants_agree():
    for n in _names.SP_CONSTANTS:
        assert getattr(core, n) == getattr(cffi_core, n), n


def test_constants_are_listed_once():
    pxi = Path(core.__file__).with_name("_constants.pxi")
    if not pxi.exists():
        pxi = Path(__file__).resolve().parents[1] / "src" / "spread" / "_constants.pxi"
    declared = tuple(re.findall(r"^        (\w+)$", pxi.read_text(), re.M))
    assert declared == _names.SP_CONSTANTS
