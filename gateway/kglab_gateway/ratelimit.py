"""Fixed-window rate limiting per user and per client address.

``RateLimiter`` is the port; Redis backs it when the gateway runs as several replicas, an
in-memory window backs it in ``make dev``. Both answer "allowed, or retry after N seconds".
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> int:
        """Count one request; return 0 when allowed, else the seconds until the window resets."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, limit: int, window_s: int) -> int:
        now = time.time()
        window = int(now // window_s)
        started, count = self._windows.get(key, (window, 0))
        if started != window:
            started, count = window, 0
        count += 1
        if len(self._windows) >= self._max_keys and key not in self._windows:
            self._windows.clear()  # bounded memory; a reset only ever lets requests through
        self._windows[key] = (started, count)
        if count > limit:
            return max(1, math.ceil((window + 1) * window_s - now))
        return 0

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "kglab:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_s: int) -> int:
        now = time.time()
        window = int(now // window_s)
        redis_key = f"{self._prefix}{key}:{window_s}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_s + 1)
            count, _ = await pipe.execute()
        if int(count) > limit:
            return max(1, math.ceil((window + 1) * window_s - now))
        return 0

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
