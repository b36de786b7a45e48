"""spread.aio beside the sync paths, in one run on the embedded daemon:
``python -m spread.bench.aio [--count N] [--size BYTES]``.

Rows (messages per second, and the ratio to the sync path of the same row):

- ``async for`` and ``await conn.receive()`` against the sync receiver's
  ``get_batch(1000)``: the messages are queued in the ThreadedReceiver first
  (the drain thread has them all), so that the consumer's own cost is what
  is measured, not the daemon's forwarding rate;
- ``await conn.multicast()`` against the sync ``multicast()``, to a group
  nobody has joined.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import spread
import spread.aio as sa
from spread.testing import EmbeddedDaemon

SVC = spread.RELIABLE_MESS


def _queue(address: str, group: str, rx, count: int, size: int) -> None:
    with spread.connect(address, membership=0) as tx:
        data = b"b" * size
        for _ in range(count):
            tx.multicast(SVC, group, data)
    while rx.stats["received"] < count:  # the drain thread has them all
        time.sleep(0.001)


def sync_get_batch(address: str, count: int, size: int) -> float:
    with spread.connect(address, membership=0) as m:
        m.join("bg")
        rx = m.start_receiver()
        _queue(address, "bg", rx, count, size)
        get_batch = rx.get_batch
        start = time.perf_counter()
        n = 0
        while n < count:
            n += len(get_batch(1000))
        return count / (time.perf_counter() - start)


async def _aio_receive(address: str, count: int, size: int, how: str) -> float:
    async with sa.connect(address, membership=0) as conn:
        await conn.join("ag")
        await asyncio.get_running_loop().run_in_executor(
            None, _queue, address, "ag", conn._rx, count, size
        )
        start = time.perf_counter()
        if how == "for":
            n = 0
            async for _ in conn:
                n += 1
                if n == count:
                    break
        else:
            receive = conn.receive
            for _ in range(count):
                await receive()
        return count / (time.perf_counter() - start)


def sync_multicast(address: str, count: int, size: int) -> float:
    with spread.connect(address, membership=0) as m:
        mc = m.multicast
        data = b"m" * size
        start = time.perf_counter()
        for _ in range(count):
            mc(SVC, "nobody", data)
        return count / (time.perf_counter() - start)


async def _aio_multicast(address: str, count: int, size: int) -> float:
    async with sa.connect(address, membership=0) as conn:
        mc = conn.multicast
        data = b"m" * size
        start = time.perf_counter()
        for _ in range(count):
            await mc(SVC, "nobody", data)
        return count / (time.perf_counter() - start)


def run(address: str, count: int, size: int) -> list[tuple[str, float, float]]:
    """[(row, rate, ratio to its sync path)]."""
    batch = sync_get_batch(address, count, size)
    afor = asyncio.run(_aio_receive(address, count, size, "for"))
    arecv = asyncio.run(_aio_receive(address, count, size, "receive"))
    smc = sync_multicast(address, count, size)
    amc = asyncio.run(_aio_multicast(address, count, size))
    return [
        ("sync get_batch(1000)", batch, 1.0),
        ("async for", afor, afor / batch),
        ("await receive()", arecv, arecv / batch),
        ("sync multicast()", smc, 1.0),
        ("await multicast()", amc, amc / smc),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spread.bench.aio", description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args(argv)
    with EmbeddedDaemon(max_session_messages=10**7, max_session_bytes=1 << 31) as d:
        rows = run(d.unix_address, args.count, args.size)
    print(f"spread.aio, {args.count} messages of {args.size} B ({spread._backend.name} backend)")
    for name, rate, ratio in rows:
        print(f"  {name:<22} {rate:>12,.0f} msg/s   {ratio:5.2f}x")


if __name__ == "__main__":
    main()
