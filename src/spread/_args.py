"""Argument checks and error texts of the public API, written once for both
backends (the Cython and the cffi module must never disagree on what they
accept or on what they say).

Cold paths (connect, the receiver's options) call these functions directly.
Hot paths (multicast, receive) test their common case inline, in their own
backend, and call here only to convert an unusual argument or to raise: an
exact ``int`` in range never reaches Python code.

Ints are real ints (anything with ``__index__``): a float is a TypeError,
never truncated. Names are ``str`` (UTF-8) or bytes-like.
"""

from __future__ import annotations

import math
import operator
import time

from ._errors import ConnectTimeout, SpreadError, error_class

# sp.h's codes and limits used here (the same numbers as native/include/sp.h;
# tests/test_surface.py checks them against the backend).
ILLEGAL_SPREAD, COULD_NOT_CONNECT, CONNECTION_CLOSED = -1, -2, -8
ILLEGAL_SERVICE, ILLEGAL_GROUP, MESSAGE_TOO_LONG = -12, -14, -17
SPX_TIMED_OUT, SPX_NOT_SPREAD = -1003, -1004  # spx.h: connect's own failures
MAX_GROUP_BYTES = 31
MAX_PRIVATE_NAME = 10
MAX_GROUPS = 100
MAX_BODY = 143551  # payload + 32 bytes a group (spx.h SPX_MAX_SAFE_BODY: 4.0.0 daemons survive it)
LOW_PRIORITY, HIGH_PRIORITY = 0, 2
NAME_ENCODING = "utf-8"

DEFAULT_TIMEOUT = 10.0  # seconds for connect and handshake when the caller names none

# connect(socket_buffer=): None is the library's default (SPX_SOCKET_BUFFER_DEFAULT
# in spx.h: over TCP the kernel's autotuning), 0 the kernel's own sizes by
# name, a size fixes SO_SNDBUF and SO_RCVBUF (README.md, "Socket buffers").
SOCKET_BUFFER_DEFAULT = -1
MIN_SOCKET_BUFFER = 4096
MAX_SOCKET_BUFFER = 1 << 30
SOCKET_BUFFER_RULE = (
    f"socket_buffer is None (the default: over TCP the kernel's autotuning), "
    f"0 (the kernel's own sizes) or a fixed size in bytes from "
    f"{MIN_SOCKET_BUFFER} to {MAX_SOCKET_BUFFER}"
)

ADDRESS_FORMS = (
    "a daemon address is '<port>' (the unix socket /tmp/<port>) or "
    "'<port>@<host>' (TCP), with a port from 0 to 32767"
)
SERVICE_RULE = (
    "a service type is exactly one of UNRELIABLE_MESS, RELIABLE_MESS, FIFO_MESS, "
    "CAUSAL_MESS, AGREED_MESS and SAFE_MESS, optionally with SELF_DISCARD; "
    "membership and reject bits are the daemon's"
)
GROUP_RULE = f"a group name is 1 to {MAX_GROUP_BYTES} bytes"
SIZE_RULE = f"payload plus 32 bytes per group may be at most {MAX_BODY} bytes"
HINTS = {
    ILLEGAL_SPREAD: ADDRESS_FORMS,
    ILLEGAL_SERVICE: SERVICE_RULE,
    ILLEGAL_GROUP: GROUP_RULE,
    MESSAGE_TOO_LONG: SIZE_RULE,
}


def _type_name(value: object) -> str:
    return type(value).__name__


# -- errors --------------------------------------------------------------------


def error(
    code: int, where: str | None, library_text: str, detail: str | None = None
) -> SpreadError:
    """The exception for a Spread error code: args (code, text), the text
    being where it happened, the library's own words and what is allowed."""
    parts = [p for p in (where, library_text, detail or HINTS.get(code)) if p]
    return error_class(code)(code, ": ".join(parts))


