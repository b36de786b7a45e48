"""python -m spread.daemon: the embedded daemon in the foreground.

Prints one line once it accepts connections; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .. import _daemon_options as o
from .._backend import core as _core

LOG_LEVELS = _core.LOG_LEVELS
NativeDaemon = _core.NativeDaemon


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spread.daemon", description=__doc__)
    p.add_argument(
        "--port",
        type=int,
        default=o.DEFAULT_PORT,
        help="TCP port, and unix socket /tmp/<port>: 1..32767, or 0 to pick a free "
        f"one, printed in the ready line (default {o.DEFAULT_PORT})",
    )
    p.add_argument(
        "--host",
        default=o.DEFAULT_HOST,
        help=f"IPv4 address, or a host name resolving to one, for TCP (default {o.DEFAULT_HOST})",
    )
    p.add_argument(
        "--name",
        default=o.DEFAULT_NAME,
        help=f"daemon name, the end of every private group (default {o.DEFAULT_NAME})",
    )
    p.add_argument(
        "--max-session-messages",
        type=int,
        default=o.DEFAULT_MAX_SESSION_MESSAGES,
        help="undelivered messages after which a client is killed "
        f"(default {o.DEFAULT_MAX_SESSION_MESSAGES})",
    )
    p.add_argument(
        "--max-session-bytes",
        type=int,
        default=o.DEFAULT_MAX_SESSION_BYTES,
        help="undelivered bytes after which a client is killed "
        f"(default {o.DEFAULT_MAX_SESSION_BYTES}, {o.DEFAULT_MAX_SESSION_BYTES >> 20} MiB)",
    )
    p.add_argument(
        "--slow-reader-budget",
        type=int,
        default=o.DEFAULT_SLOW_READER_BUDGET,
        metavar="MS",
        help="back-pressure for slow readers: requests go unread while a reader lags, for "
        "at most MS ms at a time, refilled at a tenth of real time; 0 turns it off, as in "
        f"a real Spread daemon (default {o.DEFAULT_SLOW_READER_BUDGET})",
    )
    p.add_argument(
        "--control",
        default=None,
        metavar="ADDR",
        help="open the control channel (figures and faults for tests) on a unix socket "
        "path, or on a port of 127.0.0.1 only (0: a free one, in the ready line); "
        "default: none",
    )
    p.add_argument("--no-unix-socket", action="store_true", help="listen on TCP only")
    p.add_argument("--no-tcp", action="store_true", help="listen on the unix socket only")
    p.add_argument(
        "--log-level",
        choices=sorted(LOG_LEVELS),
        default=o.COMMAND_LOG_LEVEL,
        help=f"what goes to stderr (default {o.COMMAND_LOG_LEVEL}: connections killed, start, "
        "stop)",
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.no_tcp and args.no_unix_socket:
        p.error(
            "--no-tcp and --no-unix-socket together leave nothing to listen on; keep at least one"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        listen = {"tcp": not args.no_tcp, "unix_socket": not args.no_unix_socket}
        daemon = NativeDaemon(o.pick_options({**vars(args), **listen}), -1)
    except (OSError, ValueError) as e:
        print(f"spread.daemon: {e}", file=sys.stderr)
        return 1
    # A signal writes a byte to the wake-up pipe, which ends the C event loop.
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)
    signal.set_wakeup_fd(stop_w)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    port = daemon.port
    where = [] if args.no_tcp else [f"{port}@{args.host}"]
    if not args.no_unix_socket:
        where.append(f"{port} (/tmp/{port})")
    control = ""
    if args.control:
        where_control = f"127.0.0.1:{daemon.control_port}" if daemon.control_port else args.control
        control = f"; control {where_control}"
    print(f"spread.daemon ready: {args.name} on {' and '.join(where)}{control}", flush=True)
    try:
        daemon.run(stop_r)
    finally:
        daemon.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
