"""The SearchCache contract on memory and on a real Redis (keys under a unique prefix)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.cache.port import SearchCache
from kglab_vector.cache.redis import RedisSearchCache
from tests.conftest import unique_name


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backend("redis"))])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[SearchCache]:
    if request.param == "memory":
        yield InMemorySearchCache(ttl_s=60)
        return
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = unique_name("kglab_test_search") + ":"
    try:
        yield RedisSearchCache(redis, prefix=prefix, ttl_s=60)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_a_stored_answer_is_returned(cache: SearchCache) -> None:
    await cache.ping()
    generation = await cache.generation("alice")
    assert generation == 0
    assert await cache.get("alice", generation, "k") is None
    await cache.put("alice", generation, "k", b'{"results": []}')
    assert await cache.get("alice", generation, "k") == b'{"results": []}'
    assert await cache.get("bob", generation, "k") is None


async def test_invalidation_hides_the_owners_old_answers_only(cache: SearchCache) -> None:
    await cache.put("alice", 0, "k", b"old")
    await cache.put("bob", 0, "k", b"bobs")
    await cache.invalidate("alice")
    generation = await cache.generation("alice")
    assert generation == 1
    assert await cache.get("alice", generation, "k") is None
    assert await cache.get("bob", await cache.generation("bob"), "k") == b"bobs"
    await cache.put("alice", generation, "k", b"new")
    assert await cache.get("alice", generation, "k") == b"new"
