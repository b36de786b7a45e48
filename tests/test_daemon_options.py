"""The embedded daemon's options and its unix socket: it never takes over or
removes a live daemon's socket, picks a free port on --port 0, resolves host
names, refuses bad options clearly, and the helpers take every option."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import spread
import spread.testing
from spread.daemon import Daemon

pytestmark = pytest.mark.timeout(30)


def run_cli(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """The command line daemon, run to its end (for options it must refuse)."""
    return subprocess.run(
        [sys.executable, "-m", "spread.daemon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def test_a_live_daemons_socket_is_not_taken_over():
    with spread.testing.EmbeddedDaemon() as first:
        path = f"/tmp/{first.port}"
        out = run_cli("--port", str(first.port), "--no-tcp")
        assert out.returncode == 1
        assert f"a daemon is already listening on {path}" in out.stderr
        assert answers(path)
        with spread.connect(first.unix_address, "still") as m:
            assert m.private_group == "#still#localhost"


def test_a_stale_socket_file_is_replaced():
    port = spread.testing.free_port()
    path = f"/tmp/{port}"
    # A socket file that nobody listens on: what a killed daemon leaves.
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    try:
        assert not answers(path)
        with Daemon(port, tcp=False) as d:
            with spread.connect(d.unix_address, "fresh") as m:
                assert m.private_group == "#fresh#localhost"
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    port = spread.testing.free_port()
    path = f"/tmp/{port}"
    with open(path, "w") as f:
        f.write("not a socket")
    try:
        with pytest.raises(OSError, match="exists and is not a socket"):
            Daemon(port, tcp=False)
        with open(path) as f:
            assert f.read() == "not a socket"
    finally:
        os.unlink(path)


def test_a_daemon_removes_only_the_socket_it_bound():
    port = spread.testing.free_port()
    path = f"/tmp/{port}"
    first = Daemon(port, tcp=False).start()
    try:
        os.unlink(path)  # someone removed it; a second daemon binds the path anew
        with Daemon(port, tcp=False) as second:
            first.stop()
            assert os.path.exists(path) and answers(path)
            with spread.connect(second.unix_address, "second") as m:
                assert m.private_group
    finally:
        first.stop()
    assert not os.path.exists(path)


def test_nothing_to_listen_on_is_refused():
    out = run_cli("--no-tcp", "--no-unix-socket")
    assert out.returncode == 2 and "nothing to listen on" in out.stderr
    with pytest.raises(ValueError, match="at least one"):
        Daemon(spread.testing.free_port(), tcp=False, unix_socket=False)


def test_port_zero_picks_a_free_port_and_says_which():
    proc = subprocess.Popen(
        [sys.executable, "-m", "spread.daemon", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        port = int(spread.testing.READY_PORT.search(line).group(1))
        assert 0 < port <= 32767
        assert f"{port}@127.0.0.1" in line and f"/tmp/{port}" in line
        with spread.connect(f"{port}@127.0.0.1", "tcp0") as m:
            assert m.private_group == "#tcp0#localhost"
        with spread.connect(str(port), "unix0") as m:
            assert m.private_group == "#unix0#localhost"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()


@pytest.mark.parametrize("tcp", [True, False])
def test_port_zero_in_process(tcp):
    with Daemon(0, tcp=tcp) as d:
        assert 0 < d.port <= 32767 and os.path.exists(f"/tmp/{d.port}")
        with spread.connect(d.address if tcp else d.unix_address, "p0") as m:
            assert m.private_group == "#p0#localhost"


def test_host_names_are_resolved():
    with Daemon(0, host="localhost", unix_socket=False) as d:
        with spread.connect(f"{d.port}@127.0.0.1", "byname") as m:
            assert m.private_group == "#byname#localhost"


def test_a_host_that_does_not_resolve_is_a_clear_error():
    with pytest.raises(OSError, match="cannot resolve host 'no-such-host.invalid'"):
        Daemon(0, host="no-such-host.invalid")
    out = run_cli("--port", "0", "--host", "no-such-host.invalid")
    assert out.returncode == 1 and "cannot resolve host" in out.stderr


def test_every_command_line_option_has_help():
    from spread.daemon.__main__ import build_parser

    actions = [a for a in build_parser()._actions if a.dest != "help"]
    assert {a.dest for a in actions} >= {
        "port",
        "host",
        "name",
        "max_session_messages",
        "max_session_bytes",
        "no_tcp",
        "no_unix_socket",
        "log_level",
    }
    assert [a.dest for a in actions if not a.help] == []


def test_unknown_options_are_type_errors(spread_daemon_factory):
    with pytest.raises(TypeError, match="bogus"):
        spread.testing.EmbeddedDaemon(bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        Daemon(0, bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        spread_daemon_factory(bogus=1)
    # A backend's NativeDaemon takes exactly the option list, no more, no less.
    from spread import _daemon_options as o

    for options in ({**o.DEFAULTS, "bogus": 1}, {k: o.DEFAULTS[k] for k in o.OPTION_NAMES[1:]}):
        with pytest.raises(TypeError, match="the options are port, host"):
            spread.daemon.NativeDaemon(options, -1)


def test_factory_takes_a_port_and_every_option(spread_daemon_factory):
    port = spread.testing.free_port()
    d = spread_daemon_factory(
        port=port,
        name="fact",
        max_session_messages=10,
        max_session_bytes=100000,
        unix_socket=False,
        log_level="debug",
        host="127.0.0.1",
        tcp=True,
    )
    assert d.port == port and not os.path.exists(f"/tmp/{port}")
    with spread.connect(d.address, "f") as m:
        assert m.private_group == "#f#fact"


def test_embedded_daemon_reads_the_picked_port_from_the_ready_line():
    with spread.testing.EmbeddedDaemon(0, tcp=False) as d:
        assert d.port and os.path.exists(f"/tmp/{d.port}")
        with spread.connect(d.unix_address) as m:
            assert m.private_group


def test_session_fixture_takes_a_port(tmp_path):
    port = spread.testing.free_port()
    (tmp_path / "test_port.py").write_text(
        f"def test_port(spread_daemon):\n    assert spread_daemon.port == {port}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SPREAD_TEST_DAEMON"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--spread-daemon-port={port}",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_daemon_defaults_are_written_once():
    """spread/_daemon_options.py holds the defaults: the Daemon class and the
    command line take them from it; both backends' NativeDaemon have none of
    their own; C's one copy (daemon.h, what spd_default_config gives) agrees."""
    import inspect

    from spread import _daemon_options as o
    from spread.daemon.__main__ import build_parser

    expected = o.DEFAULTS
    assert o.OPTION_NAMES == tuple(expected) and "port" in expected
    assert spread.testing.OPTIONS == o.OPTION_NAMES[1:]
    daemon = {k: p.default for k, p in inspect.signature(Daemon).parameters.items()}
    assert daemon == expected
    cli = vars(build_parser().parse_args([]))
    # The command line's flags: every option, but tcp and unix_socket as
    # --no-tcp and --no-unix-socket, and its own log level.
    assert cli == {
        **{k: v for k, v in expected.items() if k not in ("tcp", "unix_socket", "log_level")},
        "no_unix_socket": False,
        "no_tcp": False,
        "log_level": o.COMMAND_LOG_LEVEL,
    }
    assert o.DEFAULT_PORT == spread.DEFAULT_SPREAD_PORT
    from spread import _core

    backends = [_core]
    try:
        import spread._cffi_core as cffi_core

        backends.append(cffi_core)
    except ImportError:
        pass
    levels = dict(zip(o.LOG_LEVEL_NAMES, range(4)))
    for backend in backends:
        try:
            params = inspect.signature(backend.NativeDaemon).parameters.values()
        except ValueError:  # a Cython class without a signature: nothing to compare
            params = []
        assert all(p.default is inspect.Parameter.empty for p in params), backend
        c = backend.NativeDaemon.c_defaults()
        assert c == {
            **{k: v for k, v in expected.items() if k not in ("control", "log_level")},
            "log_level": levels[o.COMMAND_LOG_LEVEL],  # the stand-alone program's
        }, backend
