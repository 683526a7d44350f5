"""Refresh-ahead of hot answers after a change, through the service, on each search cache
(memory and a real Redis) over Qdrant's in-memory local mode.

Hot queries are searched again when the owner's documents change, cold ones are not; every
answer served afterwards includes the change; a refresh is bounded in count and time; a
failing refresh leaves the answers merely invalidated; a search or refresh that races a
change never leaves a pre-change answer behind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient

from kglab_shared.events import DocumentDeleted, DocumentStored, ExtractedChunk
from kglab_vector.cache.port import SearchCache, query_key
from kglab_vector.domain import SearchHit, SearchQuery
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.service import CacheRefresh, Indexer, VectorService
from kglab_vector.store.qdrant import QdrantVectorStore
from tests.conftest import unique_name
from tests.contract.vector.conftest import CacheFactory

ALICE = "user-alice"


class FaultyStore(QdrantVectorStore):
    """The real local-mode store, with faults a test can switch on: slow searches, failing
    searches, and a search held (after computing its answer) until the test lets it go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = 0.0
        self.fail = False
        self.hold_next = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.searches = 0

    async def search(self, owner_id: str, **kwargs: Any) -> list[SearchHit]:
        self.searches += 1
        if self.fail:
            raise RuntimeError("qdrant is unreachable")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        hits = await super().search(owner_id, **kwargs)
        if self.hold_next:
            self.hold_next = False
            self.held.set()
            await self.release.wait()
        return hits


@pytest.fixture
async def store() -> AsyncIterator[FaultyStore]:
    client = AsyncQdrantClient(location=":memory:")
    store = FaultyStore(client, unique_name("kglab_test_refresh"), local=True, candidates=20)
    await store.open(indexer().space)
    yield store
    await store.close()


def indexer() -> Indexer:
    return Indexer(HashingEmbedder(64), Bm25SparseEncoder())


def stored(document_id: str, *texts: str) -> tuple[DocumentStored, list[ExtractedChunk]]:
    chunks = [
        ExtractedChunk(chunk_id=f"{document_id}-{n}", position=n, text=text)
        for n, text in enumerate(texts)
    ]
    event = DocumentStored(
        document_id=document_id,
        owner_id=ALICE,
        title=document_id,
        media_type="text/plain",
        chunk_count=len(chunks),
        claim="unused: the chunks are given",
    )
    return event, chunks


WORDS = ("salt", "wool", "glass", "timber", "copper", "honey")


async def seeded(
    store: FaultyStore, cache: SearchCache, refresh: CacheRefresh | None = None
) -> VectorService:
    service = VectorService(store, indexer(), cache, refresh=refresh)
    await service.index_document(*stored("doc-old", *(f"old {w} trade" for w in WORDS)))
    return service


def query(word: str) -> SearchQuery:
    return SearchQuery(owner_id=ALICE, text=f"{word} trade")


async def ask(service: VectorService, word: str, times: int = 1) -> tuple[list[SearchHit], bool]:
    answer: tuple[list[SearchHit], bool] = ([], False)
    for _ in range(times):
        answer = await service.search(query(word))
    return answer


async def cached_now(service: VectorService, word: str) -> list[str] | None:
    """The documents of the answer the cache would serve now (without counting a use)."""
    generation = await service.cache.generation(ALICE)
    raw = await service.cache.get(ALICE, generation, query_key(query(word).cache_fields()))
    return None if raw is None else sorted({hit["document_id"] for hit in json.loads(raw)})


async def test_hot_answers_are_refreshed_after_a_change_and_cold_ones_are_not(
    store: FaultyStore, cache: SearchCache
) -> None:
    service = await seeded(store, cache)
    await ask(service, "salt", 3)
    await ask(service, "wool", 2)
    await ask(service, "glass", 1)  # used once: below min_uses, not worth a search

    await service.index_document(*stored("doc-new", "new salt wool glass trade"))

    assert service.refresh_stats.searches == 2
    assert await cached_now(service, "salt") == ["doc-new", "doc-old"]
    assert await cached_now(service, "wool") == ["doc-new", "doc-old"]
    assert await cached_now(service, "glass") is None
    for word in ("salt", "wool"):
        hits, cached = await ask(service, word)
        assert cached
        assert "doc-new" in {h.document_id for h in hits}
    hits, cached = await ask(service, "glass")
    assert not cached
    assert "doc-new" in {h.document_id for h in hits}

    # A deletion refreshes too, and the refreshed answers no longer hold the document.
    await service.remove_document(DocumentDeleted(document_id="doc-new", owner_id=ALICE))
    hits, cached = await ask(service, "salt")
    assert cached
    assert {h.document_id for h in hits} == {"doc-old"}


async def test_refreshed_answers_equal_answers_computed_on_demand(
    store: FaultyStore, cache: SearchCache
) -> None:
    service = await seeded(store, cache)
    await ask(service, "copper", 3)
    await service.index_document(*stored("doc-new", "new copper trade"))
    refreshed, cached = await ask(service, "copper")
    assert cached
    on_demand = await VectorService(store, indexer(), cache, refresh=CacheRefresh(top=0))._search(
        query("copper")
    )
    # Same chunks, same order; scores equal up to local mode's float32 arithmetic.
    assert [(h.chunk_id, h.text) for h in refreshed] == [(h.chunk_id, h.text) for h in on_demand]
    assert [h.score for h in refreshed] == pytest.approx([h.score for h in on_demand], rel=1e-5)
    assert "doc-new" in {h.document_id for h in refreshed}


