"""Per-host pacing, Retry-After parsing and the robots.txt cache, on a virtual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from kglab_ingestion.fetching.politeness import (
    HostRateLimiter,
    RobotsCache,
    allow_all_robots,
    parse_retry_after,
    parse_robots,
)


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_requests_to_one_host_wait_their_turn_others_do_not() -> None:
    clock = VirtualClock()
    limiter = HostRateLimiter(1.0, clock=clock, sleep=clock.sleep)
    assert await limiter.wait("a.example") == 0
    assert await limiter.wait("b.example") == 0
    assert await limiter.wait("a.example") == pytest.approx(1.0)
    clock.now += 5
    assert await limiter.wait("a.example") == 0


async def test_reservations_queue_concurrent_callers() -> None:
    clock = VirtualClock()
    slept: list[float] = []

    async def record(seconds: float) -> None:  # callers arriving together: time stands still
        slept.append(seconds)

    limiter = HostRateLimiter(0.5, clock=clock, sleep=record)
    delays = await asyncio.gather(*(limiter.wait("a.example") for _ in range(3)))
    # Slots 0, 0.5 and 1.0 s out: they queue instead of all waking at once.
    assert sorted(delays) == pytest.approx([0.0, 0.5, 1.0])
    assert sorted(slept) == pytest.approx([0.5, 1.0])


async def test_a_deferred_host_and_a_crawl_delay_push_the_next_slot_back() -> None:
    clock = VirtualClock()
    limiter = HostRateLimiter(0.1, clock=clock, sleep=clock.sleep)
    await limiter.wait("a.example")
    limiter.defer("a.example", 7.0)
    assert await limiter.wait("a.example", interval_s=3.0) == pytest.approx(7.0)
    assert await limiter.wait("a.example") == pytest.approx(3.0)


def test_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now)
        == 30.0
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    )
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_robots_rules_name_our_agent_or_everyone() -> None:
    rules = parse_robots("User-agent: KnowledgeGraphLab\nDisallow: /drafts\nCrawl-delay: 2\n")
    assert not rules.can_fetch("KnowledgeGraphLab/1.0", "https://example.com/drafts/x")
    assert rules.can_fetch("KnowledgeGraphLab/1.0", "https://example.com/news")
    assert rules.crawl_delay("KnowledgeGraphLab") == 2
    assert allow_all_robots().can_fetch("KnowledgeGraphLab/1.0", "https://example.com/any")


def test_the_robots_cache_expires_and_stays_bounded() -> None:
    clock = VirtualClock()
    cache = RobotsCache(ttl_s=60, max_entries=2, clock=clock)
    rules = allow_all_robots()
    cache.put("https://a.example", rules)
    assert cache.get("https://a.example") is rules
    clock.now += 61
    assert cache.get("https://a.example") is None
    for origin in ("https://a.example", "https://b.example", "https://c.example"):
        cache.put(origin, rules)
    assert cache.get("https://a.example") is None  # the least recently used went first
    assert cache.get("https://c.example") is rules
