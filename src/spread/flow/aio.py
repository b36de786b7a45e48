"""spread.flow for asyncio: flow-controlled channels over a spread.aio
connection, driven by the same sans-IO core (FlowCore) as the sync Session.

    async with spread.flow.aio.connect("4803", "alice", groups=["prices"]) as s:
        ch = await s.channel("prices", window=256)
        await ch.send(b"tick")          # waits for credit, never blocks the loop
        await ch.wait_consumed()
        async for msg in s:             # FlowMsg, flow events, other messages
            ...

How it is driven: one task per session (the feed task) takes what the
connection's reader has received, feeds the core, performs its actions and
ticks it at its deadlines; sends and receives are coroutines of the
caller's tasks that wait on wake-up futures (spread.aio's Waiters: no
result is carried by one, so a cancelled wait never loses or duplicates
anything). The core's actions go to the connection's writer in order;
when its queue is full they wait in the session's own backlog, which a
flusher task hands over as space returns, still in order. Everything runs
on the loop's thread: no lock.

Cancellation: a cancelled ``send`` accepted nothing (the core takes a
message only in the step that returns); a cancelled ``receive`` took
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from contextlib import AbstractContextManager
from typing import Any

from .._errors import SpreadError
from ..aio import Closed, WouldBlock
from ..aio import connect as aio_connect
from ..aio.connection import Connection
from ..aio.waiters import Waiters
from ._core import FlowCore
from ._reconnect import Backoff, ReconnectFailed, Reconnecting, policy
from ._sender import check_group
from ._session import (
    _CORE_OPTIONS,
    ChannelView,
    SessionChecks,
    SessionClosed,
    _deadline,
    check_on_loss,
    short_name,
    take,
)

_IDLE_WAKE = 0.2  # a waiting sender looks again at least this often
_BATCH = 256  # raw messages the feed task takes per step
_now = time.monotonic


class AsyncChannel(ChannelView):
    """One sending stream on one group (made by :meth:`AsyncSession.channel`):
    ``await send()`` waits, without blocking the loop, while the slowest
    tethered member is ``window`` frames or ``window_bytes`` bytes behind."""

    _session: AsyncSession

    def _guard(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()  # one thread: the loop's

    def send_nowait(self, data: Any, msg_type: int = 0) -> None:
        """Accept the message now, or raise WouldBlock (no credit and the
        accumulator is full)."""
        s = self._session
        s._check_usable()
        if not self._ch.offer(data, msg_type, _now()):
            raise WouldBlock(f"no credit on {self.group!r}: {self._ch.laggards(_now())}")
        s._perform()

    async def send(self, data: Any, msg_type: int = 0, timeout: float | None = None) -> None:
        """Send one message; waits for credit (``timeout``: SendTimeout
        naming the laggards). Returned: accepted; cancelled or timed out:
        nothing of it was accepted."""
        s = self._session
        ch = self._ch
        s._check_usable()
        if ch.offer(data, msg_type, _now()):
            s._perform()
            return
        deadline = _deadline(timeout)
        start = _now()
        while True:
            s._perform()
            await self._wait(start, deadline)
            s._check_usable()
            if ch.offer(data, msg_type, _now()):
                s._perform()
                return

    async def send_many(
        self, items: Iterable[Any], msg_type: int = 0, timeout: float | None = None
    ) -> int:
        """Send many messages (payloads or (payload, msg_type) pairs); those
        that find credit short leave together as batches. On SendTimeout or
        cancellation the messages accepted so far stay accepted: the
        exception's ``sent`` says how many (a count is returned otherwise)."""
        s = self._session
        offer = self._ch.offer
        deadline = _deadline(timeout)
        start = now = _now()
        sent = 0
        s._check_usable()
        try:
            for item in items:
                if type(item) is tuple:
                    data, mt = item
                else:
                    data, mt = item, msg_type
                while not offer(data, mt, now):
                    s._perform()
                    await self._wait(start, deadline)
                    s._check_usable()
                    now = _now()
                sent += 1
        except (SpreadError, asyncio.CancelledError) as e:
            e.sent = sent  # type: ignore[union-attr]
            raise
        finally:
            s._perform()
        return sent

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every accepted message is handed to the connection's
        writer (linger ignored)."""
        ch = self._ch
        await self._until(lambda: not ch.pending and not self._session._backlog, timeout)

    async def wait_consumed(self, timeout: float | None = None) -> None:
        """Wait until every tethered member (and our own delivery) has
        consumed everything sent so far."""
        ch = self._ch
        await self._until(
            lambda: not ch.pending and all(m.seq == ch.last_seq for m in ch.counted()), timeout
        )

    async def _until(self, done: Callable[[], bool], timeout: float | None) -> None:
        s = self._session
        deadline = _deadline(timeout)
        start = _now()
        while True:
            s._check_usable()
            self._ch.flush(_now())
            s._perform()
            if done():
                return
            await self._wait(start, deadline)

    async def _wait(self, start: float, deadline: float) -> None:
        """One wait for something that may bring credit: SendTimeout past
        the deadline, the stall error with on_stall="raise"."""
        s = self._session
        ch = self._ch
        now = _now()
        if now >= deadline:
            outage = s._outage
            raise ch.send_timeout(now, now - start, None if outage is None else now - outage.since)
        err = ch.stalled(now)
        if err is not None:
            raise err
        until = min(deadline, s.core.next_deadline(), now + _IDLE_WAKE)
        await s._changed.wait(s._loop, s._loop.time() + max(0.0, until - now))
        s._tick()

    async def close(self, timeout: float | None = None, *, flush: bool = True) -> None:
        """flush(timeout) (``flush=False``: drop what is pending), then BYE."""
        if flush and not self._ch.closed:
            await self.flush(timeout)
        if not self._ch.closed:
            self._session.core.close_channel(self._ch, _now())
            self._session._perform()


class AsyncSession(SessionChecks):
    """A flow-controlled session over a spread.aio Connection (str names,
    membership notices on): channels per group, and ``receive()``,
    ``receive_batch()``, ``async for`` handing out FlowMsg, flow events and
    the connection's other messages unchanged, in order. A FlowMsg's
    consumption is reported when a receive hands it out.

    Make one with ``spread.flow.aio.connect(...)`` or over a Connection:
    ``AsyncSession(conn)`` (``owns=True``: aclose() closes the connection
    too). It must be made, and used, on the connection's loop."""

    def __init__(
        self,
        conn: Connection,
        *,
        strict: bool = False,
        owns: bool = False,
        reconnect: Backoff | bool | None = None,
        connect: Callable[[], Awaitable[Connection]] | None = None,
        on_loss: str = "event",
        positions: Iterable[tuple[str, str, int, int, int]] = (),
        **core_options: Any,
    ) -> None:
        check_on_loss(on_loss)
        self.backoff = policy(reconnect, connect)
        unknown = set(core_options) - set(_CORE_OPTIONS)
        if unknown:
            raise TypeError(f"AsyncSession() got unknown option(s): {', '.join(sorted(unknown))}")
        if not isinstance(conn, Connection):
            raise TypeError(
                f"AsyncSession needs a spread.aio Connection, not {type(conn).__name__}"
            )
        me = conn.private_group
        if not isinstance(me, str):
            raise TypeError("spread.flow needs a connection with str names (bytes_names=False)")
        self.conn = conn
        self.core = FlowCore(me, strict=strict, **core_options)
        self.core.restore(positions, _now())
        self.strict = bool(strict)
        self.on_loss = on_loss
        self._connector = connect
        self._outage: Reconnecting | None = None  # while the connection is made again
        self._next_attempt = 0.0
        self._lost_error = ""
        self._loop = asyncio.get_running_loop()
        self._owns = owns
        self._ready: deque[Any] = deque()
        self._readers = Waiters()  # tasks waiting for something to receive
        self._changed = Waiters()  # tasks waiting for credit, a flush, consumption
        self._backlog: deque[tuple[str, Any]] = deque()  # actions the writer had no room for
        self._flusher: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._joined: set[str] = set()
        self._channels: list[AsyncChannel] = []
        self._task = self._loop.create_task(self._run(), name=f"spread.flow.aio {me}")

    @property
    def private_group(self) -> str:
        return self.core.me

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- groups and channels --------------------------------------------------

    async def join(self, group: str) -> None:
        """Join a flow group: our HELLO goes first, so members count us at once."""
        self._check_usable()
        check_group(group)
        self._joined.add(group)
        if self._outage is None:  # (else the reconnect joins it, HELLO first)
            self.core.join(group, _now())
            self._perform()
            self._request("j", group)

    async def leave(self, group: str) -> None:
        self._check_usable()
        self.core.leave(group, _now())
        self._joined.discard(group)
        if self._outage is None:
            self._perform()
            self._request("l", group)

    async def channel(self, group: str, **options: Any) -> AsyncChannel:
        """A sending channel on group (joined if need be); the options
        are Session.channel()'s."""
        self._check_usable()
        ch = self._new_channel(group, _now(), True, options)
        self._perform()
        out = AsyncChannel(self, ch)
        self._channels.append(out)
        if group not in self._joined:
            await self.join(group)  # (after the channel: our HELLO names its stream)
        return out

    # ---- receiving ----------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Any:
        """The next message (FlowMsg, FlowEvent, or the connection's
        RegularMsg / MembershipMsg); TimeoutError after timeout seconds;
        SessionClosed (or the connection's error) once nothing is left."""
        return (await self.receive_batch(1, timeout))[0]

    async def receive_batch(self, max_messages: int = 1024, timeout: float | None = None) -> list:
        """1 to max_messages messages: those ready, or the first to come."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int):
            raise TypeError("max_messages must be an int")
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        deadline = None if timeout is None else self._loop.time() + timeout
        while not self._ready:
            self._check_readable()
            if not await self._readers.wait(self._loop, deadline):
                raise TimeoutError("no message arrived within the time-out")
        try:
            return take(self._ready, max_messages, self.core, self.strict, self.on_loss == "raise")
        finally:
            self._perform()

    def __aiter__(self) -> AsyncSession:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except SessionClosed:
            raise StopAsyncIteration from None

    def positions(self) -> list[tuple[str, str, int, int, int]]:
        """A checkpoint of what was taken (as Session.positions())."""
        return self.core.positions()

    def backlog(self) -> dict[str, int]:
        """``ready`` items not yet taken, the connection's ``pending``
        messages, and the flow streams' unconsumed ``frames`` and ``bytes``."""
        streams = self.core.receiver.streams.values()
        return {
            "raw": self.conn.pending,
            "ready": len(self._ready),
            "frames": sum(st.unconsumed_frames for st in streams),
            "bytes": sum(st.unconsumed_bytes for st in streams),
        }

    # ---- closing ----------------------------------------------------------------

    async def aclose(self, timeout: float | None = 5.0) -> None:
        """Channels send what they accepted and say BYE, the backlog is
        handed to the writer (for at most timeout seconds in all), the feed
        task stops; with owns=True the connection is closed too. Idempotent;
        waiters raise SessionClosed."""
        if self._closed:
            return
        deadline = _deadline(timeout)
        for ach in self._to_flush():
            try:
                await ach.flush(max(0.0, deadline - _now()))
            except SpreadError:
                break  # (a timeout, or the connection failed: BYE what went)
        if self._error is None:
            for ch in self._channels:
                if not ch._ch.closed:
                    self.core.close_channel(ch._ch, _now())
            try:
                self._perform()
                if self._flusher is not None:
                    await asyncio.wait_for(asyncio.shield(self._flusher), timeout)
            except (SpreadError, asyncio.TimeoutError):
                pass
        self._closed = True
        self._wake_all()
        for task in (self._task, self._flusher):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._owns:
            await self.conn.aclose()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<spread.flow.aio.AsyncSession {self.private_group} {state}>"

    # ---- the engine -----------------------------------------------------------------

    def _wake_all(self) -> None:
        self._readers.wake_all()
        self._changed.wake_all()

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self._wake_all()

    def _perform(self) -> None:
        """The core's actions to the writer, in order; what it has no room
        for waits in the backlog (and everything after it, behind it)."""
        actions = self.core.actions()
        if not actions or self._outage is not None:
            return  # (in an outage: nowhere to send them; receivers ask again)
        backlog = self._backlog
        conn = self.conn
        for a in actions:
            if not backlog:
                try:
                    conn.multicast_nowait(a.service_type, a.group, a.data, a.msg_type)
                    continue
                except WouldBlock:
                    pass
                except (SpreadError, Closed) as e:
                    if self._lost(e):
                        return
                    self._fail(e)
                    raise
            backlog.append(("m", a))
        self._start_flusher()

    def _request(self, kind: str, group: str) -> None:
        """A join or leave, in order behind any backlog."""
        if not self._backlog:
            try:
                (self.conn.join_nowait if kind == "j" else self.conn.leave_nowait)(group)
                return
            except WouldBlock:
                pass
        self._backlog.append((kind, group))
        self._start_flusher()

    def _start_flusher(self) -> None:
        if self._backlog and (self._flusher is None or self._flusher.done()):
            self._flusher = self._loop.create_task(self._flush_backlog())

    async def _flush_backlog(self) -> None:
        conn = self.conn
        backlog = self._backlog
        try:
            while backlog:
                kind, x = backlog[0]
                if kind == "m":
                    await conn.multicast(x.service_type, x.group, x.data, x.msg_type)
                elif kind == "j":
                    await conn.join(x)
                else:
                    await conn.leave(x)
                backlog.popleft()  # committed (a cancelled call sent nothing)
                self._changed.wake_all()
        except (SpreadError, Closed) as e:
            if not self._lost(e):
                self._fail(e)

    def _tick(self) -> None:
        now = _now()
        if now >= self.core.next_deadline():
            self._ready.extend(self.core.tick(now))
            self._perform()
            self._wake()

    def _wake(self) -> None:
        if self._ready:
            self._readers.wake(len(self._ready))
        self._changed.wake_all()

    # ---- reconnecting ------------------------------------------------------------

    def _lost(self, error: BaseException) -> bool:
        """The connection failed: True if the session reconnects (an outage
        begins, or is under way; the feed task makes the attempts), False if
        the error is the session's."""
        if self._outage is not None:
            return True
        if self.backoff is None or self._closed or not isinstance(error, SpreadError):
            return False
        now = _now()
        try:
            self._outage, self._next_attempt = Reconnecting.begin(self.backoff, error, now)
        except ReconnectFailed as e:
            self._fail(e)
            return True
        self._lost_error = str(error)
        self._backlog.clear()
        self.core.on_connection_lost(now)
        self._changed.wake_all()
        return True

    async def _reconnect(self) -> None:
        """Attempts until connected again (the groups joined again, HELLO
        first, and a Reconnected event handed out) or ReconnectFailed."""
        outage = self._outage
        assert outage is not None and self._connector is not None
        with contextlib.suppress(Exception):
            await self.conn.aclose()
        while not self._closed:
            delay = self._next_attempt - _now()
            if delay > 0:
                await asyncio.sleep(delay)  # the backoff's wait
            try:
                conn = await self._connector()
            except Exception as e:  # (not retryable unless a SpreadError says so)
                try:
                    self._next_attempt = outage.failed(e, _now())
                except ReconnectFailed as rf:
                    self._outage = None
                    self._fail(rf)
                    return
                continue
            if self._closed:
                await conn.aclose()
                return
            self.conn = conn
            self._outage = None
            now = _now()
            self._ready.append(outage.succeeded(now, self._lost_error))
            for group in sorted(self._joined):
                self.core.join(group, now)
                self._perform()
                self._request("j", group)
            self._wake()
            return

    async def _run(self) -> None:
        """The feed task: the connection's messages into the core (and, in
        an outage, the attempts to connect again)."""
        core = self.core
        ready = self._ready
        try:
            while not self._closed:
                if self._outage is not None:
                    await self._reconnect()
                    continue
                conn = self.conn
                wait = min(core.next_deadline() - _now(), _IDLE_WAKE)
                try:
                    batch = await conn.receive_batch(_BATCH, timeout=max(0.0, wait))
                except TimeoutError:
                    batch = []
                except (SpreadError, Closed) as e:
                    if isinstance(e, SpreadError) and self._lost(e):
                        continue
                    raise
                now = _now()
                for msg in batch:
                    ready.extend(core.on_message(msg, now))
                if now >= core.next_deadline():
                    ready.extend(core.tick(now))
                self._perform()
                self._wake()
        except Closed:
            if not self._closed:
                self._fail(SessionClosed(-11, "the session's connection was closed"))
        except SpreadError as e:  # the connection failed
            self._fail(e)


