"""``make dev`` serves before its services are up: ``/health`` at once, ``/ready`` names what is
still starting, and a request for a starting service waits for it instead of failing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kglab_shared.bus import factory
from kglab_shared.events import DocumentExtracted, EventEnvelope, Provenance
from tests.e2e.conftest import _load_composition
from tests.waiting import wait_until

SERVICES = ("auth", "ingestion", "graph", "document", "vector")


@pytest.fixture
def dev_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "development")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    monkeypatch.delenv("KGLAB_CLAMD_URL", raising=False)


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client


async def test_gateway_serves_while_services_start_and_requests_wait(dev_env: None) -> None:
    app: FastAPI = _load_composition().build(start_at_once=False)  # type: ignore[attr-defined]
    host: Any = app.state.service_host
    async with client_of(app) as client:
        # Nothing is started yet (main() releases the services once the socket listens).
        health = await client.get("/health")
        assert health.status_code == 200
        starting = await client.get("/ready/system")
        assert starting.status_code == 503
        dependencies = starting.json()["dependencies"]
        assert {name: dependencies[name]["status"] for name in SERVICES} == dict.fromkeys(
            SERVICES, "down"
        )

        email = f"dev-{uuid.uuid4().hex[:10]}@example.com"
        register = asyncio.create_task(
            client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": "a long enough passphrase"},
            )
        )
        await asyncio.sleep(0.2)
        assert not register.done()  # waiting for the auth service, not failing

        host.release()
        registered = await asyncio.wait_for(register, timeout=120)
        assert registered.status_code == 201, registered.text
        assert registered.json()["email"] == email

        async def ready() -> bool:
            return (await client.get("/ready/system")).status_code == 200

        await wait_until(ready, timeout_s=120, step_s=0.1)
        assert set(host.up_s) == set(SERVICES)
        assert host.errors == {}

        # The vector service names its model in its own /ready until it has loaded.
        vector = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=host.apps["vector"]), base_url="http://vector"
        )
        async with vector:
            state = (await vector.get("/ready")).json()["dependencies"]["embedding_model"]
            assert state["status"] in ("loading", "up")

            async def model_loaded() -> bool:
                response = await vector.get("/ready")
                return bool(response.json()["dependencies"]["embedding_model"]["status"] == "up")

            await wait_until(model_loaded, timeout_s=120, step_s=0.1)


async def test_a_service_that_fails_to_start_is_named_with_its_reason(
    dev_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGLAB_VECTOR_FUSION_CANDIDATES", "3")  # below the minimum of 10
    monkeypatch.setenv("KGLAB_DEV_START_WAIT_S", "120")
    app: FastAPI = _load_composition().build()  # type: ignore[attr-defined]
    host: Any = app.state.service_host
    async with client_of(app) as client:
        search = await client.get("/api/v1/search", params={"q": "anything"})
        assert search.status_code in (401, 503)  # the gateway asks auth first, which waits

        async def settled() -> bool:
            return len(host.up_s) + len(host.errors) == len(SERVICES)

        await wait_until(settled, timeout_s=120, step_s=0.1)
        assert set(host.errors) == {"vector"}
        assert "KGLAB_VECTOR_FUSION_CANDIDATES" in host.errors["vector"]

        ready = await client.get("/ready/system")
        assert ready.status_code == 503
        assert ready.json()["dependencies"]["vector"]["status"] == "down"
        assert ready.json()["dependencies"]["auth"]["status"] == "up"

        # A request that reaches the vector service gets the reason, as problem+json.
        transport = httpx.ASGITransport(app=host.app("vector"))
        async with httpx.AsyncClient(transport=transport, base_url="http://vector") as vector:
            response = await vector.get("/api/v1/search", params={"q": "anything"})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith("The vector service failed to start:")
        assert "KGLAB_VECTOR_FUSION_CANDIDATES" in response.json()["detail"]


async def test_an_event_published_before_its_consumer_has_subscribed_is_not_lost(
    dev_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service serves and publishes as soon as it is up, before the services after it have
    subscribed: an upload's document.extracted could reach no queue while the document service
    starts (the e2e document tests lost it under load). The composition keeps it for them."""
    # A fresh process: no consumer group has ever been bound on its broker.
    monkeypatch.setattr(factory, "_process_broker", None)
    app: FastAPI = _load_composition().build(start_at_once=False)  # type: ignore[attr-defined]
    host: Any = app.state.service_host
    owner, document_id = uuid.uuid4().hex, uuid.uuid4().hex
    extracted = DocumentExtracted(
        document_id=document_id,
        job_id=uuid.uuid4().hex,
        owner_id=owner,
        title="Lab notes",
        media_type="text/markdown",
        provenance=Provenance(
            source_name="notes.md",
            uploader_id=owner,
            uploaded_at=datetime.now(UTC),
            size_bytes=40,
            content_type="text/markdown",
            sha256="ab" * 32,
            processor_version="test-1",
        ),
        chunk_count=1,
        # No job of ingestion's holds this claim: the document service finds the extraction
        # gone, and acknowledges its part all the same; that acknowledgement is what is awaited.
        claim="claim-of-no-job",
    )
    acknowledged: list[str] = []
    async with client_of(app):
        # Published as ingestion would, before any service (the document one included) is up.
        producer = factory.create_bus("memory", None, "kglab/ingestion")
        await producer.start()

        async def observe(envelope: EventEnvelope) -> None:
            if envelope.subject == document_id and envelope.data.get("part") == "stored":
                acknowledged.append(envelope.id)

        await producer.subscribe("test-observer", ["document.indexed"], observe)
        await producer.publish(extracted.envelope(source="kglab/ingestion"))
        host.release()

        async def consumed() -> bool:
            return bool(acknowledged)

        try:
            await wait_until(consumed, timeout_s=60, step_s=0.1)
        finally:
            await producer.close()
        assert host.errors == {}
