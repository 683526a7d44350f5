"""Idempotent requests are retried over a dropped connection; others are not. CORS answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import create_app
from kglab_shared.identity import IDENTITY_HEADER


class FlakyUpstream:
    """A real TCP server on loopback that drops the first ``drops`` connections unanswered,
    then answers every request with 200 and the identity header it was sent."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections <= self.drops:
            writer.close()
            return
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            self.requests.append(lines[0])
            headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            body = json.dumps({"identity": bool(headers.get(IDENTITY_HEADER.lower()))}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyUpstream, httpx.AsyncClient]]:
    upstream = FlakyUpstream(drops=1)
    async with upstream as url:
        settings = GatewaySettings(
            auth_url=url, idempotent_retries=2, cors_origins=["https://app.example.com"]
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c,
        ):
            yield upstream, c


async def test_an_idempotent_request_is_retried_after_a_dropped_connection(
    flaky: tuple[FlakyUpstream, httpx.AsyncClient],
) -> None:
    upstream, client = flaky
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert upstream.connections == 2
    assert response.json() == {"identity": True}


async def test_a_non_idempotent_request_is_not_retried(
    flaky: tuple[FlakyUpstream, httpx.AsyncClient],
) -> None:
    upstream, client = flaky
    response = await client.post("/api/v1/auth/register", json={"email": "x@example.com"})
    assert response.status_code == 503
    assert "auth service is unavailable" in response.json()["detail"]
    assert upstream.requests == []


async def test_cors_allows_the_configured_origin_only(
    flaky: tuple[FlakyUpstream, httpx.AsyncClient],
) -> None:
    _, client = flaky
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options("/api/v1/auth/login", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await client.options(
        "/api/v1/auth/login", headers={**preflight, "Origin": "https://evil.example.com"}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_exposes_the_headers_a_browser_tus_client_reads(
    flaky: tuple[FlakyUpstream, httpx.AsyncClient],
) -> None:
    _, client = flaky
    response = await client.get("/api/v1/auth/me", headers={"Origin": "https://app.example.com"})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {
        "upload-offset",
        "upload-length",
        "upload-job-id",
        "tus-resumable",
        "location",
    } <= exposed


async def test_a_service_that_never_answers_is_a_504_not_a_hang() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = GatewaySettings(
        auth_url=f"http://127.0.0.1:{port}", upstream_timeout_s=0.3, idempotent_retries=0
    )
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c,
        ):
            response = await asyncio.wait_for(c.get("/.well-known/jwks.json"), timeout=3)
        assert response.status_code == 504
        assert "took too long" in response.json()["detail"]
    finally:
        server.close()
