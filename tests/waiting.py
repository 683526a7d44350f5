"""Waiting for something asynchronous in a test: bounded, so a lost event fails, not hangs."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout_s: float = 5.0,
    step_s: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll ``condition`` (plain or async) until it is true; fail after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(step_s)
