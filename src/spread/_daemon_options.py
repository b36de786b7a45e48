"""The embedded daemon's option checks, shared by both backends' NativeDaemon
(a leaf module: the backends import it while spread is still loading)."""

# The daemon's defaults, written here for Python (spread.daemon.Daemon, python
# -m spread.daemon, spread.testing). The backends' NativeDaemon have none of
# their own: every option is passed to them. C's one definition is
# native/include/daemon.h's SPD_DEFAULT_* (the stand-alone spread-daemon's);
# tests/test_daemon_options.py checks that the two agree.
DEFAULT_PORT = 4803  # Spread's own, sp.h's DEFAULT_SPREAD_PORT
DEFAULT_HOST = "127.0.0.1"
DEFAULT_NAME = "localhost"  # the end of every private group, "#name#localhost"
DEFAULT_MAX_SESSION_MESSAGES = 1000  # a real Spread daemon's slow-reader rule
DEFAULT_MAX_SESSION_BYTES = 64 * 1024 * 1024
# Back-pressure for slow readers, in ms at a time (daemon.h explains it);
# 0 turns it off, as in a real Spread daemon.
DEFAULT_SLOW_READER_BUDGET = 100
MAX_SLOW_READER_BUDGET = 60000
DEFAULT_CONTROL = None  # no control listener (spread.daemon.Daemon has its own channel)
DEFAULT_TCP = True
DEFAULT_UNIX_SOCKET = True
LOG_LEVEL_NAMES = ("quiet", "error", "info", "debug")
DEFAULT_LOG_LEVEL = "error"  # a daemon in your own process: errors only
COMMAND_LOG_LEVEL = "info"  # a daemon of its own (the command): kills, start, stop too


def check_daemon_options(
    port,
    max_session_messages,
    max_session_bytes,
    tcp,
    unix_socket,
    log_level,
    slow_reader_budget=DEFAULT_SLOW_READER_BUDGET,
    control=None,
):
    """Raises ValueError for an option the daemon cannot take, saying what is allowed."""
    if log_level not in LOG_LEVEL_NAMES:
        raise ValueError(
            f"log_level must be one of {', '.join(LOG_LEVEL_NAMES)}, not {log_level!r}"
        )
    if not 0 <= port <= 32767:
        raise ValueError(f"port must be 0..32767 (0 picks a free one), not {port}")
    if not 1 <= max_session_messages < 2**31:
        raise ValueError(f"max_session_messages must be 1..{2**31 - 1}, not {max_session_messages}")
    if not 1 <= max_session_bytes < 2**63:
        raise ValueError(f"max_session_bytes must be 1..{2**63 - 1}, not {max_session_bytes}")
    if not 0 <= slow_reader_budget <= MAX_SLOW_READER_BUDGET:
        raise ValueError(
            f"slow_reader_budget must be 0..{MAX_SLOW_READER_BUDGET} ms "
            f"(0 turns back-pressure off), not {slow_reader_budget}"
        )
    if control is not None and not isinstance(control, str):
        raise ValueError(
            f"control must be a unix socket path or a port on 127.0.0.1 (a str), not {control!r}"
        )
    if not tcp and not unix_socket:
        raise ValueError("tcp and unix_socket are both off: the daemon needs at least one")