class _Connecting:
    """What connect() returns: await it, or ``async with`` it."""

    def __init__(self, args: tuple, kwargs: dict, options: dict, groups: tuple) -> None:
        self._call = (args, kwargs, options, groups)
        self._session: AsyncSession | None = None

    async def _open(self) -> AsyncSession:
        args, kwargs, options, groups = self._call
        conn = await aio_connect(*args, **kwargs)
        again_args = (args[0], short_name(conn.private_group), *args[2:])

        def again() -> Awaitable[Connection]:
            return aio_connect(*again_args, **kwargs)

        options = {"reconnect": True, **options}
        try:
            session = AsyncSession(conn, owns=True, connect=again, **options)
            for g in groups:
                await session.join(g)
        except BaseException:
            await conn.aclose()
            raise
        return session

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._open()
        return self._session

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.aclose()


def connect(
    daemon: str = "4803",
    name: str = "",
    *,
    groups: Iterable[str] = (),
    priority: int = 0,
    timeout: float | None = 10.0,
    socket_buffer: int | None = None,
    max_send_bytes: int | None = None,
    **options: Any,
) -> _Connecting:
    """spread.aio.connect() (membership notices on, str names), then an
    AsyncSession over it that owns the connection, joined to groups:
    ``s = await connect(...)`` or ``async with connect(...) as s``. Options:
    AsyncSession's (strict, ``reconnect`` (True by default, as
    spread.flow.connect's), ``on_loss``, and the core's max_message_bytes,
    ...)."""
    kwargs: dict[str, Any] = {"timeout": timeout, "socket_buffer": socket_buffer}
    if max_send_bytes is not None:
        kwargs["max_send_bytes"] = max_send_bytes
    return _Connecting((daemon, name, priority, 1), kwargs, options, tuple(groups))


__all__ = ["AsyncChannel", "AsyncSession", "connect"]
