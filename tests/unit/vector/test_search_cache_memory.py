"""The in-memory search cache: time to live, LRU bound, per-owner invalidation."""

from __future__ import annotations

from kglab_vector.cache.memory import InMemorySearchCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache = InMemorySearchCache(ttl_s=10, clock=clock)
    await cache.put("alice", 0, "k", b"v")
    clock.now = 9.9
    assert await cache.get("alice", 0, "k") == b"v"
    clock.now = 10.0
    assert await cache.get("alice", 0, "k") is None


async def test_the_least_recently_used_entry_goes_first() -> None:
    cache = InMemorySearchCache(max_entries=2)
    await cache.put("o", 0, "a", b"1")
    await cache.put("o", 0, "b", b"2")
    assert await cache.get("o", 0, "a") == b"1"  # a is now the most recent
    await cache.put("o", 0, "c", b"3")
    assert await cache.get("o", 0, "b") is None
    assert await cache.get("o", 0, "a") == b"1"


async def test_invalidation_touches_only_that_owner() -> None:
    cache = InMemorySearchCache()
    await cache.put("alice", 0, "k", b"a")
    await cache.put("bob", 0, "k", b"b")
    await cache.invalidate("alice")
    assert await cache.generation("alice") == 1
    assert await cache.generation("bob") == 0
    assert await cache.get("alice", 0, "k") is None
    assert await cache.get("bob", 0, "k") == b"b"
