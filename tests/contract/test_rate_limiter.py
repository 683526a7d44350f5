"""The one rate limiter (kglab_shared.ratelimit), one body for both stores: process memory
(make dev, tests) and Redis (every replica shares the counters)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from kglab_shared.ratelimit import Quota, RateLimiter, memory_rate_limiter, redis_rate_limiter
from tests.waiting import wait_until


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        limiter = memory_rate_limiter()
        yield limiter
        await limiter.close()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    limiter = redis_rate_limiter(url, prefix=prefix)
    yield limiter
    await limiter.close()
    redis = Redis.from_url(url)
    keys = [key async for key in redis.scan_iter(match=f"{prefix.rstrip(':')}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_allows_up_to_the_quota_then_says_when_it_resets(limiter: RateLimiter) -> None:
    quota = Quota(3, 60)
    usages = [await limiter.hit(quota, "user:a") for _ in range(5)]
    assert [u.allowed for u in usages] == [True, True, True, False, False]
    assert [u.remaining for u in usages] == [2, 1, 0, 0, 0]
    assert all(1 <= u.reset_s <= 60 for u in usages)
    assert usages[3].exhausted


async def test_keys_and_quotas_are_counted_apart(limiter: RateLimiter) -> None:
    quota = Quota(3, 60)
    for _ in range(3):
        assert (await limiter.hit(quota, "user:a")).allowed
    assert not (await limiter.hit(quota, "user:a")).allowed
    assert (await limiter.hit(quota, "user:b")).allowed
    assert (await limiter.hit(Quota(5, 60), "user:a")).allowed


async def test_looking_counts_nothing_and_clearing_starts_afresh(limiter: RateLimiter) -> None:
    quota = Quota(2, 60)
    assert (await limiter.usage(quota, "k")).used == 0
    await limiter.hit(quota, "k")
    assert (await limiter.usage(quota, "k")).used == 1
    assert (await limiter.usage(quota, "k")).used == 1
    await limiter.clear(quota, "k")
    after = await limiter.usage(quota, "k")
    assert (after.used, after.reset_s) == (0, 0)


async def test_a_window_resets_when_it_closes(limiter: RateLimiter) -> None:
    quota = Quota(1, 1)
    assert (await limiter.hit(quota, "short")).allowed
    assert not (await limiter.hit(quota, "short")).allowed

    async def reset() -> bool:
        return (await limiter.usage(quota, "short")).used == 0

    await wait_until(reset, timeout_s=3)
    assert (await limiter.hit(quota, "short")).allowed


async def test_several_windows_are_counted_at_once(limiter: RateLimiter) -> None:
    hits = [(Quota(2, 60), "user:a"), (Quota(3, 60), "ip:10.0.0.1")]
    rounds = [await limiter.hit_many(hits) for _ in range(4)]
    assert [[u.allowed for u in r] for r in rounds] == [
        [True, True],
        [True, True],
        [False, True],
        [False, False],
    ]
    assert await limiter.hit_many([]) == []


async def test_pacing_spaces_starts_and_a_hold_pushes_them_back(limiter: RateLimiter) -> None:
    interval = 1.0  # Redis keeps whole seconds
    starts: list[float] = []

    async def start() -> None:
        await limiter.pace("host-a", interval)
        starts.append(time.monotonic())

    await asyncio.gather(start(), start(), start())
    starts.sort()
    assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(starts))
    assert await limiter.pace("host-b", interval) == 0  # another key does not wait
    await limiter.hold("held", 1.0)
    await limiter.hold("held", 0.1)  # a shorter hold does not shorten the first
    began = time.monotonic()
    await limiter.pace("host-c", 0, hold_key="held")
    assert time.monotonic() - began >= 0.5


async def test_ping(limiter: RateLimiter) -> None:
    await limiter.ping()


async def test_redis_counters_expire_when_their_window_closes(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    limiter = redis_rate_limiter(redis_url, prefix=prefix)
    redis = Redis.from_url(redis_url)
    try:
        await limiter.hit_many([(Quota(5, 30), "user:a"), (Quota(5, 30), "ip:x")])
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 2
        for key in keys:
            assert 0 < await redis.ttl(key) <= 30
        await redis.delete(*keys)
    finally:
        await redis.aclose()
        await limiter.close()


async def test_an_unreachable_redis_fails_the_hit_and_the_ping() -> None:
    limiter = redis_rate_limiter("redis://127.0.0.1:1/0", prefix="nowhere")
    try:
        with pytest.raises(Exception, match=r"(?i)connect|refused"):
            await limiter.hit(Quota(1, 60), "k")
        with pytest.raises(ConnectionError):
            await limiter.ping()
    finally:
        await limiter.close()


async def test_aligned_windows_reset_on_the_clock(limiter: RateLimiter) -> None:
    quota = Quota(2, 1, aligned=True)
    before = time.time()
    first = await limiter.hit(quota, "aligned")
    after = time.time()
    assert first.allowed
    assert 0 < first.reset_after_s <= 1
    # The window ends on a whole second of the clock (a multiple of its length), not a second
    # after the first hit: between the earliest and latest end the hit allows lies an integer.
    assert math.floor(after + first.reset_after_s) >= before + first.reset_after_s - 1e-6

    async def spent_then_reset() -> bool:
        usage = await limiter.hit(quota, "aligned")
        return usage.used == 1

    await wait_until(spent_then_reset, timeout_s=3)
    assert (await limiter.usage(quota, "aligned")).used == 1
    await limiter.clear(quota, "aligned")
    assert (await limiter.usage(quota, "aligned")).used == 0
