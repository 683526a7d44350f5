"""The ingestion service's app inside its lifespan, per test, on each adapter set.

``embedded``: SQLite, blob files, in-process progress, the signature scanner. ``real``: a fresh
PostgreSQL database, GridFS in a Mongo database of its own, Redis pub/sub on a unique prefix,
clamd when ``KGLAB_CLAMD_URL`` is set. Each test has its own
in-process broker (RabbitMQ has its own tests), and a ``document`` consumer that records every
``document.extracted`` the service publishes and, standing in for the document, vector and
graph services, acknowledges each part of its document (``document.indexed``), so jobs
complete; ``acknowledge_parts = False`` leaves them waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.extraction import OpenDocument, open_document
from kglab_ingestion.main import create_app
from kglab_ingestion.store.sql import SqlJobStore
from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import CLAIM_HEADER
from kglab_shared.events import (
    DOCUMENT_EXTRACTED,
    INDEXING_PARTS,
    DocumentExtracted,
    DocumentIndexed,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from kglab_shared.settings import load_settings
from tests.conftest import unique_name
from tests.isolation import fresh_postgres_database
from tests.waiting import wait_until

ALICE = "user-alice"
BOB = "user-bob"
SECRET = "integration-secret-0123456789"
#: The EICAR test string, assembled here so the repository holds no file a scanner flags.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKDOWN = (
    b"# Graph databases\n\nNeo4j stores nodes and relationships. Alice works at Acme in Berlin.\n\n"
    b"## Querying\n\nCypher is the query language; MATCH finds patterns in the graph.\n"
)


@dataclass
class IngestionApp:
    app: FastAPI
    client: httpx.AsyncClient
    bus: EventBus
    codec: IdentityCodec
    settings: IngestionSettings
    extracted: list[EventEnvelope] = field(default_factory=list)
    #: Document id -> its chunks' text, read as the document service reads it (the claim).
    texts: dict[str, str] = field(default_factory=dict)
    acknowledge_parts: bool = True

    def headers(self, user: str = ALICE) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.mint(Identity(user_id=user))}

    @property
    def jobs(self) -> SqlJobStore:
        store: SqlJobStore = self.app.state.job_store
        return store

    async def upload(
        self,
        content: bytes,
        name: str = "notes.md",
        *,
        user: str = ALICE,
        content_type: str = "application/octet-stream",
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/files",
            files={"file": (name, content, content_type)},
            headers=self.headers(user),
        )

    async def job(self, job_id: str, user: str = ALICE) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_status(
        self, job_id: str, *statuses: str, timeout_s: float = 20.0
    ) -> dict[str, Any]:
        latest: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal latest
            latest = await self.job(job_id)
            return latest["status"] in statuses

        await wait_until(reached, timeout_s=timeout_s, step_s=0.05)
        return latest


SettingsFactory = Callable[..., IngestionSettings]


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.backend("postgres"))])
async def ingestion_settings(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SettingsFactory]:
    """A factory of settings for this test's backends (overrides as keyword arguments)."""
    async with AsyncExitStack() as stack:
        base: dict[str, Any] = {
            "KGLAB_DATA_DIR": tmp_path / "data",
            "KGLAB_ENVIRONMENT": "test",
            "KGLAB_INTERNAL_TOKEN_SECRET": SECRET,
            "KGLAB_BUS": "memory",
            "sweep_interval_s": 0.2,
            "ws_heartbeat_s": 1.0,
        }
        if request.param == "real":
            server = request.getfixturevalue("postgres_url")
            mongo_url = request.getfixturevalue("mongo_url")
            redis_url = request.getfixturevalue("redis_url")
            database = await stack.enter_async_context(
                fresh_postgres_database(server, prefix="kglab_ing")
            )
            mongo_database = unique_name("kglab_ing")
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
            stack.push_async_callback(client.close)
            stack.push_async_callback(client.drop_database, mongo_database)
            base.update(
                {
                    "KGLAB_STORES": "real",
                    "KGLAB_POSTGRES_URL": database,
                    "KGLAB_MONGO_URL": mongo_url,
                    "KGLAB_REDIS_URL": redis_url,
                    "mongo_database": mongo_database,
                    "progress_channel_prefix": f"{unique_name('test')}:",
                }
            )
        else:
            # The embedded signature scanner; real runs scan with clamd (KGLAB_CLAMD_URL).
            base.update({"KGLAB_STORES": "embedded", "KGLAB_CLAMD_URL": None})

        def make(**overrides: Any) -> IngestionSettings:
            return load_settings(IngestionSettings, **{**base, **overrides})

        yield make


@pytest.fixture
async def ingestion_factory(
    ingestion_settings: SettingsFactory,
) -> AsyncIterator[Callable[..., Any]]:
    """Start an app (``factory(extract=..., **setting_overrides)``; ``extract`` from
    ``tests.faults`` makes extraction slow or failing); all are stopped at the end."""
    async with AsyncExitStack() as stack:
        broker = InProcessBroker()

        async def start(extract: OpenDocument = open_document, **overrides: Any) -> IngestionApp:
            settings = ingestion_settings(**overrides)
            bus = create_bus("memory", None, "kglab/test", broker=broker)
            await bus.start()
            stack.push_async_callback(bus.close)
            app = create_app(settings, bus=bus, extract=extract)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://ingestion")
            )
            harness = IngestionApp(
                app=app,
                client=client,
                bus=bus,
                codec=IdentityCodec(SECRET),
                settings=settings,
            )

            async def record(envelope: EventEnvelope) -> None:
                data = parse_event_data(envelope)
                assert isinstance(data, DocumentExtracted)
                if data.document_id not in harness.texts:
                    # Read as the document service does, before its part is acknowledged
                    # (which drops the chunks at ingestion).
                    response = await client.get(
                        f"/internal/extractions/{data.job_id}",
                        headers={CLAIM_HEADER: data.claim},
                    )
                    assert response.status_code == 200, response.text
                    items = response.json()["items"]
                    assert len(items) == data.chunk_count
                    harness.texts[data.document_id] = " ".join(i["text"] for i in items)
                harness.extracted.append(envelope)
                if harness.acknowledge_parts:
                    for part in INDEXING_PARTS:
                        await bus.publish(
                            DocumentIndexed(
                                document_id=data.document_id, owner_id=data.owner_id, part=part
                            ).envelope(source="kglab/test")
                        )

            await bus.subscribe(unique_name("document"), [DOCUMENT_EXTRACTED], record)
            return harness

        yield start


@pytest.fixture
async def ingestion(ingestion_factory: Callable[..., Any]) -> IngestionApp:
    harness: IngestionApp = await ingestion_factory()
    return harness
