"""The one rate limiter: fixed windows on the ``limits`` library (adr/0018).

Three callers share it: the gateway's per-user and per-address limits, auth's sign-in throttle
(failures per account and address) and the URL fetcher's per-host pacing. ``limits`` keeps the
counters, in process memory (``make dev``, tests) or in Redis (production: every replica
counts against the same window). A window opens at its first hit and lasts ``window_s``, or,
for an ``aligned`` quota, runs between multiples of ``window_s`` on the clock: then when it
resets is known without asking the store, and a hit is one round trip instead of two.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Quota:
    """``amount`` hits per ``window_s`` seconds (``aligned``: windows on the clock's multiples
    of ``window_s``, as the gateway counts requests; else from the first hit, as the sign-in
    throttle counts failures)."""

    amount: int
    window_s: int
    aligned: bool = False

    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.window_s)


@dataclass(frozen=True, slots=True)
class Usage:
    """A window after a hit (or a look): what is used, what is left, when it starts afresh."""

    quota: Quota
    used: int
    reset_after_s: float

    @property
    def allowed(self) -> bool:
        """The hit that produced this usage fits in the quota."""
        return self.used <= self.quota.amount

    @property
    def exhausted(self) -> bool:
        """No further hit fits until the window resets."""
        return self.used >= self.quota.amount

    @property
    def remaining(self) -> int:
        return max(0, self.quota.amount - self.used)

    @property
    def reset_s(self) -> int:
        """Whole seconds until the window resets (at least 1 while anything is counted)."""
        return max(1, math.ceil(self.reset_after_s)) if self.used else 0


class RateLimiter:
    """Fixed-window counters over a ``limits`` storage."""

    def __init__(self, storage: Storage, *, close: Callable[[], Awaitable[None]] | None = None):
        self._storage = storage
        self._windows = FixedWindowRateLimiter(storage)
        self._close = close

    async def hit(self, quota: Quota, key: str, *, cost: int = 1) -> Usage:
        """Count ``cost`` against ``key``'s window; the usage says whether it fitted."""
        if quota.aligned:
            now = time.time()
            window = int(now // quota.window_s)
            name = quota.item().key_for(key, window)
            used = await self._storage.incr(name, quota.window_s, amount=cost)
            return Usage(quota, used, (window + 1) * quota.window_s - now)
        name = quota.item().key_for(key)
        # limits' FixedWindowRateLimiter.hit is this same increment, but answers only a bool.
        used = await self._storage.incr(name, quota.window_s, amount=cost)
        return Usage(quota, used, await self._reset_after(name, used))

    async def hit_many(self, hits: Sequence[tuple[Quota, str]]) -> list[Usage]:
        """Count one hit against each window, concurrently (one request, several limits)."""
        return list(await asyncio.gather(*(self.hit(quota, key) for quota, key in hits)))

    async def usage(self, quota: Quota, key: str) -> Usage:
        """The window as it stands, counting nothing."""
        if quota.aligned:
            now = time.time()
            window = int(now // quota.window_s)
            used = await self._storage.get(quota.item().key_for(key, window))
            return Usage(quota, used, (window + 1) * quota.window_s - now if used else 0.0)
        name = quota.item().key_for(key)
        used = await self._storage.get(name)
        return Usage(quota, used, await self._reset_after(name, used))

    async def clear(self, quota: Quota, key: str) -> None:
        if quota.aligned:
            await self._windows.clear(quota.item(), key, str(int(time.time() // quota.window_s)))
            return
        await self._windows.clear(quota.item(), key)

    async def pace(
        self,
        key: str,
        interval_s: float,
        *,
        hold_key: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> float:
        """Wait until ``key`` may start again (at most one start per ``interval_s``) and take the
        slot; return the seconds waited. A hold placed by :meth:`hold` is waited out first."""
        waited = 0.0
        while True:
            if hold_key is not None:
                held = await self._storage.get(self._hold_name(hold_key))
                if held:
                    # Redis counts whole seconds: never spin on a TTL that reads 0.
                    delay = max(0.01, await self._reset_after(self._hold_name(hold_key), held))
                    await sleep(delay)
                    waited += delay
                    continue
            if interval_s <= 0:
                return waited
            name = f"pace/{key}"
            if await self._incr_for(name, interval_s) == 1:
                return waited
            # Another caller has this slot: wait for its end, then race for the next one.
            delay = max(0.01, await self._reset_after(name, 1))
            await sleep(delay)
            waited += delay

    async def hold(self, key: str, seconds: float) -> None:
        """Nothing paced with ``hold_key=key`` starts for ``seconds`` (a later hold never
        shortens an earlier, longer one)."""
        name = self._hold_name(key)
        if await self._storage.get(name) and await self._reset_after(name, 1) >= seconds:
            return
        await self._storage.clear(name)
        await self._incr_for(name, seconds)

    async def ping(self) -> None:
        if not await self._storage.check():
            raise ConnectionError("the rate limit store does not answer")

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    @staticmethod
    def _hold_name(key: str) -> str:
        return f"hold/{key}"

    async def _incr_for(self, name: str, seconds: float) -> int:
        """Count one on ``name``, whose window (when this opens it) lasts ``seconds``."""
        if isinstance(self._storage, MemoryStorage):
            # Process memory keeps the fraction (a 0.3 s pace); Redis expires whole seconds.
            return await self._storage.incr(name, seconds)
        return await self._storage.incr(name, max(1, math.ceil(seconds)))

    async def _reset_after(self, name: str, used: int) -> float:
        if not used:
            return 0.0
        return max(0.0, await self._storage.get_expiry(name) - time.time())


def memory_rate_limiter() -> RateLimiter:
    """Counters in this process (``make dev``, tests, and what only one process needs)."""
    return RateLimiter(MemoryStorage())


def redis_rate_limiter(url: str, *, prefix: str) -> RateLimiter:
    """Counters in Redis under ``prefix``, shared by every replica."""
    from redis.asyncio import ConnectionPool

    pool = ConnectionPool.from_url(url, socket_timeout=5)
    storage = RedisStorage(
        "async+" + url.removeprefix("async+"),
        implementation="redispy",
        key_prefix=prefix.rstrip(":"),
        connection_pool=pool,  # type: ignore[arg-type]
    )
    return RateLimiter(storage, close=pool.aclose)


def rate_limiter(redis_url: str | None, *, prefix: str) -> RateLimiter:
    """Redis when a URL is given, else process memory."""
    return redis_rate_limiter(redis_url, prefix=prefix) if redis_url else memory_rate_limiter()
