"""The in-process search cache (make dev, tests): cachetools' LRU with a time to live.

Bounded everywhere: answers (``max_entries``, LRU), owners with a generation or hot-query
counts (``max_owners``, LRU), counted queries per owner (``hot_tracked``, least used dropped).
Generations come from one process-wide counter, so an owner dropped from the LRU comes back
under a generation never used before: their old answers can never be read again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from cachetools import LRUCache, TTLCache

from kglab_vector.cache.port import DEFAULT_DECAY, FORGET_BELOW, HotQuery


class InMemorySearchCache:
    name = "memory"

    def __init__(
        self,
        *,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        max_owners: int = 10_000,
        hot_tracked: int = 512,
        decay: float = DEFAULT_DECAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hot_tracked = hot_tracked
        self._decay = decay
        self._next_generation = itertools.count(1)
        self._generations: LRUCache[str, int] = LRUCache(max_owners)
        self._entries: TTLCache[tuple[str, int, str], bytes] = TTLCache(
            max_entries, ttl=ttl_s, timer=clock
        )
        #: owner -> query key -> [score, description]
        self._hot: LRUCache[str, dict[str, tuple[float, bytes]]] = LRUCache(max_owners)

    async def generation(self, owner_id: str) -> int:
        generation = self._generations.get(owner_id)
        if generation is None:
            return self._new_generation(owner_id)
        return generation

    def _new_generation(self, owner_id: str) -> int:
        generation = next(self._next_generation)
        self._generations[owner_id] = generation
        return generation

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        return self._entries.get((owner_id, generation, key))

    async def lookup(
        self, owner_id: str, generation: int, key: str, description: bytes
    ) -> bytes | None:
        self._count(owner_id, key, description)
        return await self.get(owner_id, generation, key)

    def _count(self, owner_id: str, key: str, description: bytes) -> None:
        counts = self._hot.get(owner_id)
        if counts is None:
            counts = self._hot[owner_id] = {}
        score, _ = counts.get(key, (0.0, description))
        counts[key] = (score + 1.0, description)
        if len(counts) > self._hot_tracked:
            # The least used goes, never the query just counted: a new one gets a chance.
            del counts[min((k for k in counts if k != key), key=lambda k: (counts[k][0], k))]

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> bool:
        if self._generations.get(owner_id) != generation:
            return False
        self._entries[(owner_id, generation, key)] = value
        return True

    async def invalidate(self, owner_id: str) -> int:
        generation = self._new_generation(owner_id)
        # Old generations can never be read again; drop them now rather than wait for LRU.
        for slot in [s for s in self._entries if s[0] == owner_id]:
            self._entries.pop(slot, None)
        return generation

    async def hot_queries(self, owner_id: str, limit: int, min_score: float) -> list[HotQuery]:
        counts = self._hot.get(owner_id)
        if not counts or limit <= 0:
            return []
        ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
        hot = [
            HotQuery(key, description, score)
            for key, (score, description) in ranked[:limit]
            if score >= min_score
        ]
        aged = {
            key: (score * self._decay, description)
            for key, (score, description) in counts.items()
            if score * self._decay >= FORGET_BELOW
        }
        if aged:
            self._hot[owner_id] = aged
        else:
            del self._hot[owner_id]
        return hot

    async def ping(self) -> None:
        return None
