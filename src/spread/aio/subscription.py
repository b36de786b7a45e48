"""Subscription: the messages of one group, taken apart from the
connection's own stream (a local demultiplexer; the daemon is not told)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .inbox import Inbox

if TYPE_CHECKING:
    from .connection import Connection

DEFAULT_MAXSIZE = 10_000


class Subscription(Inbox):
    """Messages sent to `group` (a RegularMsg that names it among its
    groups: to every subscription of each), and its membership notices.
    Receive as from the connection: receive(), receive_batch(), async for.
    Bounded by maxsize (messages): while one subscription is full, the
    connection stops reading, so a subscription nobody reads holds the
    others back rather than losing messages."""

    _what = "subscription"

    def __init__(self, conn: Connection, group: Any, key: Any, maxsize: int, join: bool) -> None:
        super().__init__(conn._reader, maxsize)
        self.group = group
        self._key = key
        self._conn = conn
        self._join = join
        self._active = False

    async def __aenter__(self) -> Subscription:
        self._open()
        if self._join:
            await self._conn.join(self.group)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._join and self._active and not self._conn.closed:
            try:
                await self._conn.leave(self.group)
            finally:
                self.close()
        else:
            self.close()

    def _open(self) -> None:
        if not self._active and not self._closed:
            self._reader.add(self._key, self)
            self._active = True

    def close(self) -> None:
        """Stops taking the group's messages (later ones go to the
        connection's stream); waiters end (async for stops)."""
        if self._active:
            self._reader.remove(self._key, self)
            self._active = False
        self._close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={self.pending}"
        return f"<spread.aio.Subscription {self.group!r} {state}>"
