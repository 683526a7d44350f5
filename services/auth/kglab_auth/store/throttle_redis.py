"""Redis login throttle: one counter per key with the window as its TTL, shared by replicas."""

from __future__ import annotations

from redis.asyncio import Redis


class RedisLoginThrottle:
    def __init__(self, client: Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}throttle:{key}"

    async def failures(self, key: str) -> tuple[int, float]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(key))
            pipe.pttl(self._key(key))
            raw, ttl_ms = await pipe.execute()
        if raw is None or ttl_ms is None or ttl_ms < 0:
            return 0, 0.0
        return int(raw), ttl_ms / 1000

    async def record_failure(self, key: str, window_s: int) -> tuple[int, float]:
        name = self._key(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s, nx=True)  # the window starts at the first failure
            pipe.pttl(name)
            count, _, ttl_ms = await pipe.execute()
        return int(count), max(0, int(ttl_ms)) / 1000

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._key(key))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
