"""The ``SearchCache`` port: answers per owner and query, invalidated per owner, hot queries.

Invalidation is a per-owner generation that is part of every answer's key: when an owner's
documents change, the generation moves on and all their older answers become unreachable (and
expire on their own). Generations are never reused, and ``put`` stores an answer only while its
generation is still the owner's current one, so an answer computed before a change (a search
racing an update, a refresh superseded by a newer change) is never put in front of the owner.
A lost generation (expired, evicted) reads as a brand-new one: a safe, empty cache.

Refresh-ahead: every lookup counts a use of its query (with the query's description, so it can
be run again); on a change the service asks for the owner's hottest queries and computes them
against the new data under the new generation. The counts are bounded per owner (the least used
are dropped) and age by half at each change, so queries that cooled down stop being refreshed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

#: Each change halves every count of the owner: a query's score is about twice its uses
#: between two changes while its rate holds.
DEFAULT_DECAY = 0.5
#: Counts aged below this are forgotten.
FORGET_BELOW = 0.01


def query_description(fields: dict[str, Any]) -> bytes:
    """What a query is counted and stored as, to be run again by a refresh."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def query_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(query_description(fields)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class HotQuery:
    key: str
    description: bytes
    score: float


class SearchCache(Protocol):
    @property
    def name(self) -> str:
        """Names the backing store (for /ready)."""

    async def generation(self, owner_id: str) -> int:
        """The owner's current generation (a new, never used one if they have none)."""

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        """A stored answer, or None (does not count as a use)."""

    async def lookup(
        self, owner_id: str, generation: int, key: str, description: bytes
    ) -> bytes | None:
        """A stored answer, or None; counts a use of the query toward the owner's hot ones."""

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> bool:
        """Store an answer for the cache's time to live, if ``generation`` is still current;
        False (and nothing stored) once the owner's data has changed since."""

    async def invalidate(self, owner_id: str) -> int:
        """Move the owner to a new generation: earlier answers are never returned again."""

    async def hot_queries(self, owner_id: str, limit: int, min_score: float) -> list[HotQuery]:
        """Up to ``limit`` of the owner's most used queries with a score of at least
        ``min_score``, most used first; then ages every count of the owner (one call per
        change)."""

    async def ping(self) -> None:
        """Raise if the cache cannot answer (for /ready)."""
