"""The in-process search cache (make dev, tests): bounded LRU with a time to live."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class InMemorySearchCache:
    name = "memory"

    def __init__(
        self,
        *,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._generations: dict[str, int] = {}
        self._entries: OrderedDict[tuple[str, int, str], tuple[float, bytes]] = OrderedDict()

    async def generation(self, owner_id: str) -> int:
        return self._generations.get(owner_id, 0)

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        slot = (owner_id, generation, key)
        entry = self._entries.get(slot)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[slot]
            return None
        self._entries.move_to_end(slot)
        return value

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> None:
        slot = (owner_id, generation, key)
        self._entries[slot] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def invalidate(self, owner_id: str) -> None:
        self._generations[owner_id] = self._generations.get(owner_id, 0) + 1
        # Old generations can never be read again; drop them now rather than wait for LRU.
        for slot in [s for s in self._entries if s[0] == owner_id]:
            del self._entries[slot]

    async def ping(self) -> None:
        return None
