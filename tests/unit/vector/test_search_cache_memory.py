"""The in-memory search cache: time to live, LRU bounds, per-owner invalidation."""

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
    generation = await cache.generation("alice")
    await cache.put("alice", generation, "k", b"v")
    clock.now = 9.9
    assert await cache.get("alice", generation, "k") == b"v"
    clock.now = 10.0
    assert await cache.get("alice", generation, "k") is None


async def test_the_least_recently_used_entry_goes_first() -> None:
    cache = InMemorySearchCache(max_entries=2)
    g = await cache.generation("o")
    await cache.put("o", g, "a", b"1")
    await cache.put("o", g, "b", b"2")
    assert await cache.get("o", g, "a") == b"1"  # a is now the most recent
    await cache.put("o", g, "c", b"3")
    assert await cache.get("o", g, "b") is None
    assert await cache.get("o", g, "a") == b"1"


async def test_invalidation_touches_only_that_owner() -> None:
    cache = InMemorySearchCache()
    alice, bob = await cache.generation("alice"), await cache.generation("bob")
    await cache.put("alice", alice, "k", b"a")
    await cache.put("bob", bob, "k", b"b")
    assert await cache.invalidate("alice") > alice
    assert await cache.generation("bob") == bob
    assert await cache.get("alice", alice, "k") is None
    assert await cache.get("bob", bob, "k") == b"b"


async def test_hot_counts_are_bounded_in_owners_too() -> None:
    cache = InMemorySearchCache(max_owners=2)
    for owner in ("a", "b", "c"):
        await cache.lookup(owner, await cache.generation(owner), "k", b"k")
    assert await cache.hot_queries("a", 5, 0) == []
    assert [h.key for h in await cache.hot_queries("c", 5, 0)] == ["k"]
