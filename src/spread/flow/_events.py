"""What the flow core hands out: the logical message, the events, the
actions for the front end to perform, and the exceptions it raises."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._errors import MessageTooLong, SpreadError

# Client-side codes, outside sp.h's range (as spx.h's -1003, -1004 are).
FLOW_SEND_TIMEOUT = -1101
FLOW_PROTOCOL_ERROR = -1102
MESSAGE_TOO_LONG = -17

# Slotted dataclasses from 3.10 on; PyPy 3.9 (Debian's pypy3) gets plain ones.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


# ---- actions ----------------------------------------------------------------


class Multicast(NamedTuple):
    """Send this: ``mbox.multicast(a.service_type, a.group, a.data, a.msg_type)``
    (or ``mbox.multicast(*a)``). ``group`` is the data group or a member's
    private group (reports, HELLO replies). A tuple: one is made per frame."""

    service_type: int
    group: str
    data: bytes
    msg_type: int


# ---- the logical message ------------------------------------------------------


class FlowMsg:
    """One logical message of a flow stream, with the classic RegularMsg
    attributes (``sender``, ``groups``, ``message``, ``msg_type``,
    ``service_type``, ``endian``) plus ``group``, ``stream``, ``seq`` (the
    wire frame's number in the stream) and ``index`` (its place in a batch).
    Hand it back to ``FlowCore.consumed()`` once the application took it.

    Only what differs between the messages of one frame is stored here; the
    rest is read from the frame's record (one per frame, shared)."""

    __slots__ = ("message", "msg_type", "index", "_record", "_open")
    message: bytes
    msg_type: int
    index: int
    _record: Any  # the frame's _Record (sender, group, stream, seq, ...)
    _open: bool  # not yet consumed

    @property
    def sender(self) -> str:
        return self._record.stream.sender

    @property
    def group(self) -> str:
        return self._record.stream.group

    @property
    def groups(self) -> tuple[str, ...]:
        return (self._record.stream.group,)

    @property
    def stream(self) -> int:
        return self._record.stream.stream

    @property
    def seq(self) -> int:
        return self._record.seq

    @property
    def service_type(self) -> int:
        return self._record.service_type

    @property
    def endian(self) -> int:
        return self._record.endian

    def __repr__(self) -> str:
        return (
            f"<FlowMsg sender={self.sender!r} group={self.group!r} stream={self.stream:#x} "
            f"seq={self.seq} index={self.index} msg_type={self.msg_type} len={len(self.message)}>"
        )


# ---- events (handed out in stream order, beside the messages) ---------------


class FlowEvent:
    """Base of the events the core reports."""

    __slots__ = ()


@dataclass(frozen=True, **SLOTS)
class MemberStalled(FlowEvent):
    """A tethered member made no progress for stall_timeout while a sender
    waited for it (``on_stall="wait"`` keeps waiting; ``"raise"`` fails the send)."""

    group: str
    member: str
    lag_msgs: int
    lag_bytes: int
    idle: float


@dataclass(frozen=True, **SLOTS)
class MemberUntethered(FlowEvent):
    """The sender stopped waiting for a stalled member (``on_stall="untether"``);
    it keeps receiving and is re-tethered once it has caught up."""

    group: str
    member: str
    lag_msgs: int
    lag_bytes: int
    idle: float


@dataclass(frozen=True, **SLOTS)
class MemberRetethered(FlowEvent):
    group: str
    member: str


@dataclass(frozen=True, **SLOTS)
class MemberForeign(FlowEvent):
    """A member that never spoke the protocol within join_grace: never waited for."""

    group: str
    member: str


@dataclass(frozen=True, **SLOTS)
class StreamGap(FlowEvent):
    """Frames first..last of a stream never arrived (never silent)."""

    group: str
    sender: str
    stream: int
    first: int
    last: int


@dataclass(frozen=True, **SLOTS)
class StreamEnded(FlowEvent):
    """The sender closed its channel (BYE) after frame last."""

    group: str
    sender: str
    stream: int
    last: int


@dataclass(frozen=True, **SLOTS)
class ProtocolErrorEvent(FlowEvent):
    """A malformed frame (only with ``strict=True``; otherwise it is counted)."""

    group: str
    sender: str
    reason: str

    def error(self) -> ProtocolError:
        return ProtocolError(
            FLOW_PROTOCOL_ERROR, f"malformed flow frame from {self.sender}: {self.reason}"
        )


# ---- exceptions ---------------------------------------------------------------


class FlowError(SpreadError):
    """Base of spread.flow's errors; ``args == (code, text)``."""


@dataclass(frozen=True, **SLOTS)
class Laggard:
    member: str
    lag_msgs: int
    lag_bytes: int
    idle: float  # seconds since its last progress


class SendTimeout(FlowError, TimeoutError):
    """A send waited too long for credit; ``laggards`` names who held it."""

    def __init__(self, group: str, laggards: tuple[Laggard, ...], waited: float) -> None:
        names = ", ".join(
            f"{lg.member} ({lg.lag_msgs} msgs / {lg.lag_bytes} bytes behind, "
            f"no progress for {lg.idle:.3g} s)"
            for lg in laggards
        )
        super().__init__(
            FLOW_SEND_TIMEOUT,
            f"send on {group!r} got no credit for {waited:.3g} s; waiting for "
            + (names or "nobody (the daemon has not delivered our own frames)"),
        )
        self.group = group
        self.laggards = laggards


class ProtocolError(FlowError):
    """A malformed frame arrived and the session is strict."""


class MessageTooLarge(MessageTooLong):
    """A message over the channel's max_message_bytes (nothing was sent)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            MESSAGE_TOO_LONG, f"message of {size} bytes is over max_message_bytes ({limit})"
        )
