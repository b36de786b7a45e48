"""The exceptions of the spread package, shared by every backend.

``SpreadError`` is the classic ``spread.error``: its ``args`` are always
``(code, text)``, the code being one of the negative sp.h constants. Each
code that callers commonly handle has its own subclass, so both
``except spread.error`` and ``except spread.ConnectionClosed`` work.
"""

__all__ = [
    "SpreadError",
    "error",
    "ConnectionClosed",
    "IllegalSession",
    "NetErrorOnSession",
    "ConnectionRejected",
    "CouldNotConnect",
    "ConnectTimeout",
    "IllegalSpread",
    "IllegalGroup",
    "IllegalService",
    "IllegalMessage",
    "MessageTooLong",
    "BacklogOverflow",
    "ReceiverClosed",
    "Empty",
    "error_class",
]

import queue


class SpreadError(Exception):
    """An error reported by Spread; ``args == (code, text)``."""

    @property
    def code(self) -> int:
        return self.args[0]

    @property
    def text(self) -> str:
        return self.args[1] if len(self.args) > 1 else ""

    def __str__(self) -> str:
        if len(self.args) == 2:
            return f"({self.args[0]}) {self.args[1]}"
        return super().__str__()


error = SpreadError  # the classic name


class ConnectionClosed(SpreadError):
    """The daemon closed the connection (CONNECTION_CLOSED, -8)."""


class IllegalSession(SpreadError):
    """The mailbox is not connected (ILLEGAL_SESSION, -11)."""


class NetErrorOnSession(SpreadError):
    """The connection failed earlier (NET_ERROR_ON_SESSION, -18)."""


class ConnectionRejected(SpreadError):
    """The daemon refused the connection (REJECT_*, -3 ... -7, -9)."""


class CouldNotConnect(SpreadError):
    """No Spread daemon answered at that address (COULD_NOT_CONNECT, -2)."""


class ConnectTimeout(CouldNotConnect, TimeoutError):
    """connect() gave up waiting for the daemon (its ``timeout``); the code
    is COULD_NOT_CONNECT, and it is also a ``TimeoutError``."""


# Bad values the caller passed: Spread errors with the classic codes, and
# ValueErrors as a Python caller expects.
class IllegalSpread(SpreadError, ValueError):
    """The daemon address string is malformed (ILLEGAL_SPREAD, -1)."""


class IllegalGroup(SpreadError, ValueError):
    """A group name is not acceptable (ILLEGAL_GROUP, -14)."""


class IllegalService(SpreadError, ValueError):
    """The service type is not acceptable (ILLEGAL_SERVICE, -12)."""


class IllegalMessage(SpreadError):
    """A message was malformed (ILLEGAL_MESSAGE, -13)."""


class MessageTooLong(SpreadError, ValueError):
    """Payload plus group names exceed the protocol limit (MESSAGE_TOO_LONG, -17)."""


class BacklogOverflow(SpreadError):
    """A ThreadedReceiver's backlog passed max_backlog_bytes with
    on_overflow="disconnect": it disconnected after queueing what it had."""


class ReceiverClosed(SpreadError):
    """The ThreadedReceiver was closed and every queued message was taken."""


class Empty(queue.Empty):
    """No message arrived within the time-out (also a queue.Empty)."""


_BY_CODE = {
    -1: IllegalSpread,
    -2: CouldNotConnect,
    -3: ConnectionRejected,
    -4: ConnectionRejected,
    -5: ConnectionRejected,
    -6: ConnectionRejected,
    -7: ConnectionRejected,
    -8: ConnectionClosed,
    -9: ConnectionRejected,
    -11: IllegalSession,
    -12: IllegalService,
    -13: IllegalMessage,
    -14: IllegalGroup,
    -17: MessageTooLong,
    -18: NetErrorOnSession,
}


def error_class(code: int) -> type:
    """The exception class raised for a Spread error code."""
    return _BY_CODE.get(code, SpreadError)


# The public classes show as spread.X (where users meet them), not spread._errors.X.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "spread"
del _name, _obj
