# _daemon.pxi -- the embedded daemon (native/daemon) for spread.daemon;
# included by _core.pyx. It serves without holding the GIL.

from ._daemon_options import check_daemon_options

LOG_LEVELS = {"quiet": SPD_LOG_QUIET, "error": SPD_LOG_ERROR, "info": SPD_LOG_INFO,
              "debug": SPD_LOG_DEBUG}


cdef class NativeDaemon:
    """Sockets bound on construction; run() serves until stop_fd is readable."""
    cdef spd_daemon *_d
    cdef bint _running

    def __cinit__(self, options, int control_fd):
        # options: every one of spread._daemon_options.OPTION_NAMES, explicit
        # (the defaults are that module's); control_fd: the channel's own end.
        cdef spd_config cfg
        cdef char err[256]
        check_daemon_options(options)
        cdef bytes h = options["host"].encode("ascii")
        cdef bytes n = options["name"].encode("ascii")
        cdef bytes c = (options["control"] or "").encode("utf-8")
        cfg.port = options["port"]
        cfg.host = h
        cfg.name = n
        cfg.max_session_messages = options["max_session_messages"]
        cfg.max_session_bytes = options["max_session_bytes"]
        cfg.slow_reader_budget = options["slow_reader_budget"]
        cfg.tcp = options["tcp"]
        cfg.unix_socket = options["unix_socket"]
        cfg.log_level = LOG_LEVELS[options["log_level"]]
        cfg.control = c
        cfg.control_fd = control_fd
        err[0] = 0
        self._d = spd_open(&cfg, err, sizeof(err))
        if self._d == NULL:
            raise OSError(err.decode("utf-8", "replace"))

    @staticmethod
    def c_defaults():
        """The C daemon's defaults (daemon.h), for the test that they equal Python's."""
        cdef spd_config cfg
        spd_default_config(&cfg)
        return {"port": cfg.port, "host": cfg.host.decode(), "name": cfg.name.decode(),
                "max_session_messages": cfg.max_session_messages,
                "max_session_bytes": cfg.max_session_bytes,
                "slow_reader_budget": cfg.slow_reader_budget, "tcp": bool(cfg.tcp),
                "unix_socket": bool(cfg.unix_socket), "log_level": cfg.log_level}

    @property
    def control_port(self):
        """The control channel's TCP port (the one picked for "0"), or 0."""
        if self._d == NULL:
            raise ValueError("daemon is closed")
        return spd_control_port(self._d)

    @property
    def port(self):
        """The port it listens on (the one it picked, if created with 0)."""
        if self._d == NULL:
            raise ValueError("daemon is closed")
        return spd_port(self._d)

    def stats(self):
        """Sizes of the daemon's tables (a dict); only while it is not running
        (while it runs, the control channel has the figures)."""
        cdef spd_stats s
        if self._d == NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("stats() needs the daemon stopped (run() has returned)")
        spd_get_stats(self._d, &s)
        return {"groups": s.groups, "group_slots": s.group_slots, "names": s.names,
                "name_slots": s.name_slots, "connections": s.connections}

    def run(self, int stop_fd):
        """Serves until stop_fd becomes readable (GIL released throughout)."""
        cdef int r
        if self._d == NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("daemon is already running")
        self._running = True
        with nogil:
            r = spd_run(self._d, stop_fd)
        self._running = False
        if r != 0:
            raise OSError("daemon event loop failed")

    def close(self):
        """Closes every connection and the listening sockets."""
        if self._running:
            raise RuntimeError("stop the daemon before closing it")
        spd_close(self._d)
        self._d = NULL

    def __dealloc__(self):
        if self._d != NULL and not self._running:
            spd_close(self._d)
