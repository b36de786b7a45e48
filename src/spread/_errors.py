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


# Keyed by sp.h's names, whose values come from the backend (sp.h, compiled
# in): the numbers are written in sp.h alone.
_BY_NAME: dict[str, type[SpreadError]] = {
    "ILLEGAL_SPREAD": IllegalSpread,
    "COULD_NOT_CONNECT": CouldNotConnect,
    "REJECT_QUOTA": ConnectionRejected,
    "REJECT_NO_NAME": ConnectionRejected,
    "REJECT_ILLEGAL_NAME": ConnectionRejected,
    "REJECT_NOT_UNIQUE": ConnectionRejected,
    "REJECT_VERSION": ConnectionRejected,
    "CONNECTION_CLOSED": ConnectionClosed,
    "REJECT_AUTH": ConnectionRejected,
    "ILLEGAL_SESSION": IllegalSession,
    "ILLEGAL_SERVICE": IllegalService,
    "ILLEGAL_MESSAGE": IllegalMessage,
    "ILLEGAL_GROUP": IllegalGroup,
    "MESSAGE_TOO_LONG": MessageTooLong,
    "NET_ERROR_ON_SESSION": NetErrorOnSession,
}
_BY_CODE: dict[int, type[SpreadError]] = {}  # filled from _BY_NAME on first use


def error_class(code: int) -> type:
    """The exception class raised for a Spread error code."""
    if not _BY_CODE:
        # Not at import: the backends import this module while they load.
        from ._backend import core

        _BY_CODE.update({getattr(core, name): cls for name, cls in _BY_NAME.items()})
    return _BY_CODE.get(code, SpreadError)


# The public classes show as spread.X (where users meet them), not spread._errors.X.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "spread"
del _name, _obj
