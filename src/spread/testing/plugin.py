"""pytest plugin (registered as ``spread``): fixtures backed by the
embedded daemon, or by a real daemon named in ``SPREAD_TEST_DAEMON``.

- ``spread_daemon``: one daemon for the whole session, default options.
- ``spread_daemon_factory``: ``factory(**options)`` starts a daemon with
  custom options (e.g. ``max_session_messages=50``), stopped after the test.
- ``spread_mailbox_factory``: ``factory(daemon=None, **connect_kwargs)``
  connects to a daemon (default: ``spread_daemon``) and disconnects after
  the test.
"""

from __future__ import annotations

import os

import pytest

from . import EmbeddedDaemon, ExternalDaemon


def _external():
    address = os.environ.get("SPREAD_TEST_DAEMON")
    return ExternalDaemon(address) if address else None


@pytest.fixture(scope="session")
def spread_daemon():
    """The session's daemon (embedded unless SPREAD_TEST_DAEMON is set)."""
    external = _external()
    if external is not None:
        yield external
        return
    with EmbeddedDaemon() as daemon:
        yield daemon


@pytest.fixture
def spread_daemon_factory():
    """Starts embedded daemons with custom options for one test."""
    started = []

    def factory(**options):
        if _external() is not None and options:
            pytest.skip("custom daemon options need the embedded daemon")
        daemon = _external() or EmbeddedDaemon(**options)
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
