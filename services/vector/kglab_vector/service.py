"""The vector service layer: index a stored document, remove a deleted one, answer searches."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from kglab_shared.bus.idempotency import InMemoryProcessedEvents, ProcessedEvents
from kglab_shared.events import DocumentDeleted, DocumentStored, ExtractedChunk
from kglab_shared.logging import get_logger
from kglab_shared.metrics import CACHE_REQUESTS
from kglab_vector.cache.port import SearchCache, query_description, query_key
from kglab_vector.domain import (
    ChunkRecord,
    IndexedChunk,
    SearchHit,
    SearchMode,
    SearchQuery,
    SparseVector,
    snippet,
)
from kglab_vector.embedding.port import Embedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.messaging.publish import PartsRemovedPublisher
from kglab_vector.store.port import IndexSpace, VectorStore

_log = get_logger(__name__)


class Indexer:
    """Chunks to dense and sparse vectors, in batches, off the event loop, one job at a time."""

    def __init__(
        self, embedder: Embedder, sparse: Bm25SparseEncoder, *, batch_size: int = 32
    ) -> None:
        self.embedder = embedder
        self.sparse = sparse
        self._batch_size = batch_size
        # The model is CPU-bound; concurrent documents queue here instead of oversubscribing.
        self._lock = asyncio.Lock()

    @property
    def space(self) -> IndexSpace:
        return IndexSpace(self.embedder.model_name, self.embedder.dimension, self.sparse.name)

    async def index(self, records: Sequence[ChunkRecord]) -> list[IndexedChunk]:
        indexed: list[IndexedChunk] = []
        for start in range(0, len(records), self._batch_size):
            batch = records[start : start + self._batch_size]
            passages = [r.passage for r in batch]
            async with self._lock:
                dense = await asyncio.to_thread(self.embedder.embed_documents, passages)
            indexed.extend(
                IndexedChunk(record=r, dense=d, sparse=self.sparse.encode_document(p))
                for r, d, p in zip(batch, dense, passages, strict=True)
            )
        return indexed

    async def embed_query(self, text: str) -> list[float]:
        # Not behind the documents' lock: the embedder runs queries on a session of their own,
        # so a search does not wait for a batch of chunks (adr/0025).
        return await asyncio.to_thread(self.embedder.embed_query, text)


def records_of(event: DocumentStored, chunks: Sequence[ExtractedChunk]) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            owner_id=event.owner_id,
            document_id=event.document_id,
            chunk_id=chunk.chunk_id,
            position=chunk.position,
            text=chunk.text,
            title=event.title,
            heading=chunk.heading,
            media_type=event.media_type,
        )
        for chunk in chunks
    ]


@dataclass(frozen=True, slots=True)
class CacheRefresh:
    """Refresh-ahead of an owner's hot answers after each change of their documents.

    ``top`` hottest queries (0: off) that were used at least ``min_uses`` times (counts halve
    at every change, so about half that many times since the last one), run again against the
    new data within ``budget_s`` seconds, hottest first.
    """

    top: int = 128
    min_uses: float = 2.0
    budget_s: float = 2.0


@dataclass(slots=True)
class RefreshStats:
    """What refresh-ahead has cost so far (for the benchmark and the logs)."""

    #: Refreshes finished (one per change), whatever their outcome.
    changes: int = 0
    searches: int = 0
    already_cached: int = 0
    superseded: int = 0
    timed_out: int = 0
    failed: int = 0
    seconds: float = 0.0
    #: Query keys stored by the latest refresh.
    last_keys: list[str] = field(default_factory=list)


#: Ledger group of deleted documents (``owner:document``): their tombstones.
DELETED_GROUP = "vector-deleted-documents"


class VectorService:
    def __init__(
        self,
        store: VectorStore,
        indexer: Indexer,
        cache: SearchCache,
        publisher: PartsRemovedPublisher | None = None,
        *,
        snippet_chars: int = 300,
        tombstones: ProcessedEvents | None = None,
        refresh: CacheRefresh | None = None,
        min_relevance: float = 0.0,
    ) -> None:
        self.store = store
        #: Below this dense (cosine) score of the best chunk, nothing is relevant: the answer is
        #: empty; below it a chunk enters the answer only by the query's words (0 turns both
        #: off; adr/0024 has the calibration).
        self.min_relevance = min_relevance
        self.indexer = indexer
        self.cache = cache
        self._publisher = publisher
        self._snippet_chars = snippet_chars
        self._tombstones = tombstones or InMemoryProcessedEvents()
        self._refresh = refresh or CacheRefresh()
        self.refresh_stats = RefreshStats()
        # Index and delete of one document never interleave in this process; across processes
        # the tombstone check after the upsert settles it (see index_document).
        #: (owner, document) -> its lock and how many tasks hold or wait for it.
        self._document_locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def _document(self, owner_id: str, document_id: str) -> AsyncIterator[None]:
        key = (owner_id, document_id)
        lock, users = self._document_locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._document_locks[key]

    async def _is_deleted(self, owner_id: str, document_id: str) -> bool:
        return await self._tombstones.has(DELETED_GROUP, f"{owner_id}:{document_id}")

    async def index_document(self, event: DocumentStored, chunks: Sequence[ExtractedChunk]) -> int:
        """Make the index hold exactly the document's chunks; a repeat writes the same points.

        A deleted document is never brought back: not by a late ``document.stored`` (any event
        id), and not by one being embedded while the deletion ran elsewhere. The deletion
        writes its tombstone before removing points, and this checks it after writing them.
        """
        owner_id, document_id = event.owner_id, event.document_id
        async with self._document(owner_id, document_id):
            if await self._is_deleted(owner_id, document_id):
                _log.info("vector_document_already_deleted", document_id=document_id)
                return 0
            records = records_of(event, chunks)
            indexed = await self.indexer.index(records)
            await self.store.upsert(indexed)
            await self.store.remove_other_chunks(
                owner_id, document_id, [r.chunk_id for r in records]
            )
            if await self._is_deleted(owner_id, document_id):
                await self.store.delete_document(owner_id, document_id)
                _log.info("vector_document_deleted_while_indexing", document_id=document_id)
                return 0
        generation = await self.cache.invalidate(owner_id)
        _log.info("vector_document_indexed", document_id=document_id, chunks=len(records))
        await self.refresh_hot_answers(owner_id, generation)
        return len(records)

    async def remove_document(self, event: DocumentDeleted) -> None:
        """Delete the document's points, then say so (after the delete is confirmed)."""
        async with self._document(event.owner_id, event.document_id):
            await self._tombstones.mark(DELETED_GROUP, f"{event.owner_id}:{event.document_id}")
            await self.store.delete_document(event.owner_id, event.document_id)
        generation = await self.cache.invalidate(event.owner_id)
        if self._publisher is not None:
            await self._publisher.parts_removed(event.owner_id, event.document_id)
        _log.info("vector_document_removed", document_id=event.document_id)
        await self.refresh_hot_answers(event.owner_id, generation)

    async def refresh_hot_answers(self, owner_id: str, generation: int) -> int:
        """Compute the owner's hot queries again under ``generation`` (taken after the change
        was written, so every answer sees it); how many were searched.

        Runs in the event consumer, never on a user's request. Bounded by ``CacheRefresh``;
        stops early once a newer change moved the owner on (that change refreshes for itself).
        Any failure only leaves the answers invalidated: the change is done, this is a bonus.
        """
        if self._refresh.top <= 0:
            return 0
        stats, started, searches = self.refresh_stats, time.perf_counter(), 0
        stats.last_keys = []
        deadline = started + self._refresh.budget_s
        try:
            # The deadline is checked between searches too: redis-py's asyncio client can lose
            # a cancellation that lands inside a command (redis/redis-py#2551), and then the
            # timeout alone would let the loop run on.
            async with asyncio.timeout(self._refresh.budget_s):
                hot = await self.cache.hot_queries(
                    owner_id, self._refresh.top, self._refresh.min_uses
                )
                for item in hot:
                    if time.perf_counter() >= deadline:
                        raise TimeoutError
                    try:
                        query = SearchQuery.from_cache_fields(
                            owner_id, json.loads(item.description)
                        )
                    except ValueError:
                        _log.warning("search_cache_unreadable_hot_query", key=item.key)
                        continue
                    key = query_key(query.cache_fields())
                    if await self.cache.get(owner_id, generation, key) is not None:
                        stats.already_cached += 1  # a user's search got there first
                        continue
                    hits = await self._search(query)
                    searches += 1
                    if not await self.cache.put(owner_id, generation, key, _encode(hits)):
                        stats.superseded += 1
                        break
                    stats.last_keys.append(key)
        except TimeoutError:
            stats.timed_out += 1
            _log.warning("search_cache_refresh_over_budget", owner_id=owner_id, searches=searches)
        except Exception:
            stats.failed += 1
            _log.exception("search_cache_refresh_failed", owner_id=owner_id, searches=searches)
        elapsed = time.perf_counter() - started
        stats.changes += 1
        stats.searches += searches
        stats.seconds += elapsed
        _log.info(
            "search_cache_refreshed",
            owner_id=owner_id,
            searches=searches,
            ms=round(elapsed * 1000, 1),
        )
        return searches

    async def search(self, query: SearchQuery) -> tuple[list[SearchHit], bool]:
        """The owner's best chunks for the query, and whether the answer came from the cache."""
        fields = query.cache_fields()
        key = query_key(fields)
        generation = await self.cache.generation(query.owner_id)
        if self._refresh.top > 0:
            cached = await self.cache.lookup(
                query.owner_id, generation, key, query_description(fields)
            )
        else:
            cached = await self.cache.get(query.owner_id, generation, key)
        if cached is not None:
            CACHE_REQUESTS.labels("search", "hit").inc()
            return [SearchHit(**item) for item in json.loads(cached)], True
        CACHE_REQUESTS.labels("search", "miss").inc()
        hits = await self._search(query)
        # Refused if the owner's documents changed meanwhile: this answer may predate that.
        await self.cache.put(query.owner_id, generation, key, _encode(hits))
        return hits, False

    async def _anything_relevant(
        self, query: SearchQuery, dense: list[float], sparse: SparseVector | None
    ) -> bool:
        """Whether any chunk is about the query: its meaning is close enough (the best chunk's
        cosine; fused scores are ranks and cannot say), or a chunk has every word of it (an
        identifier or a rare name embeds far from everything yet is found by its words)."""
        best = await self.store.search(
            query.owner_id, dense=dense, sparse=None, limit=1, filters=query.filters
        )
        if best and best[0].score >= self.min_relevance:
            return True
        if sparse is None or not sparse.indices:
            return False
        worded = await self.store.search(
            query.owner_id, dense=None, sparse=sparse, limit=3, filters=query.filters
        )
        wanted = set(sparse.indices)
        return any(_has_every_term(wanted, hit.text, self.indexer.sparse) for hit in worded)

    async def _search(self, query: SearchQuery) -> list[SearchHit]:
        dense = (
            await self.indexer.embed_query(query.text)
            if query.mode in (SearchMode.HYBRID, SearchMode.DENSE)
            else None
        )
        sparse = (
            self.indexer.sparse.encode_query(query.text)
            if query.mode in (SearchMode.HYBRID, SearchMode.SPARSE)
            else None
        )
        if dense is not None and self.min_relevance > 0:
            if not await self._anything_relevant(query, dense, sparse):
                return []
        # The same threshold per chunk: once one chunk is relevant, fusion would otherwise fill
        # the limit with whatever is nearest, however far ("salt mining" answered with a
        # Python history). A chunk stays when its meaning is close or it has the query's words.
        hits = await self.store.search(
            query.owner_id,
            dense=dense,
            sparse=sparse,
            limit=query.limit,
            filters=query.filters,
            dense_floor=self.min_relevance,
        )
        return [
            SearchHit(
                document_id=h.document_id,
                chunk_id=h.chunk_id,
                position=h.position,
                title=h.title,
                heading=h.heading,
                text=snippet(h.text, query.text, self._snippet_chars),
                score=h.score,
            )
            for h in hits
        ]


def _has_every_term(terms: set[int], text: str, encoder: Bm25SparseEncoder) -> bool:
    return terms <= set(encoder.encode_query(text).indices)


def _encode(hits: list[SearchHit]) -> bytes:
    payload: list[dict[str, Any]] = [asdict(hit) for hit in hits]
    return json.dumps(payload).encode()
