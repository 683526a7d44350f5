"""The graph service's app inside its lifespan, per test, on each store adapter.

``embedded`` uses a SQLite file in the test's tmp dir; ``real`` the shared Neo4j, isolated by
owner ids unique to the test (removed afterwards). Each test has its own in-process broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kglab_graph.config import GraphSettings
from kglab_graph.main import create_app
from kglab_graph.store.neo4j import Neo4jGraphStore
from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_shared.bus.port import EventBus
from kglab_shared.events import (
    DocumentDeleted,
    DocumentStored,
    EventEnvelope,
    ExtractedChunk,
)
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.claims import claimed, holder
from tests.conftest import unique_name
from tests.graph_owners import delete_owner
from tests.waiting import wait_until


@dataclass
class GraphApp:
    app: FastAPI
    client: httpx.AsyncClient
    bus: EventBus
    codec: IdentityCodec
    alice: str
    bob: str
    received: list[EventEnvelope] = field(default_factory=list)

    def headers(self, user_id: str) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.mint(Identity(user_id=user_id))}

    async def store_document(self, owner: str, document_id: str, *texts: str) -> None:
        chunks = [
            ExtractedChunk(chunk_id=f"{document_id}-{i}", position=i, text=text)
            for i, text in enumerate(texts)
        ]
        event = DocumentStored(
            document_id=document_id,
            owner_id=owner,
            title=f"Title of {document_id}",
            media_type="text/plain",
            chunk_count=len(chunks),
            claim=claimed(owner, document_id, chunks),
        )
        await self.bus.publish(event.envelope(source="kglab/test"))

    async def delete_document(self, owner: str, document_id: str) -> None:
        event = DocumentDeleted(document_id=document_id, owner_id=owner)
        await self.bus.publish(event.envelope(source="kglab/test"))

    async def wait_for(
        self, condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0
    ) -> None:
        await wait_until(condition, timeout_s=timeout_s)


@pytest.fixture(params=["embedded", "real"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> GraphSettings:
    overrides: dict[str, Any] = {
        "KGLAB_DATA_DIR": str(tmp_path),
        "KGLAB_BUS": "memory",
        "recogniser": "rules",
    }
    if request.param == "embedded":
        return GraphSettings(KGLAB_STORES="embedded", **overrides)
    url: str = request.getfixturevalue("neo4j_url")
    return GraphSettings(KGLAB_STORES="real", KGLAB_NEO4J_URL=url, neo4j_pool_size=4, **overrides)


@pytest.fixture
def wrap_bus() -> Callable[[EventBus], EventBus]:
    """How the graph service's bus is wrapped (a module injecting faults overrides it)."""
    return lambda bus: bus


@pytest.fixture
async def graph_app(
    settings: GraphSettings, wrap_bus: Callable[[EventBus], EventBus]
) -> AsyncIterator[GraphApp]:
    bus = wrap_bus(create_bus("memory", None, source="kglab/test", broker=InProcessBroker()))
    alice, bob = unique_name("alice"), unique_name("bob")
    await bus.start()
    try:
        app = create_app(settings, bus=bus, document_transport=holder())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
                harness = GraphApp(
                    app=app,
                    client=client,
                    bus=bus,
                    codec=IdentityCodec(settings.internal_token_secret.get_secret_value()),
                    alice=alice,
                    bob=bob,
                )

                async def record(envelope: EventEnvelope) -> None:
                    harness.received.append(envelope)

                await bus.subscribe("test-observer", ["document.parts_removed"], record)
                try:
                    yield harness
                finally:
                    store = app.state.graph_store
                    if isinstance(store, Neo4jGraphStore):
                        for owner in (alice, bob):
                            await delete_owner(
                                store.driver,
                                owner,
                                database=settings.neo4j_database,
                                timeout_s=30,
                            )
    finally:
        await bus.close()
