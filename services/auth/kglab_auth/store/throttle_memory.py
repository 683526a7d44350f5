"""In-process login throttle for embedded mode (one process, so one counter is enough)."""

from __future__ import annotations

import time


class MemoryLoginThrottle:
    _MAX_KEYS = 100_000  # bound memory under a flood of distinct keys

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._counters.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._counters[key]
            return None
        return entry

    async def failures(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        entry = self._live(key, now)
        return (0, 0.0) if entry is None else (entry[0], entry[1] - now)

    async def record_failure(self, key: str, window_s: int) -> tuple[int, float]:
        now = time.monotonic()
        entry = self._live(key, now)
        if entry is None:
            if len(self._counters) >= self._MAX_KEYS:
                self._evict(now)
            entry = (0, now + window_s)
        count, ends = entry[0] + 1, entry[1]
        self._counters[key] = (count, ends)
        return count, ends - now

    def _evict(self, now: float) -> None:
        for stale in [k for k, (_, ends) in self._counters.items() if ends <= now]:
            del self._counters[stale]
        while len(self._counters) >= self._MAX_KEYS:
            del self._counters[next(iter(self._counters))]

    async def clear(self, key: str) -> None:
        self._counters.pop(key, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._counters.clear()
