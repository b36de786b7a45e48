"""The embedded daemon's options: their names, defaults and checks, in one
place for every Python front end and both backends' NativeDaemon (a leaf
module: the backends import it while spread is still loading)."""

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

# Every option with its default: the one list of the daemon's options. A
# NativeDaemon takes a dict of exactly these keys; spread.daemon.Daemon
# takes them as keyword arguments (port also positional), EmbeddedDaemon
# and the fixtures those but port as keywords, the command line as --flags.
DEFAULTS = {
    "port": DEFAULT_PORT,
    "host": DEFAULT_HOST,
    "name": DEFAULT_NAME,
    "max_session_messages": DEFAULT_MAX_SESSION_MESSAGES,
    "max_session_bytes": DEFAULT_MAX_SESSION_BYTES,
    "slow_reader_budget": DEFAULT_SLOW_READER_BUDGET,
    "tcp": DEFAULT_TCP,
    "unix_socket": DEFAULT_UNIX_SOCKET,
    "log_level": DEFAULT_LOG_LEVEL,
    "control": DEFAULT_CONTROL,
}
OPTION_NAMES = tuple(DEFAULTS)


def pick_options(namespace) -> dict:
    """The daemon's options out of a mapping holding them (and maybe more:
    a function's locals())."""
    return {name: namespace[name] for name in OPTION_NAMES}


def check_daemon_options(options) -> None:
    """TypeError unless options has exactly the daemon's option names;
    ValueError for a value the daemon cannot take, saying what is allowed."""
    if set(options) != set(OPTION_NAMES):
        missing = sorted(set(OPTION_NAMES) - set(options))
        unknown = sorted(set(options) - set(OPTION_NAMES))
        raise TypeError(
            f"daemon options: missing {missing}, unknown {unknown}; "
            f"the options are {', '.join(OPTION_NAMES)}"
        )
    port = options["port"]
    log_level = options["log_level"]
    max_messages = options["max_session_messages"]
    max_bytes = options["max_session_bytes"]
    budget = options["slow_reader_budget"]
    control = options["control"]
    if log_level not in LOG_LEVEL_NAMES:
        raise ValueError(
            f"log_level must be one of {', '.join(LOG_LEVEL_NAMES)}, not {log_level!r}"
        )
    if not 0 <= port <= 32767:
        raise ValueError(f"port must be 0..32767 (0 picks a free one), not {port}")
    if not 1 <= max_messages < 2**31:
        raise ValueError(f"max_session_messages must be 1..{2**31 - 1}, not {max_messages}")
    if not 1 <= max_bytes < 2**63:
        raise ValueError(f"max_session_bytes must be 1..{2**63 - 1}, not {max_bytes}")
    if not 0 <= budget <= MAX_SLOW_READER_BUDGET:
        raise ValueError(
            f"slow_reader_budget must be 0..{MAX_SLOW_READER_BUDGET} ms "
            f"(0 turns back-pressure off), not {budget}"
        )
    if control is not None and not isinstance(control, str):
        raise ValueError(
            f"control must be a unix socket path or a port on 127.0.0.1 (a str), not {control!r}"
        )
    if not options["tcp"] and not options["unix_socket"]:
        raise ValueError("tcp and unix_socket are both off: the daemon needs at least one")
