"""Being a polite client: one request per host per interval, server-requested waits honoured,
and robots.txt rules cached per site (the shared rate limiter and cachetools; adr/0018)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.robotparser import RobotFileParser

from cachetools import LRUCache, TTLCache

from kglab_shared.ratelimit import RateLimiter

Clock = Callable[[], float]


class HostPacing:
    """At most one request start per host per interval, and a host can push its next start
    back (429/503 with Retry-After, or our backoff). Counted by the shared rate limiter: in
    this process, or in Redis so that every replica paces a host together (adr/0018)."""

    def __init__(self, limiter: RateLimiter, interval_s: float) -> None:
        self._limiter = limiter
        self._interval = interval_s

    async def wait(self, host: str, *, interval_s: float | None = None) -> float:
        """Sleep until ``host`` may be asked again; return the seconds waited."""
        interval = max(self._interval, interval_s or 0.0)
        return await self._limiter.pace(f"host:{host}", interval, hold_key=f"host:{host}")

    async def defer(self, host: str, delay_s: float) -> None:
        """The host asked us to wait: no request to it before ``delay_s`` seconds from now."""
        await self._limiter.hold(f"host:{host}", delay_s)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RobotsCache:
    """Parsed robots.txt per site origin, kept ``ttl_s`` seconds, at most ``max_entries``
    (least recently used dropped first)."""

    def __init__(self, ttl_s: float, max_entries: int, *, clock: Clock = time.monotonic) -> None:
        self._entries: TTLCache[str, RobotFileParser] = TTLCache(
            max_entries, ttl=ttl_s, timer=clock
        )
        # Evicting a lock in use costs at most one extra download of that robots.txt.
        self._locks: LRUCache[str, asyncio.Lock] = LRUCache(max_entries)

    def get(self, origin: str) -> RobotFileParser | None:
        return self._entries.get(origin)

    def put(self, origin: str, rules: RobotFileParser) -> None:
        self._entries[origin] = rules

    def lock(self, origin: str) -> asyncio.Lock:
        """One robots.txt download per site at a time (the others wait and read the cache)."""
        found = self._locks.get(origin)
        if found is None:
            found = self._locks[origin] = asyncio.Lock()
        return found


def parse_robots(text: str) -> RobotFileParser:
    rules = RobotFileParser()
    rules.parse(text.splitlines())
    return rules


def allow_all_robots() -> RobotFileParser:
    """Rules for a site without a robots.txt: an empty file allows everything."""
    return parse_robots("")
