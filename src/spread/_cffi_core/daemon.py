"""The embedded daemon (native/daemon) for spread.daemon: sockets bound on
construction, served without the GIL (cffi releases it around spd_run)."""

from __future__ import annotations

from .._daemon_options import DEFAULT_MAX_SESSION_BYTES, check_daemon_options
from .library import ffi, lib

__all__ = ["LOG_LEVELS", "NativeDaemon"]

LOG_LEVELS = {
    "quiet": lib.SPD_LOG_QUIET,
    "error": lib.SPD_LOG_ERROR,
    "info": lib.SPD_LOG_INFO,
    "debug": lib.SPD_LOG_DEBUG,
}


class NativeDaemon:
    """Sockets bound on construction; run() serves until stop_fd is readable."""

    def __init__(
        self,
        port,
        host="127.0.0.1",
        name="localhost",
        max_session_messages=1000,
        tcp=True,
        unix_socket=True,
        log_level="error",
        max_session_bytes=DEFAULT_MAX_SESSION_BYTES,
    ):
        check_daemon_options(
            port, max_session_messages, max_session_bytes, tcp, unix_socket, log_level
        )
        self._running = False
        self._keep = (
            ffi.new("char[]", host.encode("ascii")),
            ffi.new("char[]", name.encode("ascii")),
        )
        cfg = ffi.new(
            "spd_config *",
            {
                "port": port,
                "host": self._keep[0],
                "name": self._keep[1],
                "max_session_messages": max_session_messages,
                "max_session_bytes": max_session_bytes,
                "tcp": int(tcp),
                "unix_socket": int(unix_socket),
                "log_level": LOG_LEVELS[log_level],
            },
        )
        err = ffi.new("char[256]")
        self._d = lib.spd_open(cfg, err, 256)
        if self._d == ffi.NULL:
            raise OSError(ffi.string(err).decode("utf-8", "replace"))

    @property
    def port(self):
        """The port it listens on (the one it picked, if created with 0)."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        return lib.spd_port(self._d)

    def stats(self):
        """Sizes of the daemon's tables (a dict); only while it is not running."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("stats() needs the daemon stopped (run() has returned)")
        s = ffi.new("spd_stats *")
        lib.spd_get_stats(self._d, s)
        return {
            "groups": s.groups,
            "group_slots": s.group_slots,
            "names": s.names,
            "name_slots": s.name_slots,
            "connections": s.connections,
        }

    def run(self, stop_fd):
        """Serves until stop_fd becomes readable (GIL released throughout)."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("daemon is already running")
        self._running = True
        try:
            r = lib.spd_run(self._d, stop_fd)
        finally:
            self._running = False
        if r != 0:
            raise OSError("daemon event loop failed")

    def close(self):
        """Closes every connection and the listening sockets."""
        if self._running:
            raise RuntimeError("stop the daemon before closing it")
        if self._d != ffi.NULL:
            lib.spd_close(self._d)
            self._d = ffi.NULL

    def __del__(self):
        if getattr(self, "_d", ffi.NULL) != ffi.NULL and not self._running:
            lib.spd_close(self._d)
