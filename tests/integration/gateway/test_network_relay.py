"""What a service on the network receives from the gateway, and what the caller gets back.

A real TCP server on loopback stands in for every service: it records each request as it
arrived on the wire and answers from a small script, so the relay is checked byte for byte.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import create_app
from kglab_shared.identity import IDENTITY_HEADER
from kglab_shared.metrics import REGISTRY

BIG = bytes(range(256)) * 4096  # 1 MiB: streamed, not read whole
COMPRESSED = gzip.compress(json.dumps({"words": ["relayed"] * 200}).encode())


@dataclass
class Received:
    request_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class RecordingUpstream:
    key: OKPKey = field(
        default_factory=lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    )
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": "kglab-auth",
            "aud": "kglab",
            "sub": "user-1",
            "role": "user",
            "scope": "*",
            "typ": "access",
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode({"alg": "Ed25519", "kid": "k1"}, claims, self.key, algorithms=["Ed25519"])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = [
                    (k, v) for k, _, v in (line.partition(": ") for line in lines[1:] if line)
                ]
                lowered = {k.lower(): v for k, v in headers}
                if lowered.get("transfer-encoding") == "chunked":
                    body = b""
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                else:
                    body = await reader.readexactly(int(lowered.get("content-length", "0")))
                request = Received(lines[0], headers, body)
                self.received.append(request)
                if request.request_line.startswith("GET /api/v1/documents/truncated "):
                    # A service that dies in the middle of its answer.
                    writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"par')
                    await writer.drain()
                    writer.close()
                    return
                writer.write(self.answer(request))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def answer(self, request: Received) -> bytes:
        path = request.request_line.split(" ")[1]
        extra = b""
        if path.startswith("/.well-known/jwks.json"):
            body = json.dumps({"keys": [self.key.as_dict(private=False)]}).encode()
        elif path == "/api/v1/documents/big":
            body = BIG
        elif path == "/api/v1/documents/compressed":
            body = COMPRESSED
            extra = (
                b"content-encoding: gzip\r\nkeep-alive: timeout=5\r\n"
                b"x-request-id: the-services-own\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
            )
        else:
            body = json.dumps({"received": len(request.body)}).encode()
        if path.startswith("/api/v1/documents/"):
            # What every service's shared middleware adds: the route template that answered.
            extra += b"x-kglab-route: /api/v1/documents/{document_id}\r\n"
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            + extra
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def relay() -> AsyncIterator[tuple[RecordingUpstream, httpx.AsyncClient]]:
    upstream = RecordingUpstream()
    async with upstream as url:
        settings = GatewaySettings(
            auth_url=url,
            ingestion_url=url,
            graph_url=url,
            document_url=url,
            vector_url=url,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c,
        ):
            c.headers["Authorization"] = f"Bearer {upstream.token()}"
            yield upstream, c


async def test_the_service_gets_the_path_and_query_as_sent_and_a_verifiable_identity(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    upstream, client = relay
    response = await client.get(
        "/api/v1/documents?q=caf%C3%A9%20au%20lait&tag=a&tag=b",
        headers={
            "Cookie": "session=secret",
            "X-Custom": "kept",
            "X-Accented": "caf\u00e9 cr\u00e8me".encode(),
        },
    )
    assert response.status_code == 200, response.text
    sent = upstream.received[-1]
    assert sent.request_line == "GET /api/v1/documents?q=caf%C3%A9%20au%20lait&tag=a&tag=b HTTP/1.1"
    assert sent.header(IDENTITY_HEADER)
    assert sent.header("x-custom") == ["kept"]
    # Header bytes go on as they came, not re-encoded (the recorder reads them as Latin-1).
    assert sent.header("x-accented") == ["caf\u00e9 cr\u00e8me".encode().decode("latin-1")]
    # The caller's credentials stop at the gateway.
    assert sent.header("authorization") == []
    assert sent.header("cookie") == []
    # The caller's own headers go on once, none replaced by the gateway's HTTP client.
    assert sent.header("user-agent") == [client.headers["user-agent"]]
    assert sent.header("accept-encoding") == [client.headers["accept-encoding"]]


async def test_an_upload_is_streamed_on_with_its_length_not_chunked(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    upstream, client = relay
    payload = b"x" * 300_000

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    response = await client.post(
        "/api/v1/files",
        content=chunks(),
        headers={"Content-Length": str(len(payload)), "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": len(payload)}
    sent = upstream.received[-1]
    assert sent.header("content-length") == [str(len(payload))]
    assert sent.header("transfer-encoding") == []
    assert sent.body == payload


async def test_a_large_answer_is_relayed_intact(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    _, client = relay
    response = await client.get("/api/v1/documents/big")
    assert response.status_code == 200
    assert response.content == BIG
    assert response.headers["content-length"] == str(len(BIG))


async def test_a_compressed_answer_stays_compressed_and_hop_headers_stop(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    _, client = relay
    response = await client.get(
        "/api/v1/documents/compressed", headers={"X-Request-ID": "caller-chosen-id"}
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(COMPRESSED))
    assert json.loads(response.content)["words"][0] == "relayed"  # httpx decompresses
    assert "keep-alive" not in response.headers
    # The request id is the gateway's (the caller's), once; the service's Date is not repeated.
    assert response.headers.get_list("x-request-id") == ["caller-chosen-id"]
    assert "1970" not in response.headers.get("date", "")
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_proxied_calls_are_counted_under_their_route_template(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    """Labelled by the template the service named, not the gateway's catch-all
    ``/api/{rest:path}``; a call the gateway refused itself by the same template, learned."""
    _, client = relay

    def count(route: str, status: str) -> float:
        value = REGISTRY.get_sample_value(
            "kglab_http_requests_total",
            {"service": "gateway", "method": "GET", "route": route, "status": status},
        )
        return value or 0.0

    template = "/api/v1/documents/{document_id}"
    before_ok = count(template, "200")
    before_refused = count(template, "401")
    before_missing = count("unmatched", "404")
    before_jwks = count("/.well-known/jwks.json", "200")
    before_catch_all = sum(count("/api/{rest:path}", s) for s in ("200", "401", "404"))
    answered = await client.get("/api/v1/documents/some-id")
    assert answered.status_code == 200
    assert "x-kglab-route" not in answered.headers  # the label is the gateway's, not the caller's
    refused = await client.get("/api/v1/documents/other-id", headers={"Authorization": ""})
    assert refused.status_code == 401
    missing = await client.get("/api/v9/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "There is nothing at /api/v9/nothing."
    assert (await client.get("/.well-known/jwks.json")).status_code == 200
    assert count(template, "200") == before_ok + 1
    assert count(template, "401") == before_refused + 1
    assert count("unmatched", "404") == before_missing + 1
    assert count("/.well-known/jwks.json", "200") == before_jwks + 1
    assert sum(count("/api/{rest:path}", s) for s in ("200", "401", "404")) == before_catch_all


async def test_a_service_dying_mid_answer_is_a_readable_503(
    relay: tuple[RecordingUpstream, httpx.AsyncClient],
) -> None:
    _, client = relay
    response = await client.get("/api/v1/documents/truncated")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "The document service is unavailable right now; try again shortly."
    )
