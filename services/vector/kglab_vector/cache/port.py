"""The ``SearchCache`` port: answers per owner and query, invalidated per owner.

Invalidation is a per-owner generation number that is part of every key: when an owner's
documents change, the generation is bumped and all their older answers become unreachable (and
expire on their own). An answer computed before a bump is stored under the old generation, so a
search racing an update cannot put a stale answer back in front of the owner.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol


def query_key(fields: dict[str, Any]) -> str:
    raw = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class SearchCache(Protocol):
    @property
    def name(self) -> str:
        """Names the backing store (for /ready)."""

    async def generation(self, owner_id: str) -> int:
        """The owner's current generation (0 before the first change)."""

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        """A stored answer, or None."""

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> None:
        """Store an answer for the cache's time to live."""

    async def invalidate(self, owner_id: str) -> None:
        """Bump the owner's generation: their earlier answers are never returned again."""

    async def ping(self) -> None:
        """Raise if the cache cannot answer (for /ready)."""
