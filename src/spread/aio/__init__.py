"""spread.aio: Spread for asyncio, cancellation-safe and never blocking the loop.

    async with spread.aio.connect("4803", "alice") as conn:
        await conn.join("chat")
        await conn.multicast(spread.SAFE_MESS, "chat", b"hello")
        async for msg in conn:
            ...

One module per concept:

    connect       connect(): the handshake in a thread; awaitable and ``async with``
    connection    Connection: the calls, subscribe(), aclose(), from_mailbox()
    inbox         where received messages wait in Python; the receive calls
    reader        the one add_reader per connection, bounded callbacks
    writer        non-blocking sends, the bounded writer queue
    subscription  one group's messages apart
    waiters       wake-up futures that never carry a message
    errors        WouldBlock, Closed
    threads       the threads blocking calls run in

Flow-controlled channels over a connection are spread.flow.aio's
(``AsyncSession(conn)``, or ``spread.flow.aio.connect()``): the flow core fed
by this connection's receives and sending through it.
"""

from __future__ import annotations

from .connect import Connecting, connect
from .connection import Connection
from .errors import Closed, WouldBlock
from .subscription import Subscription

__all__ = ["Closed", "Connecting", "Connection", "Subscription", "WouldBlock", "connect"]
