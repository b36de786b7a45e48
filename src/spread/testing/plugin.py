"""pytest plugin (registered as ``spread``): fixtures backed by the
embedded daemon, or by a real daemon named in ``SPREAD_TEST_DAEMON``.

- ``spread_daemon``: one daemon for the whole session, default options, on
  a free port or on ``--spread-daemon-port`` (ini: ``spread_daemon_port``).
- ``spread_daemon_factory``: ``factory(port=None, *, in_process=False,
  **options)`` starts a daemon with custom options (e.g.
  ``max_session_messages=50``, ``slow_reader_budget=0``; any option of
  :class:`spread.testing.EmbeddedDaemon`), stopped after the test. It has
  the test-bench controls (:class:`spread.daemon.DaemonControls`: figures,
  kills, pauses); ``in_process=True`` runs it in a thread of this process
  (:class:`spread.daemon.Daemon`) instead of a subprocess.
- ``spread_network``: ``(daemon, remote)``, an embedded daemon and one
  simulated remote daemon of it, ``"remote"`` (``daemon.partition(remote)``,
  ``remote.member("bob").join("chat")``, ...: the simulated network of
  :class:`spread.daemon.DaemonControls`).
- Against a real daemon (``SPREAD_TEST_DAEMON``, and ``SPREAD_TEST_DAEMON_PID``
  for pause/resume) the daemons are :class:`spread.testing.ExternalDaemon`:
  drop_session(), kill_session() (mailboxes of this process), pause() and
  resume() work; the other controls raise ControlError naming themselves.
- ``spread_mailbox_factory``: ``factory(daemon=None, **connect_kwargs)``
  connects to a daemon (default: ``spread_daemon``) and disconnects after
  the test.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import pytest

from . import EmbeddedDaemon, ExternalDaemon


def pytest_addoption(parser):
    text = "port of the spread_daemon fixture's embedded daemon (default: a free one)"
    parser.addoption("--spread-daemon-port", type=int, default=None, help=text)
    parser.addini("spread_daemon_port", text)


def _external():
    address = os.environ.get("SPREAD_TEST_DAEMON")
    pid = os.environ.get("SPREAD_TEST_DAEMON_PID")
    return ExternalDaemon(address, int(pid) if pid else None) if address else None


def _session_port(config) -> int | None:
    port = config.getoption("--spread-daemon-port")
    if port is None:
        value = config.getini("spread_daemon_port")
        port = int(value) if value else None
    return port


@pytest.fixture(scope="session")
def spread_daemon(pytestconfig):
    """The session's daemon (embedded unless SPREAD_TEST_DAEMON is set)."""
    external = _external()
    if external is not None:
        yield external
        return
    with EmbeddedDaemon(_session_port(pytestconfig)) as daemon:
        yield daemon


@pytest.fixture
def spread_daemon_factory():
    """Starts embedded daemons with custom options for one test."""
    started: list = []

    def factory(port: int | None = None, *, in_process: bool = False, **options):
        embedded = EmbeddedDaemon(port, **options)  # a bad option is a TypeError, even here
        external = _external()
        if external is not None and (options or port is not None or in_process):
            pytest.skip("a port or custom daemon options need the embedded daemon")
        if in_process and external is None:
            from ..daemon import Daemon

            in_thread = Daemon(port or 0, **options)
            started.append(in_thread.start())
            return in_thread
        daemon = external or embedded
        started.append(daemon.start())
        return daemon

    yield factory
    for daemon in reversed(started):
        daemon.stop()


@pytest.fixture
def spread_mailbox_factory(spread_daemon):
    """Connects mailboxes that are disconnected when the test ends."""
    import spread

    opened = []

    def factory(daemon=None, **kwargs):
        target = daemon if daemon is not None else spread_daemon
        mbox = spread.connect(target.address, **kwargs)
        opened.append(mbox)
        return mbox

    yield factory
    for mbox in opened:
        mbox.disconnect()


class SpreadNetwork(NamedTuple):
    """What ``spread_network`` yields: an embedded daemon, and one simulated
    remote daemon of it (``"remote"``, connected)."""

    daemon: Any
    remote: Any


@pytest.fixture
def spread_network(spread_daemon_factory):
    """An embedded daemon with a remote side: ``(daemon, remote)``, the
    remote daemon "remote" connected (members ``#name#remote``); skipped
    against a real daemon (SPREAD_TEST_DAEMON)."""
    daemon = spread_daemon_factory()
    if not daemon.embedded:
        pytest.skip("the simulated network needs the embedded daemon")
    return SpreadNetwork(daemon, daemon.add_remote_daemon("remote"))
