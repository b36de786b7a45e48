"""The embedded daemon (native/daemon) for spread.daemon: sockets bound on
construction, served without the GIL (cffi releases it around spd_run)."""

from __future__ import annotations

from .._daemon_options import check_daemon_options
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

    def __init__(self, options, control_fd):
        # options: every one of spread._daemon_options.OPTION_NAMES, explicit
        # (the defaults are that module's); control_fd: the channel's own end.
        check_daemon_options(options)
        self._running = False
        self._keep = (
            ffi.new("char[]", options["host"].encode("ascii")),
            ffi.new("char[]", options["name"].encode("ascii")),
            ffi.new("char[]", (options["control"] or "").encode("utf-8")),
        )
        cfg = ffi.new(
            "spd_config *",
            {
                "port": options["port"],
                "host": self._keep[0],
                "name": self._keep[1],
                "max_session_messages": options["max_session_messages"],
                "max_session_bytes": options["max_session_bytes"],
                "slow_reader_budget": options["slow_reader_budget"],
                "tcp": int(options["tcp"]),
                "unix_socket": int(options["unix_socket"]),
                "log_level": LOG_LEVELS[options["log_level"]],
                "control": self._keep[2],
                "control_fd": control_fd,
            },
        )
        err = ffi.new("char[256]")
        self._d = lib.spd_open(cfg, err, 256)
        if self._d == ffi.NULL:
            raise OSError(ffi.string(err).decode("utf-8", "replace"))

    @staticmethod
    def c_defaults():
        """The C daemon's defaults (daemon.h), for the test that they equal Python's."""
        cfg = ffi.new("spd_config *")
        lib.spd_default_config(cfg)
        return {
            "port": cfg.port,
            "host": ffi.string(cfg.host).decode(),
            "name": ffi.string(cfg.name).decode(),
            "max_session_messages": cfg.max_session_messages,
            "max_session_bytes": cfg.max_session_bytes,
            "slow_reader_budget": cfg.slow_reader_budget,
            "tcp": bool(cfg.tcp),
            "unix_socket": bool(cfg.unix_socket),
            "log_level": cfg.log_level,
        }

    @property
    def control_port(self):
        """The control channel's TCP port (the one picked for "0"), or 0."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        return lib.spd_control_port(self._d)

    @property
    def port(self):
        """The port it listens on (the one it picked, if created with 0)."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        return lib.spd_port(self._d)

    def stats(self):
        """Sizes of the daemon's tables (a dict); only while it is not running
        (while it runs, the control channel has the figures)."""
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
