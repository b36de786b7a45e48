"""What the flow core hands out: the logical message, the events, the
actions for the front end to perform, and the exceptions it raises."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._errors import MessageTooLong, SpreadError
from ._fast import FlowMsgBase, untrack_instances

# Client-side codes, outside sp.h's range (as spx.h's -1003, -1004 are).
FLOW_SEND_TIMEOUT = -1101
FLOW_PROTOCOL_ERROR = -1102
FLOW_DATA_LOSS = -1103
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


class FlowMsg(FlowMsgBase):
    """One logical message of a flow stream, with the classic RegularMsg
    attributes (``sender``, ``groups``, ``message``, ``msg_type``,
    ``service_type``, ``endian``) plus ``group``, ``stream``, ``seq`` (the
    wire frame's number in the stream) and ``index`` (its place in a batch).
    Hand it back to ``FlowCore.consumed()`` once the application took it.

    Only what differs between the messages of one frame is stored here; the
    rest is read from the frame's record (one per frame, shared)."""

    __slots__ = ()  # (the fields are FlowMsgBase's: message, msg_type, index,
    # _record, the frame's _Record with sender, group, stream, seq ..., and
    # _open, not yet consumed)

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


# Messages the backend's C batch decoder makes stay out of the garbage
# collector (nothing they reach leads back to them: _flow_fast.pxi).
untrack_instances(FlowMsg)


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
class StreamEnded(FlowEvent):
    """The sender's stream ended after frame ``last``: ``clean`` when it
    closed its channel (BYE); otherwise the sender left without closing it,
    never came back from a disconnect or partition within
    ``orphan_timeout``, or came back without it (a restarted process)."""

    group: str
    sender: str
    stream: int
    last: int
    clean: bool = True


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

    def __init__(
        self, group: str, laggards: tuple[Laggard, ...], waited: float, why: str = ""
    ) -> None:
        names = ", ".join(
            f"{lg.member} ({lg.lag_msgs} msgs / {lg.lag_bytes} bytes behind, "
            f"no progress for {lg.idle:.3g} s)"
            for lg in laggards
        )
        super().__init__(
            FLOW_SEND_TIMEOUT,
            f"send on {group!r} got no credit for {waited:.3g} s; "
            + (
                why
                or "waiting for "
                + (names or "nobody (the daemon has not delivered our own frames)")
            ),
        )
        self.group = group
        self.laggards = laggards


class DataLoss(FlowError, FlowEvent):
    """Frames ``first``..``last`` (inclusive) of ``sender``'s ``stream`` on
    ``group`` can't be had: they were never received and the sender no
    longer retains them (or is gone). In the stream's place of those frames;
    never silent. An event (``receive()`` hands it out) or, with
    ``on_loss="raise"``, raised by ``receive()`` in that place."""

    def __init__(self, group: str, sender: str, stream: int, first: int, last: int) -> None:
        super().__init__(
            FLOW_DATA_LOSS,
            f"frames {first}..{last} of {sender}'s stream {stream:#x} on {group!r} are lost",
        )
        self.group = group
        self.sender = sender
        self.stream = stream
        self.first = first
        self.last = last

    def _key(self) -> tuple[str, str, int, int, int]:
        return (self.group, self.sender, self.stream, self.first, self.last)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"DataLoss(group={self.group!r}, sender={self.sender!r}, stream={self.stream:#x}, "
            f"first={self.first}, last={self.last})"
        )

    def __reduce__(self) -> Any:
        return (type(self), self._key())


#: The name of the loss event before recovery (a gap was all a receiver could tell).
StreamGap = DataLoss


class ProtocolError(FlowError):
    """A malformed frame arrived and the session is strict."""


class MessageTooLarge(MessageTooLong):
    """A message over the channel's max_message_bytes (nothing was sent)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            MESSAGE_TOO_LONG, f"message of {size} bytes is over max_message_bytes ({limit})"
        )
