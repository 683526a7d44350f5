"""Administrators' routes of the document service: rebuilding the derived stores (every stored
document announced again, resumable from its checkpoint) and the bus's dead letters (listed
and replayed on RabbitMQ, and from the command line)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kglab_document.domain import RebuildStatus
from kglab_document.messaging.publish import DocumentEventPublisher
from kglab_document.rebuild import Rebuilder
from kglab_shared.bus.port import EventBus, PublishError, RetryPolicy
from kglab_shared.claims import CLAIM_HEADER
from kglab_shared.events import DocumentStored, EventEnvelope, parse_event_data
from kglab_shared.identity import IDENTITY_HEADER, Identity
from tests.conftest import unique_name
from tests.contract.test_event_bus import RabbitMQManagement, amqp_url_for_vhost, management_url
from tests.integration.document.conftest import (
    ALICE,
    BOB,
    DocumentApp,
    extracted_event,
    run_document_app,
)
from tests.waiting import wait_until

ADMIN = "user-admin"
REPO_ROOT = Path(__file__).resolve().parents[3]


def admin_headers(app: DocumentApp) -> dict[str, str]:
    return {IDENTITY_HEADER: app.codec.mint(Identity(user_id=ADMIN, role="admin"))}


def rebuild_events(app: DocumentApp, rebuild_id: str) -> list[DocumentStored]:
    found = []
    for envelope in app.events_of("document.stored"):
        if envelope.id.startswith(f"document.stored:rebuild:{rebuild_id}:"):
            data = parse_event_data(envelope)
            assert isinstance(data, DocumentStored)
            found.append(data)
    return found


async def test_a_rebuild_announces_every_stored_document_again_with_its_chunks(
    document_app: DocumentApp,
) -> None:
    for name, owner, chunks in (("a1", ALICE, 3), ("a2", ALICE, 150), ("b1", BOB, 2)):
        await document_app.seed(extracted_event(name, owner=owner, chunks=chunks))
    await document_app.seed(extracted_event("gone", owner=ALICE))
    deleted = await document_app.client.delete(
        "/api/v1/documents/gone", headers=document_app.headers(ALICE)
    )
    assert deleted.status_code == 202

    started = await document_app.client.post(
        "/api/v1/admin/rebuilds", json={}, headers=admin_headers(document_app)
    )
    assert started.status_code == 202, started.text
    rebuild = started.json()
    assert rebuild["total"] == 3
    assert rebuild["owner_id"] is None

    rebuild_id = rebuild["id"]

    async def completed() -> bool:
        nonlocal rebuild
        response = await document_app.client.get(
            f"/api/v1/admin/rebuilds/{rebuild_id}", headers=admin_headers(document_app)
        )
        rebuild = response.json()
        return bool(rebuild["status"] == "completed")

    await wait_until(completed, timeout_s=10)
    assert rebuild["published"] == 3
    assert rebuild["progress"] == 100
    await document_app.wait_for(lambda: _true(len(rebuild_events(document_app, rebuild_id)) == 3))
    announced = {e.document_id: e for e in rebuild_events(document_app, rebuild_id)}
    # The deleted document is not brought back; every chunk of a long one is carried, in order.
    assert set(announced) == {"a1", "a2", "b1"}
    # Each announcement carries a claim of its own that opens the document's chunks (adr/0020).
    positions: list[int] = []
    params = {"owner_id": ALICE}
    while True:
        page = await document_app.client.get(
            "/internal/documents/a2/chunks",
            params=params,
            headers={CLAIM_HEADER: announced["a2"].claim},
        )
        assert page.status_code == 200, page.text
        positions.extend(chunk["position"] for chunk in page.json()["items"])
        if not page.json().get("next_cursor"):
            break
        params = {**params, "cursor": page.json()["next_cursor"]}
    assert positions == list(range(150))
    assert announced["b1"].owner_id == BOB


async def _true(value: bool) -> bool:
    return value


async def test_a_rebuild_of_one_owner_announces_only_theirs(document_app: DocumentApp) -> None:
    await document_app.seed(extracted_event("a1", owner=ALICE))
    await document_app.seed(extracted_event("b1", owner=BOB))
    started = await document_app.client.post(
        "/api/v1/admin/rebuilds", json={"owner_id": BOB}, headers=admin_headers(document_app)
    )
    assert started.status_code == 202
    rebuild_id = started.json()["id"]
    await document_app.wait_for(lambda: _true(len(rebuild_events(document_app, rebuild_id)) == 1))
    assert [e.document_id for e in rebuild_events(document_app, rebuild_id)] == ["b1"]


class _FailingAfter:
    """A bus that confirms ``allowed`` publishes, then refuses (the broker gone)."""

    def __init__(self, inner: EventBus, allowed: int) -> None:
        self.inner = inner
        self.allowed = allowed
        self.sent: list[EventEnvelope] = []

    async def publish(self, event: EventEnvelope) -> None:
        if len(self.sent) >= self.allowed:
            raise PublishError("the broker did not confirm")
        self.sent.append(event)
        await self.inner.publish(event)

    async def publish_many(self, events: Sequence[EventEnvelope]) -> None:
        for event in events:
            await self.publish(event)


async def test_a_stopped_rebuild_resumes_after_its_checkpoint(document_app: DocumentApp) -> None:
    for index in range(5):
        await document_app.seed(extracted_event(f"d{index}", owner=ALICE))
    flaky = _FailingAfter(document_app.bus, allowed=3)
    rebuilder = Rebuilder(
        document_app.store,
        DocumentEventPublisher(flaky, source="kglab/test"),  # type: ignore[arg-type]
        page_size=2,
    )
    rebuild = await rebuilder.run(await rebuilder.create(None))
    assert rebuild.status is RebuildStatus.FAILED
    assert rebuild.error is not None
    assert "Resume it" in rebuild.error
    # A failure records the last document the bus confirmed (d2, mid-page); a crash would
    # leave the last page's checkpoint, and repeating a few announcements is harmless.
    assert rebuild.checkpoint == "d2"
    assert rebuild.published == 3

    flaky.allowed = 100
    resumed = await rebuilder.run(await rebuilder.reopen(rebuild.id))
    assert resumed.status is RebuildStatus.COMPLETED
    assert resumed.published == 5
    second_run = [e.subject for e in flaky.sent[3:]]
    assert second_run == ["d3", "d4"]
    stored = await document_app.store.get_rebuild(rebuild.id)
    assert stored == resumed


async def test_only_an_administrator_may_rebuild_and_bad_input_is_refused(
    document_app: DocumentApp,
) -> None:
    refused = await document_app.client.post(
        "/api/v1/admin/rebuilds", json={}, headers=document_app.headers(ALICE)
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only an administrator may do that."
    unknown = await document_app.client.get(
        "/api/v1/admin/rebuilds/nope", headers=admin_headers(document_app)
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "There is no rebuild 'nope'."
    empty_owner = await document_app.client.post(
        "/api/v1/admin/rebuilds", json={"owner_id": ""}, headers=admin_headers(document_app)
    )
    assert empty_owner.status_code == 422
    assert "owner_id" in empty_owner.json()["detail"]
    for path in ("/api/v1/admin/dead-letters/graph", "/api/v1/admin/rebuilds/x"):
        assert (
            await document_app.client.get(path, headers=document_app.headers(BOB))
        ).status_code == 403


# -- dead letters on RabbitMQ -------------------------------------------------------------------


@pytest.fixture
async def rabbit_document_app(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[DocumentApp, str]]:
    from kglab_document.config import DocumentSettings
    from kglab_shared.bus.rabbitmq import RabbitMQBus

    rabbitmq_url: str = request.getfixturevalue("rabbitmq_url")
    management = RabbitMQManagement(management_url(rabbitmq_url))
    vhost = unique_name("kglab_test")
    await management.create_vhost(vhost)
    url = amqp_url_for_vhost(rabbitmq_url, vhost)
    settings = DocumentSettings(
        KGLAB_STORES="embedded", KGLAB_DATA_DIR=str(tmp_path), KGLAB_BUS="rabbitmq"
    )
    try:
        bus = RabbitMQBus(url, "kglab/tests", reconnect_interval_s=0.2)
        async for harness in run_document_app(settings, bus):
            yield harness, url
    finally:
        await management.delete_vhost(vhost)
        await management.aclose()


@pytest.mark.backend("rabbitmq")
async def test_dead_letters_are_listed_and_replayed_by_an_administrator(
    rabbit_document_app: tuple[DocumentApp, str],
) -> None:
    app, url = rabbit_document_app
    healthy = asyncio.Event()
    handled: list[str] = []

    async def graph_consumer(envelope: EventEnvelope) -> None:
        if not healthy.is_set():
            raise RuntimeError("Neo4j is away")
        handled.append(envelope.id)

    await app.bus.subscribe(
        "graph",
        ["document.deleted"],
        graph_consumer,
        retry=RetryPolicy(max_attempts=1, base_delay_s=0.05),
    )
    await app.seed(extracted_event("doomed", owner=ALICE))
    assert (
        await app.client.delete("/api/v1/documents/doomed", headers=app.headers(ALICE))
    ).status_code == 202
    listing: dict[str, Any] = {}

    async def parked() -> bool:
        nonlocal listing
        response = await app.client.get(
            "/api/v1/admin/dead-letters/graph", headers=admin_headers(app)
        )
        assert response.status_code == 200, response.text
        listing = response.json()
        return len(listing["items"]) == 1

    await wait_until(parked, timeout_s=15, step_s=0.2)
    letter = listing["items"][0]
    assert letter["type"] == "document.deleted"
    assert letter["subject"] == "doomed"
    assert "Neo4j is away" in letter["error"]

    # The command line sees the same letter (and browsing leaves it parked).
    env = {**os.environ, "KGLAB_RABBITMQ_URL": url}
    listed = subprocess.run(
        [sys.executable, "-m", "kglab_shared.bus.dead_letters", "list", "graph"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["event_id"] for line in listed.stdout.splitlines()] == [
        letter["event_id"]
    ]

    healthy.set()
    replayed = await app.client.post(
        "/api/v1/admin/dead-letters/graph/replay", headers=admin_headers(app)
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"group": "graph", "replayed": 1}
    await wait_until(lambda: _true(handled == [letter["event_id"]]), timeout_s=15, step_s=0.1)
    after = await app.client.get("/api/v1/admin/dead-letters/graph", headers=admin_headers(app))
    assert after.json()["items"] == []

    unknown = await app.client.get("/api/v1/admin/dead-letters/billing", headers=admin_headers(app))
    assert unknown.status_code == 404
    assert "There is no consumer group 'billing'" in unknown.json()["detail"]
