# The types of a backend (spread._core, and spread._cffi_core behind the same
# names: spread/_backend.py's BACKEND_API and INTERNAL_API), for type checkers
# only. A backend is marshalling and hot loops: the public classes are
# subclasses of these (spread.Mailbox of MailboxBase in _mailbox.pyi,
# spread.ThreadedReceiver of ReceiverBase in _receiver.pyi); GroupId and
# MembershipMsg are _messages.pyi's, which the backends build.
#
# Names come back as str, or as bytes with connect(bytes_names=True): the
# classes are generic in that type (AnyStr: str or bytes). The runtime classes
# are not subscriptable, so annotations naming a parameter are written in
# quotes, "spread.Mailbox[str]", or under `from __future__ import annotations`.

import sys
from collections.abc import Iterable, Iterator
from typing import Any, AnyStr, Final, Generic, TypeVar

from ._constants import *  # noqa: F403  (the constants, listed there)
from ._messages import MembershipMsg

# Stub-only aliases (absent at run time, hence the underscores). A payload:
# any buffer (where the checker knows Buffer), or a str, sent as UTF-8.
if sys.version_info >= (3, 12):
    from collections.abc import Buffer as _Buffer

    _Data = _Buffer | str
else:
    _Data = bytes | bytearray | memoryview | str

# A name given to the library (a daemon address, a private or group name).
_Name = str | bytes

_M = TypeVar("_M", bound=MailboxBase[Any])
_R = TypeVar("_R", bound=ReceiverBase[Any])

LOG_LEVELS: Final[dict[str, int]]

class RegularMsg(Generic[AnyStr]):
    @property
    def sender(self) -> AnyStr: ...
    @property
    def groups(self) -> tuple[AnyStr, ...]: ...
    @property
    def message(self) -> bytes: ...
    @property
    def msg_type(self) -> int: ...
    @property
    def endian(self) -> int: ...
    @property
    def service_type(self) -> int: ...

# The connection's hot half (spread.Mailbox adds the cold methods).
class MailboxBase(Generic[AnyStr]):
    @property
    def private_group(self) -> AnyStr: ...
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def poll(self) -> int: ...
    def multicast(self, service_type: int, group: _Name, data: _Data, msg_type: int = 0) -> int: ...
    def multigroup_multicast(
        self, service_type: int, groups: Iterable[_Name], data: _Data, msg_type: int = 0
    ) -> int: ...
    def receive(self) -> RegularMsg[AnyStr] | MembershipMsg[AnyStr]: ...

# The receiver's hot half (spread.ThreadedReceiver adds the cold methods, and
# narrows `mailbox` to the spread.Mailbox it was started on).
class ReceiverBase(Generic[AnyStr]):
    @property
    def mailbox(self) -> MailboxBase[AnyStr]: ...
    def fileno(self) -> int: ...
    def get(self, timeout: float | None = None) -> RegularMsg[AnyStr] | MembershipMsg[AnyStr]: ...
    def get_nowait(self) -> RegularMsg[AnyStr] | MembershipMsg[AnyStr]: ...
    def get_batch(
        self, max_messages: int, timeout: float | None = None
    ) -> list[RegularMsg[AnyStr] | MembershipMsg[AnyStr]]: ...
    def __iter__(self) -> Iterator[RegularMsg[AnyStr] | MembershipMsg[AnyStr]]: ...
    def __next__(self) -> RegularMsg[AnyStr] | MembershipMsg[AnyStr]: ...

class NativeDaemon:
    @property
    def port(self) -> int: ...
    @property
    def control_port(self) -> int: ...
    # Every option explicit: the defaults are spread._daemon_options's.
    def __init__(
        self,
        port: int,
        host: str,
        name: str,
        max_session_messages: int,
        max_session_bytes: int,
        slow_reader_budget: int,
        tcp: bool,
        unix_socket: bool,
        log_level: str,
        control: str | None,
        control_fd: int,
    ) -> None: ...
    @staticmethod
    def c_defaults() -> dict[str, int | str | bool]: ...
    def stats(self) -> dict[str, int]: ...
    def run(self, stop_fd: int) -> None: ...
    def close(self) -> None: ...

def version() -> tuple[int, int, int]: ...
def error_text(code: int) -> str: ...

# What spread.connect() and spread.ThreadedReceiver build on, with arguments
# already checked: (ACCEPT_SESSION, a cls over the connection) or (the
# library's error code, None); a cls holding a receiver started on mb.
def connect_raw(
    cls: type[_M],
    d: bytes,
    nm: bytes,
    prio: int,
    membership: bool,
    as_bytes: bool,
    secs: float | None,
    sbuf: int,
) -> tuple[int, _M | None]: ...
def start_receiver(cls: type[_R], mb: MailboxBase[Any], limit: int, block: bool) -> _R: ...

# The benchmark loops (spread.bench): C loops over a mailbox.
def c_multicast(
    m: MailboxBase[AnyStr], group: _Name, size: int, count: int, last_type: int = 0
) -> float: ...
def c_self(m: MailboxBase[AnyStr], group: _Name, size: int, count: int, window: int) -> float: ...
def c_receive(m: MailboxBase[AnyStr], end_type: int) -> tuple[int, float, int]: ...
def c_ping(
    m: MailboxBase[AnyStr], peer_group: _Name, size: int, warmup: int, rounds: int
) -> list[float]: ...
def c_pong(m: MailboxBase[AnyStr], reply_group: _Name, end_type: int) -> int: ...

# The C library's decoders over a received membership body (for the vector tests).
def _memb_info(service_type: int, body: bytes) -> dict[str, Any]: ...
def _vs_sets_info(body: bytes, capacity: int) -> dict[str, Any]: ...
