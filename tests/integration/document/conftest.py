"""The document service's app inside its lifespan, per test, on each store adapter.

``embedded`` uses a SQLite file in the test's tmp dir; ``real`` a Mongo database of its own
(dropped afterwards). Each test has its own in-process broker, so tests run in parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from kglab_document.config import DocumentSettings
from kglab_document.main import create_app
from kglab_document.service import DocumentService
from kglab_document.store.port import DocumentStore
from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_shared.bus.port import EventBus
from kglab_shared.events import (
    DocumentExtracted,
    EventEnvelope,
    ExtractedChunk,
    Provenance,
)
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.claims import claimed, holder
from tests.conftest import unique_name
from tests.waiting import wait_until

ALICE = "user-alice"
BOB = "user-bob"


def extracted_event(
    document_id: str,
    *,
    owner: str = ALICE,
    title: str = "A report",
    media_type: str = "text/plain",
    source: str = "report.txt",
    uploaded_at: datetime | None = None,
    chunks: int = 3,
) -> DocumentExtracted:
    return DocumentExtracted(
        document_id=document_id,
        job_id=f"job-{document_id}",
        owner_id=owner,
        title=title,
        media_type=media_type,
        metadata={"pages": 1},
        provenance=Provenance(
            source_name=source,
            uploader_id=owner,
            uploaded_at=uploaded_at or datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
            size_bytes=1234,
            content_type=media_type,
            sha256="cd" * 32,
            processor_version="test-1",
        ),
        chunk_count=chunks,
        claim=claimed(owner, f"job-{document_id}", chunks_of(document_id, chunks)),
    )


def chunks_of(document_id: str, count: int) -> list[ExtractedChunk]:
    return [
        ExtractedChunk(chunk_id=f"{document_id}-{i}", position=i, text=f"Part {i}.")
        for i in range(count)
    ]


@dataclass
class DocumentApp:
    app: FastAPI
    client: httpx.AsyncClient
    bus: EventBus
    codec: IdentityCodec
    received: list[EventEnvelope] = field(default_factory=list)

    @property
    def service(self) -> DocumentService:
        service: DocumentService = self.app.state.document_service
        return service

    @property
    def store(self) -> DocumentStore:
        store: DocumentStore = self.app.state.document_store
        return store

    def headers(self, user_id: str = ALICE) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.mint(Identity(user_id=user_id))}

    async def seed(self, event: DocumentExtracted) -> None:
        await self.service.store_extracted(event, chunks_of(event.document_id, event.chunk_count))

    def events_of(self, event_type: str) -> list[EventEnvelope]:
        return [e for e in self.received if e.type == event_type]

    async def wait_for(
        self, condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 5.0
    ) -> None:
        await wait_until(condition, timeout_s=timeout_s)


@pytest.fixture(params=["embedded", "real"])
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DocumentSettings]:
    overrides: dict[str, Any] = {"KGLAB_DATA_DIR": str(tmp_path), "KGLAB_BUS": "memory"}
    if request.param == "embedded":
        yield DocumentSettings(KGLAB_STORES="embedded", **overrides)
        return
    url: str = request.getfixturevalue("mongo_url")
    name = unique_name("kglab_doc_api")
    yield DocumentSettings(
        KGLAB_STORES="real", KGLAB_MONGO_URL=url, mongo_database=name, **overrides
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
def bus_factory() -> Callable[[], EventBus]:
    broker = InProcessBroker()
    return lambda: create_bus("memory", None, source="kglab/test", broker=broker)


@pytest.fixture
async def document_app(
    settings: DocumentSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[DocumentApp]:
    async for harness in run_document_app(settings, bus_factory()):
        yield harness


async def run_document_app(settings: DocumentSettings, bus: EventBus) -> AsyncIterator[DocumentApp]:
    await bus.start()
    try:
        app = create_app(settings, bus=bus, ingestion_transport=holder())
        # The app's own lifespan, as a server would run it (httpx's transport does not).
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://document") as client:
                harness = DocumentApp(
                    app=app,
                    client=client,
                    bus=bus,
                    codec=IdentityCodec(settings.internal_token_secret.get_secret_value()),
                )

                async def record(envelope: EventEnvelope) -> None:
                    harness.received.append(envelope)

                await bus.subscribe(
                    "test-observer",
                    ["document.stored", "document.deleted", "document.indexed"],
                    record,
                )
                yield harness
    finally:
        await bus.close()
