"""The SearchCache contract on memory and on a real Redis (keys under a unique prefix):
answers per owner and generation, invalidation, refused stale writes, hot-query counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.cache.port import SearchCache
from kglab_vector.cache.redis import RedisSearchCache
from tests.conftest import unique_name
from tests.contract.vector.conftest import CacheFactory


async def test_a_stored_answer_is_returned(cache: SearchCache) -> None:
    await cache.ping()
    generation = await cache.generation("alice")
    assert await cache.generation("alice") == generation
    assert await cache.get("alice", generation, "k") is None
    assert await cache.put("alice", generation, "k", b'{"results": []}')
    assert await cache.get("alice", generation, "k") == b'{"results": []}'
    assert await cache.get("bob", await cache.generation("bob"), "k") is None


async def test_invalidation_hides_the_owners_old_answers_only(cache: SearchCache) -> None:
    old = await cache.generation("alice")
    bobs = await cache.generation("bob")
    await cache.put("alice", old, "k", b"old")
    await cache.put("bob", bobs, "k", b"bobs")
    generation = await cache.invalidate("alice")
    assert generation != old
    assert await cache.generation("alice") == generation
    assert await cache.get("alice", generation, "k") is None
    assert await cache.get("bob", await cache.generation("bob"), "k") == b"bobs"
    assert await cache.put("alice", generation, "k", b"new")
    assert await cache.get("alice", generation, "k") == b"new"


async def test_generations_move_forward_and_are_never_reused(cache: SearchCache) -> None:
    seen = [await cache.generation("alice")]
    for _ in range(5):
        seen.append(await cache.invalidate("alice"))
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


async def test_an_answer_computed_before_a_change_is_refused(cache: SearchCache) -> None:
    # A search read the generation, then the owner's documents changed before it stored
    # its answer: storing it would put pre-change results in front of the owner.
    before = await cache.generation("alice")
    after = await cache.invalidate("alice")
    assert not await cache.put("alice", before, "k", b"stale")
    assert await cache.get("alice", before, "k") is None
    assert await cache.get("alice", after, "k") is None
    assert await cache.put("alice", after, "k", b"fresh")


async def test_lookups_count_uses_and_gets_do_not(cache: SearchCache) -> None:
    generation = await cache.generation("alice")
    for key, uses in (("salt", 5), ("wool", 3), ("glass", 1)):
        for _ in range(uses):
            assert await cache.lookup("alice", generation, key, key.encode()) is None
    await cache.put("alice", generation, "glass", b"answer")
    for _ in range(10):
        assert await cache.get("alice", generation, "glass") == b"answer"
    assert await cache.lookup("bob", await cache.generation("bob"), "wool", b"wool") is None

    hot = await cache.hot_queries("alice", 10, 0)
    assert [(h.key, h.description, h.score) for h in hot] == [
        ("salt", b"salt", 5.0),
        ("wool", b"wool", 3.0),
        ("glass", b"glass", 1.0),
    ]


async def test_hot_queries_respect_the_limit_and_the_minimum(cache: SearchCache) -> None:
    generation = await cache.generation("alice")
    for key, uses in (("a", 6), ("b", 5), ("c", 4), ("d", 1)):
        for _ in range(uses):
            await cache.lookup("alice", generation, key, key.encode())
    assert [h.key for h in await cache.hot_queries("alice", 2, 0)] == ["a", "b"]
    # Counts were halved by that call (a change): a 3, b 2.5, c 2, d 0.5.
    assert [h.key for h in await cache.hot_queries("alice", 10, 2.0)] == ["a", "b", "c"]
    # 1.5, 1.25, 1, 0.25: a query nobody asks for any more cools down and drops out.
    assert [h.key for h in await cache.hot_queries("alice", 10, 1.0)] == ["a", "b", "c"]
    assert [h.key for h in await cache.hot_queries("alice", 10, 1.0)] == []
    assert await cache.hot_queries("bob", 10, 0) == []
    assert await cache.hot_queries("alice", 0, 0) == []


async def test_counted_queries_are_bounded_per_owner(cache_factory: CacheFactory) -> None:
    cache = cache_factory(ttl_s=60, hot_tracked=3)
    generation = await cache.generation("alice")
    for key, uses in (("a", 4), ("b", 3), ("c", 2), ("d", 5), ("e", 1)):
        for _ in range(uses):
            await cache.lookup("alice", generation, key, key.encode())
    # Each new query took the place of the least used one, never its own: d pushed c out,
    # e pushed b out (and is in with its 1 use).
    hot = await cache.hot_queries("alice", 100, 0)
    assert [(h.key, h.score) for h in hot] == [("d", 5.0), ("a", 4.0), ("e", 1.0)]


async def test_a_forgotten_generation_starts_an_empty_one() -> None:
    # The in-memory cache drops its least recent owners beyond max_owners; coming back, an
    # owner gets a generation never used before, not one their old answers are under.
    cache = InMemorySearchCache(max_owners=1)
    first = await cache.generation("alice")
    await cache.put("alice", first, "k", b"old")
    await cache.invalidate("bob")  # alice is forgotten
    again = await cache.generation("alice")
    assert again != first
    assert await cache.get("alice", again, "k") is None
    assert not await cache.put("alice", first, "k", b"late")


@pytest.fixture
async def redis_cache(redis_url: str) -> AsyncIterator[tuple[RedisSearchCache, str]]:
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(redis_url)
    prefix = unique_name("kglab_test_search") + ":"
    try:
        yield RedisSearchCache(redis, prefix=prefix, ttl_s=60, hot_ttl_s=600, hot_tracked=4), prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.mark.backend("redis")
async def test_redis_keys_all_expire_and_stay_bounded(
    redis_cache: tuple[RedisSearchCache, str], redis_url: str
) -> None:
    cache, prefix = redis_cache
    generation = await cache.generation("alice")
    for n in range(10):
        await cache.lookup("alice", generation, f"q{n}", f"query {n}".encode())
    await cache.put("alice", generation, "q1", b"answer")
    await cache.hot_queries("alice", 2, 0)

    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(redis_url)
    try:
        keys = sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}*")])
        assert keys == sorted(
            f"{prefix}{{alice}}:{suffix}" for suffix in ("gen", f"a:{generation}:q1", "hot", "hotq")
        )
        for key in keys:
            ttl = await redis.ttl(key)
            assert 0 < ttl <= 600, (key, ttl)
        assert await redis.zcard(f"{prefix}{{alice}}:hot") == 4
        assert await redis.hlen(f"{prefix}{{alice}}:hotq") == 4
    finally:
        await redis.aclose()


@pytest.mark.backend("redis")
async def test_redis_lost_generation_starts_an_empty_one(
    redis_cache: tuple[RedisSearchCache, str], redis_url: str
) -> None:
    # Expired or evicted: the owner gets a new generation (the clock's), not 0 again.
    cache, prefix = redis_cache
    first = await cache.generation("alice")
    await cache.put("alice", first, "k", b"old")
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(redis_url)
    try:
        await redis.delete(f"{prefix}{{alice}}:gen")
    finally:
        await redis.aclose()
    again = await cache.generation("alice")
    assert again > first
    assert await cache.get("alice", again, "k") is None
    assert not await cache.put("alice", first, "k", b"late")
