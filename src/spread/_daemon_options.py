"""The embedded daemon's option checks, shared by both backends' NativeDaemon
(a leaf module: the backends import it while spread is still loading)."""

# The daemon's defaults, written here for Python (spread.daemon.Daemon, python
# -m spread.daemon, spread.testing). The C copy is native/daemon/main.c's,
# for the stand-alone spread-daemon; the backends' NativeDaemon take theirs
# from here too.
DEFAULT_PORT = 4803  # Spread's own, sp.h's DEFAULT_SPREAD_PORT
DEFAULT_HOST = "127.0.0.1"
DEFAULT_NAME = "localhost"  # the end of every private group, "#name#localhost"
DEFAULT_MAX_SESSION_MESSAGES = 1000  # a real Spread daemon's slow-reader rule
DEFAULT_MAX_SESSION_BYTES = 64 * 1024 * 1024
DEFAULT_TCP = True
DEFAULT_UNIX_SOCKET = True
LOG_LEVEL_NAMES = ("quiet", "error", "info", "debug")
DEFAULT_LOG_LEVEL = "error"  # a daemon in your own process: errors only
COMMAND_LOG_LEVEL = "info"  # a daemon of its own (the command): kills, start, stop too


def check_daemon_options(
    port, max_session_messages, max_session_bytes, tcp, unix_socket, log_level
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
    if not tcp and not unix_socket:
        raise ValueError("tcp and unix_socket are both off: the daemon needs at least one")
