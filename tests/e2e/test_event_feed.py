"""The notification feed: ``GET /api/v1/events`` with a cursor, and ``/ws/events`` live, as
``make dev`` composes the system (and on the real servers for the HTTP feed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.e2e.conftest import _load_composition
from tests.e2e.test_ingestion_flow import MARKDOWN, PASSWORD, poll_job, sign_up
from tests.waiting import wait_until


async def _read_on(
    gateway: httpx.AsyncClient, auth: dict[str, str], cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    params = {"after": cursor} if cursor else {}
    answer = await gateway.get("/api/v1/events", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    return page["events"], page["next_cursor"]


async def test_a_client_that_was_away_catches_up_from_its_cursor(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    assert await _read_on(gateway, auth, None) == ([], None)

    upload = await gateway.post(
        "/api/v1/files", files={"file": ("feed.md", MARKDOWN, "text/markdown")}, headers=auth
    )
    job = await poll_job(gateway, upload.json()["job_id"], auth)
    assert job["status"] == "completed"

    seen: list[dict[str, Any]] = []
    cursor: str | None = None

    async def completed_seen() -> bool:
        nonlocal cursor
        events, cursor = await _read_on(gateway, auth, cursor)
        seen.extend(events)
        return any(e["type"] == "job.completed" for e in seen)

    await wait_until(completed_seen, timeout_s=10, step_s=0.2)
    finished = next(e for e in seen if e["type"] == "job.completed")
    assert finished["job"]["job_id"] == job["job_id"]
    assert finished["job"]["document_id"] == job["document_id"]
    assert finished["document_id"] == job["document_id"]
    # Read on from there: nothing is repeated.
    assert (await _read_on(gateway, auth, cursor))[0] == []

    # The document goes; the feed says so after the cursor the client holds.
    deleted = await gateway.delete(f"/api/v1/documents/{job['document_id']}", headers=auth)
    assert deleted.status_code in (200, 202, 204), deleted.text

    async def deletion_seen() -> bool:
        nonlocal cursor
        events, cursor = await _read_on(gateway, auth, cursor)
        seen.extend(events)
        return any(e["type"] == "document.deleted" for e in events)

    await wait_until(deletion_seen, timeout_s=30, step_s=0.2)
    gone = next(e for e in seen if e["type"] == "document.deleted")
    # The job no longer shows a document; the event still says which one went.
    assert gone["job"]["document_id"] is None
    assert gone["document_id"] == job["document_id"]

    # Another user's feed is their own.
    stranger = await sign_up(gateway)
    assert (await _read_on(gateway, stranger, None))[0] == []


async def test_a_cursor_the_feed_did_not_issue_is_refused(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    answer = await gateway.get("/api/v1/events", params={"after": "not-a-cursor"}, headers=auth)
    assert answer.status_code == 422
    assert "cursor" in answer.json()["detail"]
    unsigned = await gateway.get("/api/v1/events")
    assert unsigned.status_code == 401


@pytest.fixture
def dev_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "development")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    monkeypatch.setenv("KGLAB_GATEWAY_API_KEY_CACHE_S", "0")
    monkeypatch.delenv("KGLAB_CLAMD_URL", raising=False)
    app = _load_composition().build()  # type: ignore[attr-defined]
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


@pytest.mark.timeout(180)
def test_the_live_feed_pushes_a_job_to_completion_and_resumes(dev_client: TestClient) -> None:
    email = "live-feed@example.com"
    dev_client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    token = dev_client.post(
        "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with dev_client.websocket_connect(f"/ws/events?token={token}") as socket:
        upload = dev_client.post(
            "/api/v1/files", files={"file": ("live.md", MARKDOWN, "text/markdown")}, headers=auth
        )
        job_id = upload.json()["job_id"]
        last: dict[str, Any] = {}
        while not (last.get("type") == "job.completed" and last["job"]["job_id"] == job_id):
            last = socket.receive_json()
            assert last["job"]["job_id"] == job_id  # only this user's job exists
    # Reconnect from the last id: nothing old again; the deletion arrives.
    with dev_client.websocket_connect(f"/ws/events?token={token}&after={last['id']}") as socket:
        document_id = last["job"]["document_id"]
        assert dev_client.delete(f"/api/v1/documents/{document_id}", headers=auth).is_success
        event = socket.receive_json()
        assert event["type"] == "document.deleted"
        assert event["job"]["job_id"] == job_id
        assert event["document_id"] == document_id


def test_the_live_feed_refuses_a_missing_or_bad_token(dev_client: TestClient) -> None:
    for query in ("", "?token=nonsense"):
        with dev_client.websocket_connect(f"/ws/events{query}") as socket:
            message = socket.receive()
            assert message["type"] == "websocket.close"
            assert message["code"] == 1008
