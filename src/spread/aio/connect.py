"""spread.aio.connect(): the handshake runs in a thread, never on the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import Any

from .. import _args
from .._mailbox import connect as sync_connect
from .connection import DEFAULT_PREFETCH, Connection
from .threads import pool
from .writer import DEFAULT_MAX_SEND_BYTES


def _open(args: tuple, kwargs: dict, rx_options: dict) -> tuple[Any, Any]:
    mbox = sync_connect(*args, **kwargs)
    try:
        return mbox, mbox.start_receiver(**rx_options)
    except BaseException:
        mbox.disconnect()
        raise


def _discard(cf: concurrent.futures.Future) -> None:
    """A connection that was made after its connect() was cancelled."""
    if not cf.cancelled() and cf.exception() is None:
        cf.result()[0].disconnect()


async def _connect(args: tuple, kwargs: dict, rx_options: dict, options: dict) -> Connection:
    loop = asyncio.get_running_loop()
    cf = pool().submit(_open, args, kwargs, rx_options)
    try:
        mbox, rx = await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        # The handshake cannot be stopped half way: once it ends, what it
        # made is disconnected, and this waits for that (shielded), so that
        # no session is left when the CancelledError reaches the caller.
        if not cf.cancel():
            done = loop.create_future()

            def cleanup(f: concurrent.futures.Future) -> None:
                try:
                    _discard(f)
                finally:
                    try:
                        loop.call_soon_threadsafe(_settle, done)
                    except RuntimeError:
                        pass  # the loop is closed

            pool().submit(lambda: cf.add_done_callback(cleanup))
            try:
                await done
            except asyncio.CancelledError:
                pass
        raise
    try:
        return Connection(mbox, rx, own=True, **options)
    except BaseException:
        await asyncio.wrap_future(pool().submit(mbox.disconnect))
        raise


def _settle(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class Connecting:
    """What connect() returns: await it for the Connection, or use it as
    ``async with`` (aclose() on exit, whatever the exit)."""

    def __init__(self, args: tuple, kwargs: dict, rx_options: dict, options: dict) -> None:
        self._call = (args, kwargs, rx_options, options)
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return _connect(*self._call).__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await _connect(*self._call)
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.aclose()


def connect(
    daemon: Any = "4803",
    name: Any = "",
    priority: int = 0,
    membership: int = 1,
    *,
    bytes_names: bool = False,
    timeout: float | None = _args.DEFAULT_TIMEOUT,
    socket_buffer: int | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
    max_backlog_bytes: int | None = None,
    on_overflow: str = "disconnect",
) -> Connecting:
    """Connects to a Spread daemon for asyncio code: ``conn = await
    spread.aio.connect(...)`` or ``async with spread.aio.connect(...) as
    conn``. The arguments are spread.connect()'s (checked at once), plus
    prefetch (messages moved ahead of demand from the receiver's queue into
    Python), max_send_bytes (the writer queue's bound) and the
    ThreadedReceiver's max_backlog_bytes and on_overflow. The handshake runs
    in a thread; a cancelled connect() leaves no session behind."""
    _args.connect_args(daemon, name, priority, membership, bytes_names, timeout, socket_buffer)
    rx_options = {"max_backlog_bytes": max_backlog_bytes, "on_overflow": on_overflow}
    _args.start_receiver(**rx_options)
    kwargs = {"bytes_names": bytes_names, "timeout": timeout, "socket_buffer": socket_buffer}
    options = {"prefetch": prefetch, "max_send_bytes": max_send_bytes}
    return Connecting((daemon, name, priority, membership), kwargs, rx_options, options)
