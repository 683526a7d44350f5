"""The vector service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import lru_cache

import httpx
from fastapi import FastAPI

from kglab_shared.app import create_service_app
from kglab_shared.bus.idempotency import (
    InMemoryProcessedEvents,
    ProcessedEvents,
    RedisProcessedEvents,
)
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.health import Readiness
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import StoreKind, load_settings
from kglab_vector.api.routes import router
from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.cache.port import SearchCache
from kglab_vector.cache.redis import RedisSearchCache
from kglab_vector.config import VectorSettings
from kglab_vector.embedding.background import BackgroundLoadedEmbedder
from kglab_vector.embedding.port import Embedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.graph import HttpGraphClient
from kglab_vector.messaging import consume
from kglab_vector.messaging.publish import PartsRemovedPublisher
from kglab_vector.service import CacheRefresh, Indexer, VectorService
from kglab_vector.store.port import VectorStore
from kglab_vector.store.qdrant import QdrantVectorStore

MEMORY = ":memory:"


def create_embedder(settings: VectorSettings) -> Embedder:
    """The one place that chooses the embedder. The ONNX model loads in a background thread
    (:meth:`BackgroundLoadedEmbedder.start`); its vector space is known before it loads."""
    if settings.embedder == "hashing":
        from kglab_vector.embedding.hashing import HashingEmbedder

        return HashingEmbedder(settings.hashing_dimension)
    from kglab_vector.embedding.background import BackgroundLoadedEmbedder
    from kglab_vector.embedding.onnx import MINILM_L6_V2_INT8, OnnxEmbedder

    threads, batch_size = settings.embed_threads, settings.embed_model_batch_size
    return BackgroundLoadedEmbedder(
        MINILM_L6_V2_INT8.name,
        MINILM_L6_V2_INT8.dimension,
        lambda: _shared_onnx_embedder(OnnxEmbedder, threads, batch_size),
        wait_s=settings.model_wait_s,
    )


@lru_cache(maxsize=2)
def _shared_onnx_embedder(
    factory: Callable[..., Embedder], threads: int, batch_size: int
) -> Embedder:
    """One model per process and settings: the sessions are read-only and lock their own runs,
    and an app built again in the same process (``make dev``'s tests build one per test) would
    otherwise load two more ONNX sessions, with their memory arenas, each time."""
    return factory(threads=threads, batch_size=batch_size)


@asynccontextmanager
async def open_vector_store(
    settings: VectorSettings, indexer: Indexer, readiness: Readiness
) -> AsyncIterator[VectorStore]:
    """A Qdrant server when ``stores=real`` (``KGLAB_QDRANT_URL``), else Qdrant's engine in
    process (Qdrant Edge, adr/0025) in a folder under ``KGLAB_DATA_DIR``."""
    store: VectorStore
    if settings.stores is StoreKind.REAL:
        from qdrant_client import AsyncQdrantClient

        if not settings.qdrant_url:
            from kglab_shared.settings import ConfigurationError

            raise ConfigurationError(
                "KGLAB_STORES=real needs KGLAB_QDRANT_URL for the vector service."
            )
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = AsyncQdrantClient(
            url=settings.qdrant_url, api_key=api_key, timeout=settings.qdrant_timeout_s
        )
        store = QdrantVectorStore(
            client, settings.collection, local=False, candidates=settings.fusion_candidates
        )
        check = "qdrant"
    else:
        from kglab_vector.store.edge import EdgeVectorStore

        folder = (
            None
            if settings.qdrant_local_path == MEMORY
            else settings.data_dir / settings.qdrant_local_path
        )
        store = EdgeVectorStore(
            folder,
            settings.collection,
            candidates=settings.fusion_candidates,
            dense_datatype=settings.edge_dense_datatype,
        )
        check = "qdrant_edge"
    try:
        await store.open(
            indexer.space, reembed=indexer.index if settings.reembed_on_model_change else None
        )
        readiness.add(check, store.ping)
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_cache_and_ledger(
    settings: VectorSettings, readiness: Readiness
) -> AsyncIterator[tuple[SearchCache, ProcessedEvents]]:
    """Redis (answers and handled event ids) with real stores and a Redis URL (or when asked
    for); else memory."""
    use_redis = settings.cache == "redis" or (
        settings.cache == "auto"
        and settings.stores is StoreKind.REAL
        and settings.redis_url is not None
    )
    if use_redis:
        from redis.asyncio import Redis

        redis: Redis = Redis.from_url(settings.secret("redis_url"))
        try:
            prefix = settings.redis_prefix
            cache = RedisSearchCache(
                redis,
                prefix=f"{prefix}search:",
                ttl_s=settings.cache_ttl_s,
                hot_tracked=settings.cache_hot_tracked,
                hot_ttl_s=settings.cache_hot_ttl_s,
            )
            readiness.add("redis", cache.ping)
            yield cache, RedisProcessedEvents(redis, prefix=f"{prefix}processed:")
        finally:
            await redis.aclose()
        return
    yield (
        InMemorySearchCache(
            ttl_s=settings.cache_ttl_s,
            max_entries=settings.cache_max_entries,
            hot_tracked=settings.cache_hot_tracked,
        ),
        InMemoryProcessedEvents(),
    )


def create_app(
    settings: VectorSettings | None = None,
    *,
    bus: EventBus | None = None,
    graph_transport: httpx.AsyncBaseTransport | None = None,
    document_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the vector service; ``bus`` is injected when several services share one process,
    ``graph_transport`` and ``document_transport`` when those services run in it too."""
    settings = settings or load_settings(VectorSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(service_runtime(app, settings, bus=bus))
            # Verifying and loading the model takes about a second of CPU: in the background,
            # named in /ready until it is loaded; calls that need vectors wait for it.
            embedder = create_embedder(settings)
            if isinstance(embedder, BackgroundLoadedEmbedder):
                app.state.readiness.add("embedding_model", embedder.start().check)
            indexer = Indexer(embedder, Bm25SparseEncoder(), batch_size=settings.embed_batch_size)
            store = await stack.enter_async_context(
                open_vector_store(settings, indexer, app.state.readiness)
            )
            cache, processed = await stack.enter_async_context(
                open_cache_and_ledger(settings, app.state.readiness)
            )
            service = VectorService(
                store,
                indexer,
                cache,
                PartsRemovedPublisher(runtime.bus, source=f"kglab/{settings.service_name}"),
                snippet_chars=settings.snippet_chars,
                tombstones=processed,
                min_relevance=settings.min_relevance(),
                refresh=CacheRefresh(
                    top=settings.cache_refresh_top,
                    min_uses=settings.cache_refresh_min_uses,
                    budget_s=settings.cache_refresh_budget_s,
                ),
            )
            graph = HttpGraphClient(
                settings.graph_url, timeout_s=settings.graph_timeout_s, transport=graph_transport
            )
            stack.push_async_callback(graph.close)
            documents = ClaimedChunkReader(settings.document_url, transport=document_transport)
            stack.push_async_callback(documents.close)
            app.state.vector_service = service
            app.state.graph_client = graph
            app.state.vector_store = store
            await consume.subscribe(
                runtime.bus, service, processed, documents, source=f"kglab/{settings.service_name}"
            )
            yield

    return create_service_app(
        settings,
        title="Knowledge Graph Lab: vector service",
        description="Embeddings and hybrid search.",
        routers=[router],
        lifespan=lifespan,
    )
