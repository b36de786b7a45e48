"""spread.aio beside the sync paths, in one run on the embedded daemon:
``python -m spread.bench.aio [--count N] [--size BYTES] [--repeats R] [--loop L]``.

Rows (messages per second, and the ratio to the sync path of the same kind):

- ``async for``, ``await conn.receive()`` and ``await
  conn.receive_batch(1000)`` against the sync receiver's
  ``get_batch(1000)``, each consumer with the same loop body per message
  (count it, stop at the last): the messages are queued in the
  ThreadedReceiver first (its drain thread has them all), so that the
  consumer's own cost is measured, not the daemon's forwarding rate. The
  row ``get_batch(1000), not iterated`` (only ``len()`` of each batch)
  shows what taking them costs without a loop over them;
- ``await conn.multicast()`` against the sync ``multicast()``, to a group
  nobody has joined.

Each repeat runs every row once, sync and async alternately, so that a
load change on a shared machine falls on both; the figures are the medians
over the repeats and each ratio is the median of the per-repeat ratios.
Beside the wall-clock rate, each row has the rate per second of the
measuring thread's CPU time (time.thread_time()), which other processes on
a shared machine disturb much less. The interpreter's version is printed:
the async rows' costs differ between versions (Python 3.12's SEND raises
a StopIteration where 3.10 and 3.11 return the value: spread/_aio_fast.pxi).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

import spread
import spread.aio as sa
from spread.testing import EmbeddedDaemon

SVC = spread.RELIABLE_MESS


class Clock:
    """Wall and CPU time (of this thread) from start() to rates(count)."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def rates(self, count: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter() - self.wall, time.thread_time() - self.cpu
        return count / wall, count / max(cpu, 1e-9)


# (row, the sync row it is compared with)
ROWS = [
    ("sync get_batch(1000)", None),
    ("async for", "sync get_batch(1000)"),
    ("await receive()", "sync get_batch(1000)"),
    ("await receive_batch(1000)", "sync get_batch(1000)"),
    ("get_batch(1000), not iterated", "sync get_batch(1000)"),
    ("sync multicast()", None),
    ("await multicast()", "sync multicast()"),
]


def _queue(address: str, group: str, rx, count: int, size: int) -> None:
    with spread.connect(address, membership=0) as tx:
        data = b"b" * size
        for _ in range(count):
            tx.multicast(SVC, group, data)
    while rx.stats["received"] < count:  # the drain thread has them all
        time.sleep(0.001)


def sync_get_batch(
    address: str, count: int, size: int, iterate: bool = True
) -> tuple[float, float]:
    with spread.connect(address, membership=0) as m:
        m.join("bg")
        rx = m.start_receiver()
        _queue(address, "bg", rx, count, size)  # (membership=0: no join notice)
        get_batch = rx.get_batch
        clock = Clock()
        clock.start()
        n = 0
        if iterate:
            while n < count:
                for _ in get_batch(1000):
                    n += 1
                    if n == count:
                        break
        else:
            while n < count:
                n += len(get_batch(1000))
        return clock.rates(count)


async def _aio_receive(address: str, count: int, size: int, how: str) -> tuple[float, float]:
    async with sa.connect(address, membership=0) as conn:
        await conn.join("ag")
        await asyncio.get_running_loop().run_in_executor(
            None, _queue, address, "ag", conn._rx, count, size
        )
        clock = Clock()
        clock.start()
        n = 0
        if how == "for":
            async for _ in conn:
                n += 1
                if n == count:
                    break
        elif how == "batch":
            receive_batch = conn.receive_batch
            while n < count:
                for _ in await receive_batch(1000):
                    n += 1
                    if n == count:
                        break
        else:
            receive = conn.receive
            while True:
                await receive()
                n += 1
                if n == count:
                    break
        return clock.rates(count)


def sync_multicast(address: str, count: int, size: int) -> tuple[float, float]:
    with spread.connect(address, membership=0) as m:
        mc = m.multicast
        data = b"m" * size
        clock = Clock()
        clock.start()
        for _ in range(count):
            mc(SVC, "nobody", data)
        return clock.rates(count)


async def _aio_multicast(address: str, count: int, size: int) -> tuple[float, float]:
    async with sa.connect(address, membership=0) as conn:
        mc = conn.multicast
        data = b"m" * size
        clock = Clock()
        clock.start()
        for _ in range(count):
            await mc(SVC, "nobody", data)
        return clock.rates(count)


def _once(address: str, count: int, size: int, loop_factory) -> dict[str, tuple[float, float]]:
    def aio(coro) -> tuple[float, float]:
        loop = (loop_factory or asyncio.new_event_loop)()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return {
        "sync get_batch(1000)": sync_get_batch(address, count, size),
        "async for": aio(_aio_receive(address, count, size, "for")),
        "await receive()": aio(_aio_receive(address, count, size, "receive")),
        "await receive_batch(1000)": aio(_aio_receive(address, count, size, "batch")),
        "get_batch(1000), not iterated": sync_get_batch(address, count, size, iterate=False),
        "sync multicast()": sync_multicast(address, count, size),
        "await multicast()": aio(_aio_multicast(address, count, size)),
    }


def run(
    address: str, count: int, size: int, repeats: int = 1, loop_factory=None
) -> list[tuple[str, float, float, float, float]]:
    """[(row, rate, ratio, cpu rate, cpu ratio)]: medians over `repeats`
    rounds on the daemon at `address` of messages per second of wall time
    and of the measuring thread's CPU time, and of the ratios of each to
    its sync row in the same round."""
    rounds = [_once(address, count, size, loop_factory) for _ in range(repeats)]
    out = []
    for name, base in ROWS:
        row: list = [name]
        for k in (0, 1):  # wall, cpu
            row.append(statistics.median(r[name][k] for r in rounds))
            row.append(
                1.0 if base is None else statistics.median(r[name][k] / r[base][k] for r in rounds)
            )
        out.append(tuple(row))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spread.bench.aio", description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 0 or args.repeats < 1:
        parser.error("--count and --repeats must be >= 1, --size >= 0")
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with EmbeddedDaemon(max_session_messages=10**7, max_session_bytes=1 << 31) as d:
        rows = run(d.unix_address, args.count, args.size, args.repeats, factory)
    print(
        f"spread.aio, {args.count} messages of {args.size} B, {args.loop} loop, "
        f"median of {args.repeats} ({spread._backend.name} backend, "
        f"Python {platform.python_version()})"
    )
    print(f"  {'':<30} {'msg/s':>12}  {'ratio':>5}   {'per CPU s':>12}  {'ratio':>5}")
    for name, rate, ratio, cpu_rate, cpu_ratio in rows:
        print(f"  {name:<30} {rate:>12,.0f}  {ratio:5.2f}   {cpu_rate:>12,.0f}  {cpu_ratio:5.2f}")


if __name__ == "__main__":
    main()
