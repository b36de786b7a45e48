"""The repository carries what its tests need: a fresh clone with nothing
beside it runs the whole suite (the golden vectors are in tests/vectors/)."""

from __future__ import annotations

import json
from pathlib import Path

import vectors

HERE = Path(__file__).resolve().parent
# The vectors the suite replays; each recorded from a real Spread daemon or
# written from SPEC.md (synthetic_*).
EXPECTED = {
    "connect_accept_membership",
    "join_leave_self",
    "membership_join_leave_disconnect",
    "multicast_service_types",
    "reject_version",
    "synthetic_network_membership",
    "synthetic_transitional",
    "synthetic_big_endian_membership",
    "unix_socket_client",
}


def test_vectors_present():
    names = set(vectors.all_names())
    assert vectors.VECTORS == HERE / "vectors" or vectors.VECTORS.is_dir()
    assert EXPECTED <= names, f"missing vectors: {sorted(EXPECTED - names)}"
    for name in EXPECTED:
        assert json.loads((vectors.VECTORS / f"{name}.json").read_text())["records"]


def test_tests_read_nothing_outside_the_repository():
    outside = ("..", "shared")  # the team's folder beside the clone, which users lack
    for path in HERE.glob("*.py"):
        text = path.read_text()
        as_path = f'"{outside[1]}" / '  # the pathlib spelling
        assert "/".join(outside) not in text and as_path not in text, path.name
