# spread.ThreadedReceiver (spread/_receiver.py), for type checkers only: the
# receiver's cold half above the backend's ReceiverBase, which holds the hot
# methods (_core.pyi). They return the messages of the receiver's name type;
# its mailbox is the spread.Mailbox it was started on.

from types import TracebackType
from typing import AnyStr, Final, Literal, TypedDict

from ._core import ReceiverBase
from ._mailbox import Mailbox

# Stub-only (absent at run time).
_OnOverflow = Literal["disconnect", "block"]

# The fields of the backend's stats tuple, in order.
STATS: Final[tuple[str, ...]]

class _ReceiverStats(TypedDict):
    received: int
    received_by_consumers: int
    delivered: int
    backlog_messages: int
    backlog_bytes: int
    peak_backlog_messages: int
    peak_backlog_bytes: int
    drain_rate: float

class ThreadedReceiver(ReceiverBase[AnyStr]):
    def __init__(
        self,
        mailbox: Mailbox[AnyStr],
        *,
        max_backlog_bytes: int | None = None,
        on_overflow: _OnOverflow = "disconnect",
    ) -> None: ...
    @property
    def mailbox(self) -> Mailbox[AnyStr]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def qsize(self) -> int: ...
    @property
    def backlog_bytes(self) -> int: ...
    @property
    def stats(self) -> _ReceiverStats: ...
    def __enter__(self) -> ThreadedReceiver[AnyStr]: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]: ...
