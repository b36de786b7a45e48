# The types of `import spread`, for type checkers: __init__.py picks its
# backend at run time (spread._backend), which a checker cannot follow, so
# this stub names what every backend provides (typed in _core.pyi).

from typing import Final, Literal

from ._constants import *
from ._core import DEFAULT_BUFFER_SIZE as DEFAULT_BUFFER_SIZE
from ._core import DEFAULT_GROUPS_SIZE as DEFAULT_GROUPS_SIZE
from ._core import GroupId as GroupId
from ._core import Mailbox as Mailbox
from ._core import MailboxType as MailboxType
from ._core import MembershipMsg as MembershipMsg
from ._core import MembershipMsgType as MembershipMsgType
from ._core import RegularMsg as RegularMsg
from ._core import RegularMsgType as RegularMsgType
from ._core import ThreadedReceiver as ThreadedReceiver
from ._core import connect as connect
from ._core import error_text as error_text
from ._core import version as version
from ._errors import SpreadError as SpreadError
from ._errors import error as error
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import IllegalSession as IllegalSession
from ._errors import NetErrorOnSession as NetErrorOnSession
from ._errors import ConnectionRejected as ConnectionRejected
from ._errors import CouldNotConnect as CouldNotConnect
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import IllegalSpread as IllegalSpread
from ._errors import IllegalGroup as IllegalGroup
from ._errors import IllegalService as IllegalService
from ._errors import IllegalMessage as IllegalMessage
from ._errors import MessageTooLong as MessageTooLong
from ._errors import BacklogOverflow as BacklogOverflow
from ._errors import ReceiverClosed as ReceiverClosed
from ._errors import Empty as Empty

backend: Final[Literal["cython", "cffi"]]
__version__: Final[str]

# Every exception of _errors.py but error_class, which says it returns a `type`:
# the class it returns is always a SpreadError.
def error_class(code: int) -> type[SpreadError]: ...
