"""spread: a fast Python 3 client for the Spread group-communication toolkit.

The classic ``import spread`` (SpreadModule) API: ``connect()`` returns a
Mailbox with join, leave, multicast, multigroup_multicast, receive, poll,
fileno and disconnect; received messages are RegularMsg or MembershipMsg.
"""

from ._backend import core as _core
from ._backend import name as backend
from ._mailbox import Mailbox, connect
from ._messages import GroupId, MembershipMsg
from ._receiver import ThreadedReceiver

# Not Spread constants; the classic module had them.
DEFAULT_BUFFER_SIZE = 10000
DEFAULT_GROUPS_SIZE = 10
RegularMsg = _core.RegularMsg
error_text = _core.error_text
version = _core.version
# The classic module's type names.
MailboxType = Mailbox
RegularMsgType = RegularMsg
MembershipMsgType = MembershipMsg
from ._constants import *  # noqa: F401,F403
from ._constants import __all__ as _constant_names
from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._version import __version__ as __version__

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
