"""Whether and when a flow session reconnects after losing its daemon
(recovery, issue 17): exponential backoff with jitter, bounded attempts,
and which errors are worth another try. Pure: the caller passes the time
and a random source, and does the sleeping and the connecting.

Worth another try: the connection's loss (CONNECTION_CLOSED,
NET_ERROR_ON_SESSION, the receiver's BacklogOverflow, ILLEGAL_SESSION) and,
while reconnecting, no daemon there yet (COULD_NOT_CONNECT, a connect
timeout: a daemon restarting), the name still held (REJECT_NOT_UNIQUE: the
daemon has not yet seen the old session go), the daemon full
(REJECT_QUOTA: killed sessions free their places) and REJECT_AUTH (a
daemon answers it to a client whose authentication choice took more than
its handshake wait, 1 s, as a loaded machine's may: our NULL method was
accepted before). Not: what another try can't change (a bad name or
version, a bad address), nor anything that is not a Spread error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .._constants import (
    REJECT_ILLEGAL_NAME,
    REJECT_NO_NAME,
    REJECT_VERSION,
)
from .._errors import (
    BacklogOverflow,
    ConnectionClosed,
    ConnectionRejected,
    CouldNotConnect,
    IllegalSession,
    NetErrorOnSession,
    SpreadError,
)
from ._events import SLOTS, FlowEvent

__all__ = ["Backoff", "ReconnectFailed", "Reconnected", "Reconnecting", "retryable"]

# reconnect=True: 0.1 s doubling to 5 s, 30 attempts (about two minutes
# without a daemon before ReconnectFailed).
DEFAULT_ATTEMPTS = 30
_LOSS = (ConnectionClosed, NetErrorOnSession, BacklogOverflow, IllegalSession, CouldNotConnect)
_FINAL_REJECTIONS = frozenset((REJECT_NO_NAME, REJECT_ILLEGAL_NAME, REJECT_VERSION))


def retryable(error: BaseException) -> bool:
    """True if another connection attempt may succeed where this one failed."""
    if isinstance(error, ConnectionRejected):
        return error.code not in _FINAL_REJECTIONS
    return isinstance(error, _LOSS)


class ReconnectFailed(SpreadError):
    """Reconnecting gave up: ``attempts`` made, ``last_error`` the last
    failure (also the ``__cause__``); ``args`` are ``(code, text)`` of it."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        code = last_error.code if isinstance(last_error, SpreadError) else 0
        super().__init__(code, f"reconnecting gave up after {attempts} attempt(s): {last_error}")
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True, **SLOTS)
class Reconnected(FlowEvent):
    """The session is connected again (and joins its groups again): after
    ``attempts`` attempts and ``downtime`` seconds without a daemon;
    ``error`` is what ended the connection."""

    attempts: int
    downtime: float
    error: str = ""


def policy(reconnect: object, connect: object) -> Backoff | None:
    """A session's ``reconnect=`` option as a Backoff (True: the default
    one), or None (False, None: a lost connection is the session's error).
    Reconnecting needs ``connect``, which makes the connection again."""
    if reconnect is True:
        reconnect = Backoff(attempts=DEFAULT_ATTEMPTS)
    elif reconnect is False:
        reconnect = None
    elif reconnect is not None and not isinstance(reconnect, Backoff):
        raise TypeError(f"reconnect is a bool or a Backoff, not {type(reconnect).__name__}")
    if reconnect is not None and connect is None:
        raise ValueError(
            "reconnect needs connect= (what makes the connection again, with the same "
            "private name); spread.flow.connect() gives one"
        )
    return reconnect


@dataclass(frozen=True)  # (no slots=: Python 3.9, PyPy's, has none)
class Backoff:
    """The waits between attempts: ``first``, then each ``factor`` times the
    last, at most ``most``; each drawn from [wait × (1 − jitter), wait], so
    that clients that lost one daemon together don't return together.
    ``attempts``: how many before giving up (None: no limit)."""

    first: float = 0.1
    most: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5
    attempts: int | None = None

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.most):
            raise ValueError(f"need 0 < first <= most, not {self.first!r}, {self.most!r}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, not {self.factor!r}")
        if not (0 <= self.jitter < 1):
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter!r}")
        if self.attempts is not None and (type(self.attempts) is not int or self.attempts < 1):
            raise ValueError(f"attempts must be None or an int >= 1, not {self.attempts!r}")

    def wait(self, attempt: int, rnd: random.Random) -> float:
        """The wait before attempt number ``attempt`` (1, 2, ...)."""
        try:
            wait = min(self.most, self.first * self.factor ** min(attempt - 1, 64))
        except OverflowError:  # (a float factor past 1e4.8: 64 doublings overflow)
            wait = self.most
        return wait * (1 - self.jitter * rnd.random())


class Reconnecting:
    """One outage, from the loss to the session's return (or giving up).
    ``failed(error, now)`` gives the time of the next attempt or raises;
    ``succeeded(now)`` gives the ``Reconnected`` event."""

    __slots__ = ("backoff", "since", "attempts", "_rnd")

    def __init__(self, backoff: Backoff, since: float, rnd: random.Random | None = None) -> None:
        self.backoff = backoff
        self.since = since  # when the connection was lost
        self.attempts = 0
        self._rnd = rnd if rnd is not None else random.Random()

    @classmethod
    def begin(cls, backoff: Backoff, lost: BaseException, now: float) -> tuple[Reconnecting, float]:
        """An outage that begins now with ``lost``, and its first attempt's
        time; raises ``ReconnectFailed`` if no attempt can help."""
        outage = cls(backoff, now)
        return outage, outage.first_attempt(lost)

    def first_attempt(self, lost: BaseException) -> float:
        """When to make the first attempt after the connection failed with
        ``lost``; raises ``ReconnectFailed`` if no attempt can help."""
        if not retryable(lost):
            raise ReconnectFailed(0, lost) from lost
        return self.since + self.backoff.wait(1, self._rnd)

    def failed(self, error: BaseException, now: float) -> float:
        """An attempt failed with ``error``: the time of the next one, or
        ``ReconnectFailed`` (no attempts left, or an error no attempt can help)."""
        self.attempts += 1
        limit = self.backoff.attempts
        if not retryable(error) or (limit is not None and self.attempts >= limit):
            raise ReconnectFailed(self.attempts, error) from error
        return now + self.backoff.wait(self.attempts + 1, self._rnd)

    def succeeded(self, now: float, error: str = "") -> Reconnected:
        self.attempts += 1
        return Reconnected(self.attempts, now - self.since, error)
