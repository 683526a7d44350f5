"""A service that is down answers 503 with a readable detail, then the breaker opens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import create_app


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def gateway_to_nowhere() -> AsyncIterator[httpx.AsyncClient]:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    settings = GatewaySettings(
        auth_url=nowhere,
        ingestion_url=nowhere,
        graph_url=nowhere,
        document_url=nowhere,
        vector_url=nowhere,
        breaker_failure_threshold=2,
        breaker_reset_s=30,
        idempotent_retries=1,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


async def test_a_down_service_is_a_readable_503_then_the_breaker_opens(
    gateway_to_nowhere: httpx.AsyncClient,
) -> None:
    body = {"email": "a@example.com", "password": "long enough password"}
    first = await gateway_to_nowhere.post("/api/v1/auth/register", json=body)
    assert first.status_code == 503
    assert first.headers["content-type"] == "application/problem+json"
    assert "auth service is unavailable" in first.json()["detail"]
    await gateway_to_nowhere.post("/api/v1/auth/register", json=body)
    opened = await gateway_to_nowhere.post("/api/v1/auth/register", json=body)
    assert opened.status_code == 503
    assert "not answering" in opened.json()["detail"]
    assert int(opened.headers["retry-after"]) >= 1


async def test_ready_reports_each_down_service(gateway_to_nowhere: httpx.AsyncClient) -> None:
    # The gateway itself stays ready (ADR 0027); the system's readiness names what is down.
    assert (await gateway_to_nowhere.get("/ready")).status_code == 200
    response = await gateway_to_nowhere.get("/ready/system")
    assert response.status_code == 503
    dependencies = response.json()["dependencies"]
    assert {name for name, state in dependencies.items() if state["status"] == "down"} >= {
        "auth",
        "document",
    }


async def test_jwks_unreachable_means_503_not_401(gateway_to_nowhere: httpx.AsyncClient) -> None:
    response = await gateway_to_nowhere.get(
        "/api/v1/documents",
        headers={"Authorization": "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.c2ln"},
    )
    assert response.status_code == 503
    assert "signing keys are unreachable" in response.json()["detail"]


async def test_openapi_still_answers_and_names_missing_services(
    gateway_to_nowhere: httpx.AsyncClient,
) -> None:
    document = (await gateway_to_nowhere.get("/openapi.json")).json()
    assert set(document["info"]["x-unavailable-services"]) == {
        "auth",
        "ingestion",
        "graph",
        "document",
        "vector",
    }


async def test_an_unreachable_rate_limit_store_is_a_readable_503() -> None:
    settings = GatewaySettings(
        auth_url=f"http://127.0.0.1:{closed_port()}",
        # Shared settings are read by their environment names.
        **{"KGLAB_STORES": "real", "KGLAB_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"},
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        response = await client.post("/api/v1/auth/login", data={"username": "a", "password": "b"})
    assert response.status_code == 503
    assert "limits cannot be checked" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
