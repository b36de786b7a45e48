"""Helpers of the spread.aio tests: running a coroutine on each event loop
(asyncio's and uvloop's), with the loop's unhandled errors made failures."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])

# Every aio test: warnings are errors (no "never retrieved", "loop is closed",
# unawaited coroutines), and a time limit.
MARKS = [pytest.mark.filterwarnings("error"), pytest.mark.timeout(60)]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(kind: str, coro):
    """Runs coro to its end on a new loop of that kind; an error the loop's
    exception handler saw (a future's exception never retrieved, a callback
    that raised) fails the test."""
    loop = new_loop(kind)
    seen = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        result = loop.run_until_complete(coro)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    gc.collect()  # un-retrieved exceptions are reported when futures are freed
    assert not seen, seen
    return result
