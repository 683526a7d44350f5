"""The gateway's readiness is itself and Redis (issue 15): one service down leaves every gateway
pod ready (its routes answer 503, sign-in and the rest go on), and ``/ready/system`` still names
what is down; Redis down makes the gateway unready, since rate limits and revocations need it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import SERVICES, create_app
from kglab_shared.metrics import REGISTRY
from kglab_shared.settings import StoreKind


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def gateway(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    app = create_app(
        GatewaySettings(**{f"{name}_url": nowhere for name in SERVICES}, **settings)  # type: ignore[arg-type]
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


async def test_every_service_down_leaves_the_gateway_ready_and_system_readiness_names_them() -> (
    None
):
    async with gateway() as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["dependencies"]) == {"revocations"}

        system = await client.get("/ready/system")
        assert system.status_code == 503
        dependencies = system.json()["dependencies"]
        assert {name: dependencies[name]["status"] for name in SERVICES} == dict.fromkeys(
            SERVICES, "down"
        )
        assert dependencies["revocations"]["status"] == "up"
        # The same states reach the dependency gauge the alert rules watch.
        assert (
            REGISTRY.get_sample_value(
                "kglab_dependency_up", {"service": "gateway", "dependency": "auth"}
            )
            == 0.0
        )

        # A route of a service that is down is that route's 503, not the whole API's.
        login = await client.post(
            "/api/v1/auth/login", data={"username": "ada@example.com", "password": "x" * 12}
        )
        assert login.status_code == 503
        assert login.headers["content-type"] == "application/problem+json"


@pytest.mark.timeout(60)
async def test_redis_down_makes_the_gateway_unready() -> None:
    async with gateway(
        KGLAB_STORES=StoreKind.REAL, KGLAB_REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"
    ) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        dependencies = ready.json()["dependencies"]
        assert dependencies["redis"]["status"] == "down"
        assert set(dependencies) == {"redis", "revocations"}
