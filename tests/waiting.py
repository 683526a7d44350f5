"""Waiting for something asynchronous in a test: bounded, so a lost event fails, not hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 5.0, step_s: float = 0.02
) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout_s`` seconds."""
    for _ in range(max(1, int(timeout_s / step_s))):
        if await condition():
            return
        await asyncio.sleep(step_s)
    raise AssertionError(f"condition not met within {timeout_s} s")
