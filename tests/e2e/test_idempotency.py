"""Idempotency-Key through the gateway, as ``make dev`` composes the system (and on the real
servers): a retried upload is one job, a reused key with another request is a 422, keys are
per user, and a second gateway (a replica, or the same one restarted) replays from Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from tests.e2e.conftest import _load_composition
from tests.e2e.test_ingestion_flow import MARKDOWN, poll_job, sign_up


def _file(name: str = "notes.md", data: bytes = MARKDOWN) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "text/markdown")}


async def test_two_identical_uploads_at_once_make_one_job(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first, second = await asyncio.gather(
        gateway.post("/api/v1/files", files=_file(), headers={**auth, **key}),
        gateway.post("/api/v1/files", files=_file(), headers={**auth, **key}),
    )
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["job_id"] == second.json()["job_id"]
    replayed = [r for r in (first, second) if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 1  # the other one did the work
    jobs = (await gateway.get("/api/v1/jobs", headers=auth)).json()
    assert [job["job_id"] for job in jobs["items"]] == [first.json()["job_id"]]

    # Later (after the job finished), the same key still answers the first answer.
    await poll_job(gateway, first.json()["job_id"], auth)
    again = await gateway.post("/api/v1/files", files=_file(), headers={**auth, **key})
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_key_reused_for_another_request_is_refused(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    key = {"Idempotency-Key": "report-2026-12-06"}
    created = await gateway.post("/api/v1/files", files=_file(), headers={**auth, **key})
    assert created.status_code == 202, created.text
    other = await gateway.post(
        "/api/v1/files", files=_file(data=MARKDOWN + b"\nMore."), headers={**auth, **key}
    )
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    jobs = (await gateway.get("/api/v1/jobs", headers=auth)).json()["items"]
    assert len(jobs) == 1


async def test_keys_belong_to_their_user(gateway: httpx.AsyncClient) -> None:
    alice, bob = await sign_up(gateway), await sign_up(gateway)
    key = {"Idempotency-Key": "same-key"}
    for_alice = await gateway.post("/api/v1/files", files=_file(), headers={**alice, **key})
    for_bob = await gateway.post("/api/v1/files", files=_file(), headers={**bob, **key})
    assert for_alice.status_code == for_bob.status_code == 202
    assert for_alice.json()["job_id"] != for_bob.json()["job_id"]
    assert "idempotent-replayed" not in for_bob.headers


async def test_a_malformed_key_is_a_400_and_nothing_is_created(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    for bad in (b"", b"x" * 256, b"with space", "naïve".encode()):
        response = await gateway.post(
            "/api/v1/files", files=_file(), headers={**auth, "Idempotency-Key": bad}
        )
        assert response.status_code == 400, (bad, response.text)
        assert "Idempotency-Key" in response.json()["detail"]
    assert (await gateway.get("/api/v1/jobs", headers=auth)).json()["items"] == []


async def test_without_a_key_each_upload_is_a_job(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    one = await gateway.post("/api/v1/files", files=_file(), headers=auth)
    two = await gateway.post(
        "/api/v1/files", files=_file("other.md", MARKDOWN + b"\nAnother file."), headers=auth
    )
    assert one.json()["job_id"] != two.json()["job_id"]
    assert "idempotent-replayed" not in two.headers


async def test_an_api_key_creation_is_replayed_not_repeated(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "ci", "scopes": ["documents:read"]}
    first = await gateway.post("/api/v1/auth/api-keys", json=body, headers={**auth, **key})
    second = await gateway.post("/api/v1/auth/api-keys", json=body, headers={**auth, **key})
    assert first.status_code == 201, first.text
    assert second.json() == first.json()  # the secret shown once is the same secret
    listed = (await gateway.get("/api/v1/auth/api-keys", headers=auth)).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len(items) == 1


@pytest.mark.parametrize("gateway_app", ["real"], indirect=True)
@pytest.mark.backend("postgres")
@pytest.mark.backend("redis")
async def test_another_gateway_replays_from_redis(gateway_app: FastAPI) -> None:
    """A second gateway on the same servers (a replica, or this one after a restart) knows the
    key: the answer is kept in Redis, not in the process."""
    first_gateway = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway_app, client=("127.0.0.1", 50000)),
        base_url="http://gateway",
    )
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(first_gateway)
        auth = await sign_up(client)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        created = await client.post("/api/v1/files", files=_file(), headers={**auth, **key})
        assert created.status_code == 202, created.text

        restarted: FastAPI = _load_composition().build()  # type: ignore[attr-defined]
        await stack.enter_async_context(restarted.router.lifespan_context(restarted))
        other = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=restarted, client=("127.0.0.1", 50001)),
                base_url="http://gateway",
            )
        )
        again = await other.post("/api/v1/files", files=_file(), headers={**auth, **key})
        assert again.status_code == 202
        assert again.json() == created.json()
        assert again.headers["idempotent-replayed"] == "true"


async def test_the_openapi_document_shows_the_header_on_creating_routes(
    gateway: httpx.AsyncClient,
) -> None:
    document = (await gateway.get("/openapi.json")).json()
    for path in ("/api/v1/files", "/api/v1/urls", "/api/v1/auth/api-keys"):
        operation = document["paths"][path]["post"]
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, path
        assert "422" in operation["responses"], path
    listing = document["paths"]["/api/v1/documents"]["get"]
    assert "Idempotency-Key" not in [p["name"] for p in listing.get("parameters", [])]


async def test_a_refused_body_frees_its_key_at_once(gateway: httpx.AsyncClient) -> None:
    """A body refused while it streams (too large, no length declared) releases the key: the
    corrected retry with the same key runs now, not after the in-flight lease."""
    auth = await sign_up(gateway)
    key = {"Idempotency-Key": str(uuid.uuid4())}

    async def oversized() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'", "scopes": ["search"]}'

    refused = await gateway.post(
        "/api/v1/auth/api-keys",
        content=oversized(),
        headers={**auth, **key, "Content-Type": "application/json"},
    )
    assert refused.status_code == 413, refused.text
    started = time.monotonic()
    created = await gateway.post(
        "/api/v1/auth/api-keys", json={"name": "ci", "scopes": ["search"]}, headers={**auth, **key}
    )
    assert created.status_code == 201, created.text
    assert time.monotonic() - started < 5
    assert "idempotent-replayed" not in created.headers
