# The types of `import spread`, for type checkers: __init__.py picks its
# backend at run time (spread._backend), which a checker cannot follow, so
# this stub names the public classes of the Python layer (_mailbox.pyi,
# _receiver.pyi, _messages.pyi) and what every backend provides (_core.pyi).

from typing import Final, Literal, TypeAlias

from ._constants import *  # noqa: F403  (the constants, listed there)
from ._core import RegularMsg as RegularMsg
from ._core import error_text as error_text
from ._core import version as version
from ._errors import BacklogOverflow as BacklogOverflow
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectionRejected as ConnectionRejected
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import CouldNotConnect as CouldNotConnect
from ._errors import Empty as Empty
from ._errors import IllegalGroup as IllegalGroup
from ._errors import IllegalMessage as IllegalMessage
from ._errors import IllegalService as IllegalService
from ._errors import IllegalSession as IllegalSession
from ._errors import IllegalSpread as IllegalSpread
from ._errors import MessageTooLong as MessageTooLong
from ._errors import NetErrorOnSession as NetErrorOnSession
from ._errors import ReceiverClosed as ReceiverClosed
from ._errors import SpreadError as SpreadError
from ._errors import error as error
from ._mailbox import Mailbox as Mailbox
from ._mailbox import connect as connect
from ._messages import GroupId as GroupId
from ._messages import MembershipMsg as MembershipMsg
from ._receiver import ThreadedReceiver as ThreadedReceiver

backend: Final[Literal["cython", "cffi"]]
# Not Spread constants; the classic module had them.
DEFAULT_BUFFER_SIZE: Final[int]
DEFAULT_GROUPS_SIZE: Final[int]
# The classic module's type names.
MailboxType: TypeAlias = Mailbox
RegularMsgType: TypeAlias = RegularMsg
MembershipMsgType: TypeAlias = MembershipMsg
__version__: Final[str]

# Every exception of _errors.py but error_class, which says it returns a `type`:
# the class it returns is always a SpreadError.
def error_class(code: int) -> type[SpreadError]: ...
