"""Per-host pacing (in real, short time), Retry-After parsing and the robots.txt cache (on a
virtual clock)."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from kglab_ingestion.fetching.politeness import (
    HostPacing,
    RobotsCache,
    allow_all_robots,
    parse_retry_after,
    parse_robots,
)
from kglab_shared.ratelimit import memory_rate_limiter


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
    pacing = HostPacing(memory_rate_limiter(), 0.3)
    assert await pacing.wait("a.example") == 0
    assert await pacing.wait("b.example") == 0
    began = time.monotonic()
    assert await pacing.wait("a.example") == pytest.approx(0.3, abs=0.05)
    assert time.monotonic() - began >= 0.25


async def test_concurrent_callers_take_turns() -> None:
    pacing = HostPacing(memory_rate_limiter(), 0.2)
    starts: list[float] = []

    async def fetch() -> None:
        await pacing.wait("a.example")
        starts.append(time.monotonic())

    await asyncio.gather(fetch(), fetch(), fetch())
    starts.sort()
    # One start per 0.2 s: they queue instead of all going at once.
    assert all(later - earlier >= 0.18 for earlier, later in itertools.pairwise(starts))


async def test_a_deferred_host_and_a_crawl_delay_push_the_next_slot_back() -> None:
    pacing = HostPacing(memory_rate_limiter(), 0.05)
    await pacing.wait("a.example")
    await pacing.defer("a.example", 0.5)
    began = time.monotonic()
    await pacing.wait("a.example", interval_s=0.3)
    assert time.monotonic() - began >= 0.45  # the host's wait first
    began = time.monotonic()
    await pacing.wait("a.example")
    assert time.monotonic() - began >= 0.25  # then the crawl delay of the request before
    assert await pacing.wait("b.example") == 0


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
