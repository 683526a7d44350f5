"""The document service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from kglab_document.api.admin import router as admin_router
from kglab_document.api.routes import internal_router, router
from kglab_document.config import DocumentSettings
from kglab_document.messaging.consume import subscribe_consumers
from kglab_document.messaging.publish import DocumentEventPublisher, deletion_relay
from kglab_document.rebuild import Rebuilder
from kglab_document.service import DocumentService
from kglab_document.store.port import DocumentStore
from kglab_shared.app import create_service_app
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.events import DocumentExtracted, ExtractedChunk
from kglab_shared.health import Readiness
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import StoreKind, load_settings

SQLITE_FILE = "documents.sqlite3"


@asynccontextmanager
async def open_document_store(
    settings: DocumentSettings, readiness: Readiness
) -> AsyncIterator[DocumentStore]:
    """The one place that chooses the adapter: Mongo when ``stores=real``, else SQLite."""
    if settings.stores is StoreKind.REAL:
        from pymongo import AsyncMongoClient

        from kglab_document.store.mongo import MongoDoc, MongoDocumentStore

        client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(
            settings.secret("mongo_url"),
            tz_aware=True,
            serverSelectionTimeoutMS=settings.mongo_timeout_ms,
            appname=f"kglab-{settings.service_name}",
        )
        try:
            mongo_store = MongoDocumentStore(client[settings.mongo_database])
            await mongo_store.ensure_indexes()
            readiness.add("mongo", mongo_store.ping)
            yield mongo_store
        finally:
            await client.close()
    else:
        from kglab_document.store.file import SqliteDocumentStore

        file_store = await SqliteDocumentStore.open(settings.data_dir / SQLITE_FILE)
        try:
            readiness.add("document_store", file_store.ping)
            yield file_store
        finally:
            await file_store.close()


def create_app(
    settings: DocumentSettings | None = None,
    *,
    bus: EventBus | None = None,
    ingestion_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the document service; ``bus`` is injected when several services share one process,
    ``ingestion_transport`` when ingestion runs in this process too."""
    settings = settings or load_settings(DocumentSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service_runtime(app, settings, bus=bus) as runtime,
            open_document_store(settings, app.state.readiness) as store,
        ):
            source = f"kglab/{settings.service_name}"
            events = DocumentEventPublisher(runtime.bus, source=source)
            ingestion = ClaimedChunkReader(settings.ingestion_url, transport=ingestion_transport)

            async def extracted_chunks(event: DocumentExtracted) -> list[ExtractedChunk] | None:
                return await ingestion.read(f"/internal/extractions/{event.job_id}", event.claim)

            # The relay and the service know each other: it calls the service, which wakes it.
            relay = deletion_relay(lambda: service.announce_pending_deletions())
            service = DocumentService(store, events, extracted_chunks, on_unannounced=relay.notify)
            app.state.document_service = service
            app.state.document_store = store
            app.state.deletion_relay = relay
            rebuilder = Rebuilder(store, events)
            app.state.rebuilder = rebuilder
            await subscribe_consumers(runtime.bus, service, source=source)
            relay.start()
            # A rebuild the service was running when it stopped goes on from its checkpoint.
            await rebuilder.resume_unfinished()
            try:
                yield
            finally:
                await rebuilder.close()
                await relay.stop()
                await ingestion.close()

    return create_service_app(
        settings,
        title="Knowledge Graph Lab: document service",
        description="Documents and their chunks.",
        routers=[router, internal_router, admin_router],
        lifespan=lifespan,
    )
