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


async def test_several_windows_are_counted_in_one_call(limiter: RateLimiter) -> None:
    windows = [("user:a", 2, 60), ("ip:10.0.0.1", 3, 60)]
    results = [await limiter.hit_many(windows) for _ in range(4)]
    assert results[0] == [0, 0]
    assert results[1] == [0, 0]
    # The user's window is spent first, the address's one request later; each says when.
    assert results[2][0] >= 1
    assert results[2][1] == 0
    assert all(1 <= wait <= 61 for wait in results[3])
    # The same counters as single hits: both are spent.
    assert await limiter.hit("user:a", limit=2, window_s=60) > 0
    assert await limiter.hit_many([]) == []


async def test_redis_windows_expire_when_they_close(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis, prefix=prefix)
        await limiter.hit_many([("user:a", 5, 30), ("ip:x", 5, 30)])
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 2
        for key in keys:
            assert 0 < await redis.ttl(key) <= 31
        await redis.delete(*keys)
    finally:
        await redis.aclose()
