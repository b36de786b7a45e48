"""Microbenchmarks of the per-call cost, against the embedded daemon:
    pytest bench/
They are not part of the test run (tests/ is the test suite)."""

import uuid

import pytest

import spread
from spread.testing import EmbeddedDaemon

SIZES = [100, 1024, 10240]


@pytest.fixture(scope="session")
def daemon():
    # A generous slow-reader limit: a benchmark round may queue many messages.
    with EmbeddedDaemon(max_session_messages=1_000_000, log_level="error") as d:
        yield d


@pytest.fixture
def mbox(daemon):
    m = spread.connect(daemon.unix_address, membership=0)
    yield m
    m.disconnect()


@pytest.fixture
def group():
    return "b" + uuid.uuid4().hex[:12]
