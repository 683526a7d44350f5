"""The vector service's app inside its lifespan, per test: hashing embedder, Qdrant in memory.

``cache`` runs each test with the in-memory answer cache and with a real Redis (keys under a
unique prefix, deleted afterwards). Each test has its own in-process broker, so tests run in
parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentDeleted, DocumentStored, EventEnvelope, ExtractedChunk
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from kglab_vector.config import VectorSettings
from kglab_vector.main import create_app
from kglab_vector.service import VectorService
from tests.claims import claimed, holder
from tests.conftest import unique_name
from tests.waiting import wait_until

ALICE = "user-alice"
BOB = "user-bob"


def stored_event(
    document_id: str, texts: list[str], *, owner: str = ALICE, title: str = "A report"
) -> DocumentStored:
    chunks = [
        ExtractedChunk(chunk_id=f"{document_id}-{i}", position=i, text=t, heading="Part")
        for i, t in enumerate(texts)
    ]
    return DocumentStored(
        document_id=document_id,
        owner_id=owner,
        title=title,
        media_type="text/plain",
        chunk_count=len(chunks),
        claim=claimed(owner, document_id, chunks),
    )


def stored_envelope(event: DocumentStored) -> EventEnvelope:
    return event.envelope(
        source="kglab/document",
        subject=event.document_id,
        event_id=f"document.stored:{event.document_id}",
    )


def deleted_envelope(document_id: str, owner: str = ALICE) -> EventEnvelope:
    event = DocumentDeleted(document_id=document_id, owner_id=owner)
    return event.envelope(
        source="kglab/document", subject=document_id, event_id=f"document.deleted:{document_id}"
    )


@dataclass
class VectorApp:
    app: FastAPI
    client: httpx.AsyncClient
    bus: EventBus
    codec: IdentityCodec
    received: list[EventEnvelope] = field(default_factory=list)

    @property
    def service(self) -> VectorService:
        service: VectorService = self.app.state.vector_service
        return service

    def headers(self, user_id: str = ALICE) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.mint(Identity(user_id=user_id))}

    async def search(self, user_id: str = ALICE, **params: Any) -> httpx.Response:
        return await self.client.get("/api/v1/search", params=params, headers=self.headers(user_id))

    async def publish_and_wait(self, envelope: EventEnvelope, owner: str, chunks: int) -> None:
        """Publish an event and wait until the owner's index holds ``chunks`` chunks."""
        await self.bus.publish(envelope)

        async def indexed() -> bool:
            return await self.service.store.count(owner) == chunks

        await wait_until(indexed, timeout_s=10)

    def events_of(self, event_type: str) -> list[EventEnvelope]:
        return [e for e in self.received if e.type == event_type]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backend("redis"))])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorSettings]:
    overrides: dict[str, Any] = {
        "KGLAB_DATA_DIR": str(tmp_path),
        "KGLAB_BUS": "memory",
        "KGLAB_STORES": "embedded",
        "embedder": "hashing",
        "qdrant_local_path": ":memory:",
    }
    if request.param == "memory":
        yield VectorSettings(cache="memory", **overrides)
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = unique_name("kglab_test_vector") + ":"
    yield VectorSettings(cache="redis", KGLAB_REDIS_URL=url, redis_prefix=prefix, **overrides)
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
def bus_factory() -> Callable[[], EventBus]:
    broker = InProcessBroker()
    return lambda: create_bus("memory", None, source="kglab/test", broker=broker)


@pytest.fixture
async def vector_app(
    settings: VectorSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[VectorApp]:
    async for harness in run_vector_app(settings, bus_factory()):
        yield harness


async def run_vector_app(
    settings: VectorSettings, bus: EventBus, *, app: FastAPI | None = None
) -> AsyncIterator[VectorApp]:
    """Run ``app`` (by default the vector service built from ``settings`` on ``bus``)."""
    await bus.start()
    try:
        app = app or create_app(settings, bus=bus, document_transport=holder())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://vector") as client:
                harness = VectorApp(
                    app=app,
                    client=client,
                    bus=bus,
                    codec=IdentityCodec(settings.internal_token_secret.get_secret_value()),
                )

                async def record(envelope: EventEnvelope) -> None:
                    harness.received.append(envelope)

                await bus.subscribe("test-observer", ["document.parts_removed"], record)
                yield harness
    finally:
        await bus.close()
