"""Being a polite client: one request per host per interval, server-requested waits honoured,
and robots.txt rules cached per site."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.robotparser import RobotFileParser

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class HostRateLimiter:
    """At most one request start per host per ``interval_s``; a host can push its slot back.

    Each caller reserves the next free slot before it sleeps, so concurrent fetches to one host
    queue up instead of all waking at once.
    """

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_hosts: int = 10_000,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._sleep = sleep
        self._max_hosts = max_hosts
        self._next: dict[str, float] = {}

    async def wait(self, host: str, *, interval_s: float | None = None) -> float:
        """Sleep until ``host`` may be asked again; return the seconds waited."""
        now = self._clock()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + max(self._interval, interval_s or 0.0)
        self._prune(now)
        delay = start - now
        if delay > 0:
            await self._sleep(delay)
        return delay

    def defer(self, host: str, delay_s: float) -> None:
        """The host asked us to wait (429/503 + Retry-After, or our backoff): no request before."""
        self._next[host] = max(self._next.get(host, 0.0), self._clock() + delay_s)

    def _prune(self, now: float) -> None:
        if len(self._next) > self._max_hosts:
            for host in [h for h, t in self._next.items() if t <= now]:
                del self._next[host]


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
    """Parsed robots.txt per site origin, kept ``ttl_s`` seconds, at most ``max_entries``."""

    def __init__(self, ttl_s: float, max_entries: int, *, clock: Clock = time.monotonic) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, RobotFileParser]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, origin: str) -> RobotFileParser | None:
        entry = self._entries.get(origin)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            del self._entries[origin]
            return None
        self._entries.move_to_end(origin)
        return entry[1]

    def put(self, origin: str, rules: RobotFileParser) -> None:
        self._entries[origin] = (self._clock() + self._ttl, rules)
        self._entries.move_to_end(origin)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def lock(self, origin: str) -> asyncio.Lock:
        """One robots.txt download per site at a time (the others wait and read the cache)."""
        if len(self._locks) > self._max:
            self._locks = {o: lk for o, lk in self._locks.items() if lk.locked()}
        return self._locks.setdefault(origin, asyncio.Lock())


def parse_robots(text: str) -> RobotFileParser:
    rules = RobotFileParser()
    rules.parse(text.splitlines())
    return rules


def allow_all_robots() -> RobotFileParser:
    """Rules for a site without a robots.txt: an empty file allows everything."""
    return parse_robots("")
