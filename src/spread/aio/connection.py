"""Connection: one spread Mailbox driven by an asyncio loop."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import _args
from .._mailbox import Mailbox
from .._receiver import ThreadedReceiver
from . import fast
from .errors import Closed
from .inbox import Inbox
from .reader import Reader
from .subscription import DEFAULT_MAXSIZE, Subscription
from .threads import run_in_thread
from .writer import DEFAULT_MAX_SEND_BYTES, Writer
from .writer import SPX_PARTIAL as _PARTIAL

DEFAULT_PREFETCH = 1024
DEFAULT_CLOSE_TIMEOUT = 5.0


class Connection(Inbox, fast.ConnectionBase):
    """A Spread connection for asyncio code: made by spread.aio.connect(),
    or over an existing Mailbox with Connection.from_mailbox().

    Receiving: receive(timeout=), receive_batch(max_messages, timeout=),
    ``async for``, receive_nowait(); sending: join, leave, multicast,
    multigroup_multicast (awaitable: they wait only while the writer queue
    is full) and their *_nowait forms (WouldBlock instead of waiting);
    subscribe(group) for one group's messages apart; aclose().
    Bound to the loop that made it.
    """

    def __init__(
        self,
        mailbox: Any,
        receiver: Any = None,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        own: bool = True,
    ) -> None:
        if not isinstance(mailbox, Mailbox):
            raise TypeError(f"Connection needs a spread.Mailbox, not {type(mailbox).__name__}")
        if type(prefetch) is not int or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0, not {prefetch!r}")
        loop = asyncio.get_running_loop()
        if receiver is None:
            receiver = mailbox.start_receiver()
        elif not isinstance(receiver, ThreadedReceiver) or receiver.mailbox is not mailbox:
            raise TypeError("receiver must be a ThreadedReceiver of this mailbox")
        self._mbox = mailbox
        self._rx = receiver
        self._own = own
        self._writer = Writer(loop, mailbox, max_send_bytes)
        self._closing: asyncio.Future | None = None
        self._bytes_names = isinstance(mailbox.private_group, bytes)
        super().__init__(Reader(loop, receiver), prefetch)
        self._reader.attach(self)

    @classmethod
    def from_mailbox(cls, mailbox: Any, **options: Any) -> Connection:
        """Drives an existing (sync) Mailbox from this loop: starts a
        ThreadedReceiver on it (or takes receiver=, one already started).
        own=True (the default): aclose() disconnects the mailbox; own=False
        closes only what this made. While wrapped, do not call the
        mailbox's own sends from the loop's thread (another thread may)."""
        return cls(mailbox, **options)

    # -- properties ----------------------------------------------------------------
    @property
    def mailbox(self) -> Any:
        """The spread.Mailbox underneath."""
        return self._mbox

    @property
    def private_group(self) -> Any:
        return self._mbox.private_group

    @property
    def closed(self) -> bool:
        """True once aclose() has begun."""
        return self._closing is not None

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted by sends and not yet written to the socket."""
        return self._writer.queued_bytes

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pending={self.pending}"
        return f"<spread.aio.Connection {self.private_group!r} {state}>"

    # -- sending -------------------------------------------------------------------
    def multicast_nowait(self, service_type: Any, group: Any, data: Any, msg_type: Any = 0) -> int:
        """Sends (or queues) data to a group; WouldBlock if the queue is full."""
        w = self._writer
        if w.direct:
            r = w.nowait_multicast(service_type, group, data, msg_type)
            if r >= 0:
                return r
            return w.after_multicast(r, service_type, group, data, msg_type)
        return w.multicast(service_type, group, data, msg_type)

    # await multicast(...): fast.py's, in C where the backend has it (here
    # too, so that it is documented with the rest)
    multicast = fast.ConnectionBase.multicast

    def multigroup_multicast_nowait(
        self, service_type: Any, groups: Any, data: Any, msg_type: Any = 0
    ) -> int:
        """multigroup_multicast() or WouldBlock."""
        return self._writer.multigroup_multicast(service_type, groups, data, msg_type)

    async def multigroup_multicast(
        self, service_type: Any, groups: Any, data: Any, msg_type: Any = 0
    ) -> int:
        """Sends one message to several groups, as multicast() does."""
        w = self._writer
        if w.direct:
            r = w._mbox._multigroup_multicast_nowait(service_type, groups, data, msg_type)
            if r >= 0:
                return r
            if r == _PARTIAL:
                return w.after_multigroup(r, service_type, groups, data, msg_type)
        return await w.send("g", (service_type, groups, data, msg_type))

    def join_nowait(self, group: Any) -> None:
        self._writer.request(group, True)

    def leave_nowait(self, group: Any) -> None:
        self._writer.request(group, False)

    async def join(self, group: Any) -> None:
        """Joins a group (the request is committed when this returns; its
        membership notice arrives as a message)."""
        self._writer.request(group, True)

    async def leave(self, group: Any) -> None:
        """Leaves a group."""
        self._writer.request(group, False)

    # -- subscriptions -------------------------------------------------------------
    def subscribe(
        self, group: Any, *, maxsize: int = DEFAULT_MAXSIZE, join: bool = False
    ) -> Subscription:
        """The messages of one group, apart from this stream, while the
        subscription is open: ``async with conn.subscribe("g") as sub:
        async for msg in sub``. join=True also joins the group on entry
        and leaves it on exit."""
        if self.closed:
            raise Closed()
        b = _args.group_bytes(group)
        key = b if self._bytes_names else b.decode(_args.NAME_ENCODING, "surrogateescape")
        if type(maxsize) is not int or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, not {maxsize!r}")
        sub = Subscription(self, group, key, maxsize, join)
        sub._open()
        return sub

    # -- closing ---------------------------------------------------------------------
    async def aclose(self, *, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Closes the connection; idempotent, and safe from any task of the loop.

        Every task waiting on it raises Closed at once; what was already
        sent or queued is written first (for at most timeout seconds), then
        the reader and writer are removed from the loop and only then are
        the descriptors closed (in a thread: a disconnect may wait). Not
        cancellable: a cancelled aclose() still completes in the background."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown(timeout))
        await asyncio.shield(self._closing)

    async def _shutdown(self, timeout: float | None) -> None:
        reader, writer = self._reader, self._writer
        writer._closed = True  # no new sends
        writer._update_direct()
        writer._space.wake_all()
        reader.close()  # removes the reader; receive waiters raise Closed
        try:
            await writer.flush(timeout)
        finally:
            writer.close()  # removes the writer
            if self._own:
                await run_in_thread(self._mbox.disconnect)
            else:
                self._rx.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
