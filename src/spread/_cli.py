"""Argument types shared by the package's command lines (python -m
spread.demo, python -m spread.bench): each raises argparse's error saying
what was given and what is allowed."""

from __future__ import annotations

import argparse

# Spread clients take ports 0..32767 (the daemon's port and the one above it).
MAX_PORT = 32767
# The largest payload to one group: payload plus 32 bytes per group name may
# be at most 143,551 bytes (spx.h SPX_MAX_SAFE_BODY, _args.MAX_BODY).
MAX_PAYLOAD = 143551 - 32


def whole_number(text: str, low: int, high: int | None = None, what: str = "a whole number") -> int:
    allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
    problem = argparse.ArgumentTypeError(f"expected {what} {allowed}, not {text!r}")
    try:
        value = int(text)
    except ValueError:
        raise problem from None
    if value < low or (high is not None and value > high):
        raise problem
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def payload_size(text: str) -> int:
    return whole_number(text, 1, MAX_PAYLOAD, "a payload size in bytes")


def port_number(text: str) -> int:
    return whole_number(text, 1, MAX_PORT, "a port")


def daemon_address(text: str) -> str:
    """A daemon address as connect() takes it: "PORT" or "PORT@HOST"."""
    port, at, host = text.partition("@")
    try:
        port_number(port)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected PORT or PORT@HOST with a port from 1 to {MAX_PORT}, not {text!r}"
        ) from None
    if at and not host:
        raise argparse.ArgumentTypeError(f"expected a host after '@', not {text!r}")
    return text
