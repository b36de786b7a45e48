"""Both backends offer the same contract, the Python layer above them
keeps the layering rule, and the constants are listed once
(spread/_names.py) and match what the Cython backend compiles."""

import re
from pathlib import Path

import pytest

import spread
from spread import _args, _backend, _ends, _mailbox, _messages, _names

core = pytest.importorskip("spread._core")
cffi_core = pytest.importorskip("spread._cffi_core")

CLASSES = ["MailboxBase", "ReceiverBase", "RegularMsg", "NativeDaemon"]

# The layering rule: the public classes subclass the backend's and never
# stand in front of a hot method (each would cost a Python call per message).
HOT = {
    "Mailbox": {"multicast", "multigroup_multicast", "receive", "poll", "fileno"},
    "ThreadedReceiver": {"get", "get_nowait", "get_batch", "__iter__", "__next__", "fileno"},
}


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_both_backends_export_the_contract():
    for module in (core, cffi_core):
        missing = [
            n for n in _backend.BACKEND_API + _backend.INTERNAL_API if not hasattr(module, n)
        ]
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


@pytest.mark.parametrize("name", sorted(HOT))
def test_the_python_layer_never_wraps_a_hot_method(name):
    cls = getattr(spread, name)
    base = cls.__mro__[1]
    assert base.__module__.startswith(_backend.core.__name__)
    assert cls.__dict__.get("__slots__") == ()
    assert not HOT[name] & set(cls.__dict__), f"{name} overrides a hot method"
    for method in HOT[name]:
        assert getattr(cls, method) is getattr(base, method)


def test_the_python_layers_copies_of_sp_h_numbers_are_right():
    copies = {
        _messages: [
            "REG_MEMB_MESS",
            "TRANSITION_MESS",
            "CAUSED_BY_JOIN",
            "CAUSED_BY_LEAVE",
            "CAUSED_BY_DISCONNECT",
            "CAUSED_BY_NETWORK",
        ],
        _ends: ["CONNECTION_CLOSED", "ILLEGAL_SESSION"],
        _mailbox: ["ACCEPT_SESSION"],
        _args: [
            "ILLEGAL_SPREAD",
            "COULD_NOT_CONNECT",
            "CONNECTION_CLOSED",
            "ILLEGAL_SERVICE",
            "ILLEGAL_GROUP",
            "MESSAGE_TOO_LONG",
            "MAX_PRIVATE_NAME",
            "LOW_PRIORITY",
            "HIGH_PRIORITY",
        ],
    }
    for module in (core, cffi_core):
        for holder, names in copies.items():
            for n in names:
                assert getattr(holder, n) == getattr(module, n), (holder.__name__, n)
    lib = cffi_core.lib
    for n in ("SPR_RUNNING", "SPR_CLOSED", "SPR_FAILED", "SPR_OVERFLOWED"):
        assert getattr(_ends, n) == getattr(lib, n), n
    assert _args.MAX_BODY == lib.SPX_MAX_SAFE_BODY
    for n in ("SPX_TIMED_OUT", "SPX_NOT_SPREAD"):
        assert getattr(_args, n) == getattr(lib, n), n
