"""Uploads through the gateway to the ingestion service over real HTTP (as in compose): the
service's 413 with the file's size reaches the user although the gateway streams the body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from kglab_auth.main import create_app as create_auth
from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import create_app as create_gateway
from kglab_ingestion.main import create_app as create_ingestion
from tests.isolation import LOOPBACK, free_port
from tests.waiting import wait_until

PASSWORD = "a long enough passphrase"


@pytest.fixture
async def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    monkeypatch.delenv("KGLAB_CLAMD_URL", raising=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_ingestion(), host=LOOPBACK, port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), timeout_s=60, what="the server started")
    auth = create_auth()
    app = create_gateway(
        GatewaySettings(ingestion_url=f"http://{LOOPBACK}:{port}"),
        transports={"auth": httpx.ASGITransport(app=auth)},
        hosted=[auth.router.lifespan_context(auth)],
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(LOOPBACK, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_the_services_413_reaches_the_user_over_the_network(
    gateway: httpx.AsyncClient,
) -> None:
    await gateway.post(
        "/api/v1/auth/register", json={"email": "n@example.com", "password": PASSWORD}
    )
    login = await gateway.post(
        "/api/v1/auth/login", data={"username": "n@example.com", "password": PASSWORD}
    )
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    big = b"a" * int(14.2 * 1024 * 1024)
    response = await gateway.post(
        "/api/v1/files", files={"file": ("big.txt", big, "text/plain")}, headers=auth
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "The file is 14.2 MB; the limit is 10 MB."
    small = await gateway.post(
        "/api/v1/files",
        files={"file": ("small.txt", b"Plain words.\n", "text/plain")},
        headers=auth,
    )
    assert small.status_code == 202, small.text
