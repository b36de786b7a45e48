"""Test helpers: an embedded daemon in a subprocess, and (in
``spread.testing.plugin``) pytest fixtures built on it.

Set ``SPREAD_TEST_DAEMON=<address>`` to point the fixtures at an external,
real Spread daemon instead (and ``SPREAD_TEST_DAEMON_PID`` to its process,
for pause() and resume()); :class:`ExternalDaemon` says which controls work
against it and which are embedded-only.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .._daemon_options import COMMAND_LOG_LEVEL, DEFAULT_HOST, OPTION_NAMES
from ..daemon import DaemonAddresses
from ..daemon._control import ControlChannel, DaemonControls, connect_control
from ._external import EMBEDDED_ONLY, ExternalDaemon

__all__ = ["EMBEDDED_ONLY", "EmbeddedDaemon", "ExternalDaemon", "free_port"]

READY_TIMEOUT = 10.0
# The daemon's options, as keyword arguments (the command line's, with "_").
OPTIONS = OPTION_NAMES[1:]  # all but port, EmbeddedDaemon's first argument
# The port in the ready line of either daemon build (Python or stand-alone C).
READY_PORT = re.compile(r"ready: \S+ on (?:port )?(\d+)")
READY_CONTROL = re.compile(r"; control (\S+)")


def check_options(options: dict, who: str) -> None:
    """TypeError for a keyword that is not a daemon option."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"{who}() got unknown daemon option(s) {', '.join(unknown)}; "
            f"the options are port, {', '.join(OPTIONS)}"
        )


def free_port() -> int:
    """A TCP port in the range Spread clients accept (0..32767), free on
    127.0.0.1, whose unix socket path /tmp/<port> is unused."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(10000, 32000)
        if os.path.exists(f"/tmp/{port}"):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port between 10000 and 32000")


class EmbeddedDaemon(DaemonAddresses, DaemonControls):
    """Runs ``python -m spread.daemon`` in a subprocess for the duration of a
    ``with`` block (or between start() and stop()).

    ``port``: None (the default) or 0 lets the daemon pick a free port, read
    back from its ready line into ``port``. Other options are those of the
    command line, as keyword arguments: ``host``, ``name``,
    ``max_session_messages``, ``max_session_bytes``, ``slow_reader_budget``,
    ``log_level``, ``control``, and ``tcp`` and ``unix_socket`` (bools). An
    unknown one is a TypeError.

    The controls (:class:`spread.daemon.DaemonControls`: figures, faults)
    go over the daemon's control channel: a unix socket in a private
    temporary directory unless ``control`` names one (``control_address``).
    """

    def __init__(self, port: int | None = None, **options):
        check_options(options, "EmbeddedDaemon")
        self._fixed_port = port or None
        self.port = port  # type: ignore[assignment]  # None until start() reads the ready line
        self.options = options
        self.process: subprocess.Popen | None = None
        self.log: list[str] = []
        self._log_thread: threading.Thread | None = None
        self.control_address: str | None = None
        self._channel: ControlChannel | None = None
        self._control_dir: tempfile.TemporaryDirectory | None = None

    @property
    def host(self) -> str:  # type: ignore[override]  # a plain attribute in Daemon
        return self.options.get("host", DEFAULT_HOST)

    def _command(self) -> list[str]:
        # SPREAD_DAEMON_COMMAND runs another build with the same options (the
        # stand-alone C daemon under sanitizers, in CI).
        base = shlex.split(os.environ.get("SPREAD_DAEMON_COMMAND", ""))
        port = self._fixed_port or 0
        cmd = (base or [sys.executable, "-m", "spread.daemon"]) + ["--port", str(port)]
        options = dict(self.options)
        if options.get("control") is None:
            self._control_dir = tempfile.TemporaryDirectory(prefix="spread-control-")
            options["control"] = os.path.join(self._control_dir.name, "control")
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if key == "unix_socket":
                if not value:
                    cmd.append("--no-unix-socket")
            elif key == "tcp":
                if not value:
                    cmd.append("--no-tcp")
            else:
                cmd += [flag, str(value)]
        if "log_level" not in self.options:
            cmd += ["--log-level", COMMAND_LOG_LEVEL]
        return cmd

    def start(self) -> EmbeddedDaemon:
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self._wait_ready()
        found = READY_PORT.search(line) if line is not None else None
        if found is None:
            if self.process.poll() is None:
                self.process.kill()
            err = self.process.stderr.read() if self.process.stderr else ""
            self.process.wait()
            self._cleanup_control()
            raise RuntimeError(f"embedded daemon did not start: {err.strip() or line!r}")
        self.port = int(found.group(1))
        control = READY_CONTROL.search(line or "")
        self.control_address = control.group(1) if control else None
        self._log_thread = threading.Thread(target=self._drain_log, daemon=True)
        self._log_thread.start()
        return self

    def _wait_ready(self) -> str | None:
        """The ready line, or None if the process ended first."""
        result: list[str] = []
        process = self.process
        assert process is not None and process.stdout is not None
        stdout = process.stdout

        def read():
            result.append(stdout.readline())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT)
        if not result or not result[0]:
            if process.poll() is None:
                process.kill()
            return None
        return result[0]

    def _drain_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))

    def wait_for_log(self, text: str, timeout: float = 10.0) -> bool:
        """Waits until a log line containing text appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.log)):
                return True
            time.sleep(0.01)
        return False

    def _control_channel(self) -> ControlChannel:
        if self._channel is None:
            if self.process is None or self.control_address is None:
                raise RuntimeError("the daemon is not running with a control channel")
            self._channel = connect_control(self.control_address)
        return self._channel

    def stop(self) -> None:
        """Stops the daemon; raises RuntimeError if it had failed (a crash, or
        a sanitizer report) rather than exiting cleanly."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is None:
            self._cleanup_control()
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_thread is not None:
            self._log_thread.join(READY_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        code = self.process.returncode
        self.process = None
        self._cleanup_control()
        if code != 0:
            tail = "\n".join(self.log[-40:])
            raise RuntimeError(f"embedded daemon exited with status {code}:\n{tail}")

    def _cleanup_control(self) -> None:
        if self._control_dir is not None:
            self._control_dir.cleanup()
            self._control_dir = None

    def __enter__(self) -> EmbeddedDaemon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
