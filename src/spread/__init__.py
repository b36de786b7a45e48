"""spread: a fast Python 3 client for the Spread group-communication toolkit.

The classic ``import spread`` (SpreadModule) API: ``connect()`` returns a
Mailbox with join, leave, multicast, multigroup_multicast, receive, poll,
fileno and disconnect; received messages are RegularMsg or MembershipMsg.
"""

from . import _core
from ._core import (  # noqa: F401  (the classic module surface)
    DEFAULT_BUFFER_SIZE,
    DEFAULT_GROUPS_SIZE,
    GroupId,
    Mailbox,
    MailboxType,
    MembershipMsg,
    MembershipMsgType,
    RegularMsg,
    RegularMsgType,
    ThreadedReceiver,
    connect,
    error_text,
    version,
)
from ._constants import *  # noqa: F401,F403
from ._constants import __all__ as _constant_names
from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names

__version__ = "0.1.0"
backend = "cython"

__all__ = [
    "connect",
    "version",
    "error_text",
    "Mailbox",
    "MailboxType",
    "RegularMsg",
    "RegularMsgType",
    "MembershipMsg",
    "MembershipMsgType",
    "GroupId",
    "ThreadedReceiver",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_GROUPS_SIZE",
    "backend",
    *_constant_names,
    *_error_names,
]