def connect_error(
    code: int, daemon: object, timeout: float | None, library_text: str
) -> SpreadError:
    """What a failed connect() raises (codes from SPX_connect)."""
    where = f"connect({daemon!r})"
    if code == SPX_TIMED_OUT:
        return ConnectTimeout(
            COULD_NOT_CONNECT,
            f"{where}: timed out after {timeout:g} s waiting for the daemon "
            "(connect(timeout=None) waits as long as it takes)",
        )
    if code == SPX_NOT_SPREAD:
        return error_class(COULD_NOT_CONNECT)(
            COULD_NOT_CONNECT,
            f"{where}: the peer does not speak Spread's protocol (is that port a Spread daemon's?)",
        )
    if code == CONNECTION_CLOSED:
        return error(code, where, library_text, "the peer closed it during the handshake")
    return error(code, where, library_text)


# -- names -------------------------------------------------------------------------


def name_bytes(name: object, what: str, bad_value: type = ValueError) -> bytes:
    """A name given as str or bytes-like, as the bytes put on the wire."""
    if type(name) is bytes:
        b = name
    elif isinstance(name, str):
        b = name.encode(NAME_ENCODING, "surrogateescape")
    elif isinstance(name, (bytes, bytearray, memoryview)):
        b = bytes(name)
    else:
        raise TypeError(f"{what} must be str or bytes, not {_type_name(name)}")
    if b"\0" in b:
        raise _value_error(bad_value, f"{what} must not contain NUL characters: {name!r}")
    return b


def _value_error(cls: type[Exception], text: str) -> Exception:
    if issubclass(cls, SpreadError):
        return cls(ILLEGAL_GROUP, text)
    return cls(text)


def group_bytes(group: object) -> bytes:
    """A group name: 1 to 31 bytes (IllegalGroup, a ValueError, otherwise)."""
    bad = error_class(ILLEGAL_GROUP)
    b = name_bytes(group, "group name", bad)
    if not 0 < len(b) <= MAX_GROUP_BYTES:
        raise bad(ILLEGAL_GROUP, f"group name {group!r} is {len(b)} bytes: {GROUP_RULE}")
    return b


def group_list(groups: object) -> list[bytes]:
    """The destinations of multigroup_multicast: 1 to 100 group names."""
    if isinstance(groups, (str, bytes, bytearray, memoryview)):
        raise TypeError("groups must be a sequence of group names, not a single name")
    try:
        items = iter(groups)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"groups must be a sequence of group names, not {_type_name(groups)}"
        ) from None
    names: list[bytes] = []
    for group in items:
        if len(names) == MAX_GROUPS:
            raise ValueError(f"at most {MAX_GROUPS} groups per message")
        names.append(group_bytes(group))
    if not names:
        raise ValueError("groups must name at least one group")
    return names


def daemon_bytes(daemon: object) -> bytes:
    """connect()'s daemon address; the form itself is checked by the library."""
    b = name_bytes(daemon, "daemon")
    if not b:
        raise error_class(ILLEGAL_SPREAD)(
            ILLEGAL_SPREAD, f"connect({daemon!r}): empty address: {ADDRESS_FORMS}"
        )
    return b


def private_name_bytes(name: object) -> bytes:
    """connect()'s private name: at most 10 bytes; "" (or None) lets the daemon pick."""
    b = b"" if name is None else name_bytes(name, "name")
    if len(b) > MAX_PRIVATE_NAME:
        raise ValueError(
            f"private name {name!r} is {len(b)} bytes: at most {MAX_PRIVATE_NAME} are allowed"
        )
    return b


# -- numbers -----------------------------------------------------------------------