async def test_refresh_is_bounded_in_count(store: FaultyStore, cache: SearchCache) -> None:
    service = await seeded(store, cache, CacheRefresh(top=2, min_uses=1))
    for uses, word in enumerate(WORDS, start=2):
        await ask(service, word, uses)  # honey most used, salt least
    await service.index_document(*stored("doc-new", "new trade"))
    assert service.refresh_stats.searches == 2
    assert await cached_now(service, "honey") == ["doc-new", "doc-old"]
    assert await cached_now(service, "copper") == ["doc-new", "doc-old"]
    for word in ("salt", "wool", "glass", "timber"):
        assert await cached_now(service, word) is None


async def test_refresh_is_bounded_in_time(store: FaultyStore, cache: SearchCache) -> None:
    service = await seeded(store, cache, CacheRefresh(top=10, min_uses=1, budget_s=0.25))
    for word in WORDS:
        await ask(service, word, 2)
    store.delay_s = 0.1
    before = service.refresh_stats.seconds
    assert await service.index_document(*stored("doc-new", "new trade")) == 1
    stats = service.refresh_stats
    assert stats.timed_out == 1
    assert stats.seconds - before < 1.0  # stopped at its budget, not after all six
    assert stats.searches < len(WORDS)
    store.delay_s = 0.0
    # What was refreshed is current; the rest is computed on demand, current too.
    for word in WORDS:
        hits, _ = await ask(service, word)
        assert "doc-new" in {h.document_id for h in hits}


async def test_a_failing_refresh_leaves_the_answers_invalidated(
    store: FaultyStore, cache: SearchCache
) -> None:
    service = await seeded(store, cache)
    await ask(service, "salt", 3)
    store.fail = True
    # The change itself succeeds: the refresh is a bonus, its failure is only logged.
    assert await service.index_document(*stored("doc-new", "new salt trade")) == 1
    assert service.refresh_stats.failed == 1
    assert await cached_now(service, "salt") is None
    store.fail = False
    hits, cached = await ask(service, "salt")
    assert not cached
    assert "doc-new" in {h.document_id for h in hits}


async def test_a_search_racing_a_change_leaves_no_stale_answer(
    store: FaultyStore, cache: SearchCache
) -> None:
    service = await seeded(store, cache, CacheRefresh(top=0))
    # The search computes its answer before the change lands and stores it after.
    store.hold_next = True
    racing = asyncio.create_task(ask(service, "salt"))
    await asyncio.wait_for(store.held.wait(), 5)
    await service.index_document(*stored("doc-new", "new salt trade"))
    store.release.set()
    hits, _ = await racing
    assert {h.document_id for h in hits} == {"doc-old"}  # that request began before the change
    assert await cached_now(service, "salt") is None  # ... and its answer was not kept
    hits, cached = await ask(service, "salt")
    assert not cached
    assert "doc-new" in {h.document_id for h in hits}


async def test_a_refresh_racing_a_newer_change_leaves_no_stale_answer(
    store: FaultyStore, cache: SearchCache
) -> None:
    service = await seeded(store, cache)
    await ask(service, "salt", 6)  # still hot (3) after the first change halves its count
    # The first change's refresh computes 'salt' before the second change lands; it must not
    # store that answer, which lacks the second document.
    store.hold_next = True
    first = asyncio.create_task(service.index_document(*stored("doc-one", "one salt trade")))
    await asyncio.wait_for(store.held.wait(), 5)
    await service.index_document(*stored("doc-two", "two salt trade"))
    store.release.set()
    assert await first == 1
    assert service.refresh_stats.superseded == 1
    hits, cached = await ask(service, "salt")
    assert cached  # refreshed by the second change
    assert {"doc-one", "doc-two"} <= {h.document_id for h in hits}


async def test_refresh_off_counts_nothing(store: FaultyStore, cache_factory: CacheFactory) -> None:
    cache = cache_factory(ttl_s=60)
    service = await seeded(store, cache, CacheRefresh(top=0))
    await ask(service, "salt", 3)
    before = store.searches
    await service.index_document(*stored("doc-new", "new salt trade"))
    assert store.searches == before
    assert await cache.hot_queries(ALICE, 10, 0) == []


async def test_a_burst_of_changes_without_searches_refreshes_less_each_time(
    store: FaultyStore, cache: SearchCache
) -> None:
    # Counts halve at every change: with nobody searching in between, a batch upload stops
    # refreshing after a few documents instead of searching again for each one.
    service = await seeded(store, cache)
    await ask(service, "salt", 8)
    await ask(service, "wool", 3)
    searched = []
    for n in range(5):
        before = service.refresh_stats.searches
        await service.index_document(*stored(f"doc-{n}", f"batch {n} salt trade"))
        searched.append(service.refresh_stats.searches - before)
    assert searched == [2, 1, 1, 0, 0]  # salt 8, 4, 2, 1; wool 3, 1.5
