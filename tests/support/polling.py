"""Waiting for something that happens in another process, without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, step: float = 0.2) -> float:
    """Poll ``check`` until it is true; return the seconds it took, fail after ``within``."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"condition still false after {within:.1f} s")
        await asyncio.sleep(step)