def integer(value: object, what: str) -> int:
    """An int argument (anything with __index__; never a float or a str)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an int, not {_type_name(value)}") from None


def service_type(value: object) -> int:
    """A service type as the C int sp.h passes (its legality is the library's call)."""
    v = integer(value, "service_type")
    if not -(1 << 31) <= v < 1 << 32:
        raise error_class(ILLEGAL_SERVICE)(
            ILLEGAL_SERVICE, f"service_type {v:#x} is not 32 bits: {SERVICE_RULE}"
        )
    return v - (1 << 32) if v >= 1 << 31 else v


def msg_type(value: object) -> int:
    """A 16-bit message type (-32768 to 65535), as the signed value sent."""
    v = integer(value, "msg_type")
    if not -32768 <= v <= 65535:
        raise ValueError(f"msg_type must fit in 16 bits (-32768 to 65535), not {v}")
    return v - 65536 if v > 32767 else v


def priority(value: object) -> int:
    v = integer(value, "priority")
    if not LOW_PRIORITY <= v <= HIGH_PRIORITY:
        raise ValueError(
            f"priority must be LOW_PRIORITY (0), MEDIUM_PRIORITY (1) or HIGH_PRIORITY (2), not {v}"
        )
    return v


def flag(value: object, what: str) -> bool:
    """A yes/no argument: a bool, or an int as the classic module took it."""
    if isinstance(value, bool):
        return value
    return integer(value, what) != 0


def seconds(value: object, what: str, *, zero_ok: bool) -> float | None:
    """A time-out in seconds: None (no limit) or a finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {_type_name(value)}")
    v = float(value)
    if math.isnan(v) or v < 0 or (v == 0 and not zero_ok) or math.isinf(v):
        allowed = "0 or more" if zero_ok else "more than 0"
        raise ValueError(
            f"{what} must be a finite number of seconds, {allowed} (or None), not {value!r}"
        )
    return v


def socket_buffer(value: object) -> int:
    """connect()'s socket_buffer as SPX_connect takes it: SOCKET_BUFFER_DEFAULT
    for None, 0 for autotuning, or a size in bytes."""
    if value is None:
        return SOCKET_BUFFER_DEFAULT
    if isinstance(value, bool):
        raise TypeError(f"socket_buffer must be an int or None, not bool: {SOCKET_BUFFER_RULE}")
    try:
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"socket_buffer must be an int or None, not {_type_name(value)}: {SOCKET_BUFFER_RULE}"
        ) from None
    if v != 0 and not MIN_SOCKET_BUFFER <= v <= MAX_SOCKET_BUFFER:
        raise ValueError(f"socket_buffer={v!r}: {SOCKET_BUFFER_RULE}")
    return v


# -- calls -------------------------------------------------------------------------


def connect_args(
    daemon: object,
    name: object,
    prio: object,
    membership: object,
    bytes_names: object,
    timeout: object,
    buffer: object = None,
) -> tuple[bytes, bytes, int, bool, bool, float | None, int]:
    """connect()'s arguments checked and converted, in the order given."""
    return (
        daemon_bytes(daemon),
        private_name_bytes(name),
        priority(prio),
        flag(membership, "membership"),
        flag(bytes_names, "bytes_names"),
        seconds(timeout, "timeout", zero_ok=False),
        socket_buffer(buffer),
    )


def start_receiver(
    *, max_backlog_bytes: object = None, on_overflow: object = "disconnect"
) -> tuple[int, bool]:
    """A ThreadedReceiver's options: (backlog limit in bytes or 0 for none,
    whether to block rather than disconnect on overflow)."""
    if on_overflow not in ("disconnect", "block"):
        raise ValueError(f'on_overflow must be "disconnect" or "block", not {on_overflow!r}')
    limit = 0
    if max_backlog_bytes is not None:
        limit = integer(max_backlog_bytes, "max_backlog_bytes")
        if limit <= 0:
            raise ValueError(f"max_backlog_bytes must be positive (or None), not {limit}")
    return limit, on_overflow == "block"


def batch_size(value: object) -> int:
    n = integer(value, "max_messages")
    if n < 1:
        raise ValueError(f"max_messages must be at least 1, not {n}")
    return n


def ms_until(deadline: float) -> int:
    """Whole milliseconds from now to a time.monotonic() deadline, rounded up
    (a wait never ends early), at least 0."""
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


def wait_ms(timeout: object) -> int:
    """get()'s time-out as whole milliseconds for the C wait (-1: none)."""
    t = seconds(timeout, "timeout", zero_ok=True)
    return -1 if t is None else math.ceil(t * 1000)
