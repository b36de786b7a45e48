"""spread.flow: end-to-end flow control for Spread groups (issue 15).

This package holds the sans-IO protocol core (``FlowCore``, events in,
actions out) and the sync front end that drives it over a mailbox
(``connect``, ``Session``, ``Channel``). See DESIGN.md beside this file.
"""

from ._core import FlowCore
from ._events import (
    FLOW_DATA_LOSS,
    FLOW_PROTOCOL_ERROR,
    FLOW_SEND_TIMEOUT,
    DataLoss,
    FlowError,
    FlowEvent,
    FlowMsg,
    Laggard,
    MemberForeign,
    MemberRetethered,
    MemberStalled,
    MemberUntethered,
    MessageTooLarge,
    Multicast,
    ProtocolError,
    ProtocolErrorEvent,
    SendTimeout,
    StreamEnded,
    StreamGap,
)
from ._frame import FLOW_MSG_TYPE, FrameError
from ._receiver import Receiver, Stream
from ._reconnect import Backoff, Reconnected, ReconnectFailed
from ._retention import RetentionRing, RetentionStore
from ._sender import ACTIVE, FOREIGN, JOINING, UNTETHERED, Member, SenderChannel
from ._session import Channel, Session, SessionClosed, connect

__all__ = [
    "ACTIVE",
    "Backoff",
    "Channel",
    "DataLoss",
    "FLOW_DATA_LOSS",
    "FLOW_MSG_TYPE",
    "FLOW_PROTOCOL_ERROR",
    "FLOW_SEND_TIMEOUT",
    "FOREIGN",
    "JOINING",
    "UNTETHERED",
    "FlowCore",
    "FlowError",
    "FlowEvent",
    "FlowMsg",
    "FrameError",
    "Laggard",
    "Member",
    "MemberForeign",
    "MemberRetethered",
    "MemberStalled",
    "MemberUntethered",
    "MessageTooLarge",
    "Multicast",
    "ProtocolError",
    "ProtocolErrorEvent",
    "Receiver",
    "ReconnectFailed",
    "Reconnected",
    "RetentionRing",
    "RetentionStore",
    "SendTimeout",
    "Session",
    "SessionClosed",
    "SenderChannel",
    "Stream",
    "StreamEnded",
    "StreamGap",
    "connect",
]
