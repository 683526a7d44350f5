"""One body, both rate-limiter adapters: in-memory (make dev) and Redis (replicas)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from kglab_gateway.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    redis = Redis.from_url(url)
    yield RedisRateLimiter(redis, prefix=prefix)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_allows_up_to_the_limit_then_says_when_to_retry(limiter: RateLimiter) -> None:
    results = [await limiter.hit("user:a", limit=3, window_s=60) for _ in range(5)]
    assert results[:3] == [0, 0, 0]
    assert all(1 <= wait <= 61 for wait in results[3:])


async def test_keys_are_counted_apart(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert await limiter.hit("user:a", limit=3, window_s=60) == 0
    assert await limiter.hit("user:a", limit=3, window_s=60) > 0
    assert await limiter.hit("user:b", limit=3, window_s=60) == 0


async def test_ping(limiter: RateLimiter) -> None:
    await limiter.ping()
