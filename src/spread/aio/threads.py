"""The threads spread.aio runs blocking calls in (connect, disconnect)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(4, "spread-aio")
        return _pool


async def run_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a thread of the pool; the loop goes on meanwhile."""
    return await asyncio.wrap_future(pool().submit(fn, *args))
