# spread.Mailbox and spread.connect() (spread/_mailbox.py), for type checkers
# only: the connection's cold half above the backend's MailboxBase, which
# holds the hot methods (_core.pyi).

from types import TracebackType
from typing import AnyStr, Final, Literal, overload

from typing_extensions import Never

from ._core import MailboxBase, _Name
from ._receiver import ThreadedReceiver, _OnOverflow

ACCEPT_SESSION: Final[int]

class Mailbox(MailboxBase[AnyStr]):
    # Mailboxes are made by connect(): the class refuses to be called (no
    # argument is a Never, and one is needed).
    def __init__(self, refused: Never, /, *args: Never, **kwargs: Never) -> None: ...
    def join(self, group: _Name) -> None: ...
    def leave(self, group: _Name) -> None: ...
    def disconnect(self) -> None: ...
    def kill(self) -> None: ...
    def start_receiver(
        self, *, max_backlog_bytes: int | None = None, on_overflow: _OnOverflow = "disconnect"
    ) -> ThreadedReceiver[AnyStr]: ...
    def __enter__(self) -> Mailbox[AnyStr]: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]: ...

# bytes_names picks the type of every name the mailbox returns.
@overload
def connect(
    daemon: _Name = "4803",
    name: _Name | None = "",
    priority: int = 0,
    membership: int = 1,
    *,
    bytes_names: Literal[False] = False,
    timeout: float | None = 10.0,
    socket_buffer: int | None = None,
) -> Mailbox[str]: ...
@overload
def connect(
    daemon: _Name = "4803",
    name: _Name | None = "",
    priority: int = 0,
    membership: int = 1,
    *,
    bytes_names: Literal[True],
    timeout: float | None = 10.0,
    socket_buffer: int | None = None,
) -> Mailbox[bytes]: ...
@overload
def connect(
    daemon: _Name = "4803",
    name: _Name | None = "",
    priority: int = 0,
    membership: int = 1,
    *,
    bytes_names: bool,
    timeout: float | None = 10.0,
    socket_buffer: int | None = None,
) -> Mailbox[str] | Mailbox[bytes]: ...
