# _daemon.pxi -- the embedded daemon (native/daemon) for spread.daemon;
# included by _core.pyx. It serves without holding the GIL.

from ._daemon_options import DEFAULT_MAX_SESSION_BYTES, check_daemon_options

LOG_LEVELS = {"quiet": SPD_LOG_QUIET, "error": SPD_LOG_ERROR, "info": SPD_LOG_INFO,
              "debug": SPD_LOG_DEBUG}


cdef class NativeDaemon:
    """Sockets bound on construction; run() serves until stop_fd is readable."""
    cdef spd_daemon *_d
    cdef bint _running

    def __cinit__(self, int port, str host="127.0.0.1", str name="localhost",
                  int max_session_messages=1000, bint tcp=True, bint unix_socket=True,
                  str log_level="error", max_session_bytes=DEFAULT_MAX_SESSION_BYTES):
        cdef spd_config cfg
        cdef char err[256]
        cdef bytes h = host.encode("ascii")
        cdef bytes n = name.encode("ascii")
        check_daemon_options(port, max_session_messages, max_session_bytes, tcp, unix_socket,
                             log_level)
        cfg.port = port
        cfg.host = h
        cfg.name = n
        cfg.max_session_messages = max_session_messages
        cfg.max_session_bytes = max_session_bytes
        cfg.tcp = tcp
        cfg.unix_socket = unix_socket
        cfg.log_level = LOG_LEVELS[log_level]
        err[0] = 0
        self._d = spd_open(&cfg, err, sizeof(err))
        if self._d == NULL:
            raise OSError(err.decode("utf-8", "replace"))

    @property
    def port(self):
        """The port it listens on (the one it picked, if created with 0)."""
        if self._d == NULL:
            raise ValueError("daemon is closed")
        return spd_port(self._d)

    def stats(self):
        """Sizes of the daemon's tables (a dict); only while it is not running."""
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
