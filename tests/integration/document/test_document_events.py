"""The document service on the in-process bus: extracted -> stored, delete -> parts removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from kglab_document.config import DocumentSettings
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.events import (
    DocumentPartsRemoved,
    DocumentStored,
    IngestionJobFailed,
)
from kglab_shared.metrics import REGISTRY
from tests.bus_faults import PublishFailsOnce
from tests.integration.document.conftest import (
    ALICE,
    DocumentApp,
    extracted_event,
    run_document_app,
)


async def _publish_extracted(document_app: DocumentApp, document_id: str) -> None:
    event = extracted_event(document_id, chunks=4)
    await document_app.bus.publish(event.envelope(source="kglab/ingestion", subject=document_id))


async def test_extracted_is_stored_and_announced_once(document_app: DocumentApp) -> None:
    event = extracted_event("doc-flow", chunks=4)
    envelope = event.envelope(source="kglab/ingestion", subject="doc-flow")

    consumed_before = _consumed_extracted()

    async def handled(times: int) -> bool:
        return _consumed_extracted() >= consumed_before + times

    await document_app.bus.publish(envelope)
    await document_app.wait_for(lambda: handled(1))
    # The broker redelivers the event after it was handled and acknowledged: nothing changes,
    # nothing is announced again. (A redelivery racing the first handling, before the stored
    # event is marked published, may announce it twice, under the same event id.)
    await document_app.bus.publish(envelope)
    await document_app.wait_for(lambda: handled(2))

    stored = document_app.events_of("document.stored")
    assert len(stored) == 1
    assert stored[0].id == "document.stored:doc-flow"
    data = DocumentStored.model_validate(stored[0].data)
    assert data.owner_id == ALICE
    assert data.chunk_count == 4
    response = await document_app.client.get(
        "/api/v1/documents/doc-flow/chunks", headers=document_app.headers()
    )
    assert len(response.json()["items"]) == 4
    # What the vector and graph services read: the claim the event carries opens the chunks.
    reader = ClaimedChunkReader("http://document", transport=httpx.ASGITransport(document_app.app))
    try:
        chunks = await reader.read_stored(data)
        assert chunks is not None
        assert [c.position for c in chunks] == [0, 1, 2, 3]
        assert await reader.read_stored(data.model_copy(update={"claim": "guessed"})) is None
        assert await reader.read_stored(data.model_copy(update={"owner_id": "other"})) is None
    finally:
        await reader.close()


async def test_a_big_documents_stored_event_carries_a_claim_not_its_text(
    document_app: DocumentApp,
) -> None:
    event = extracted_event("doc-big", chunks=3000)
    await document_app.bus.publish(event.envelope(source="kglab/ingestion", subject="doc-big"))
    await document_app.wait_for(lambda: _count(document_app, "document.stored", 1), timeout_s=30)

    stored = document_app.events_of("document.stored")[0]
    assert DocumentStored.model_validate(stored.data).chunk_count == 3000
    assert len(stored.to_bytes()) <= 1024  # adr/0020: about 430 bytes, at any size


async def test_claimed_chunks_are_read_page_by_page(document_app: DocumentApp) -> None:
    event = extracted_event("doc-long", chunks=230)
    await document_app.seed(event)
    reader = ClaimedChunkReader("http://document", transport=httpx.ASGITransport(document_app.app))
    try:
        stored = DocumentStored(
            document_id="doc-long",
            owner_id=ALICE,
            title="A report",
            media_type="text/plain",
            chunk_count=230,
            claim=event.claim,
        )
        chunks = await reader.read_stored(stored)
    finally:
        await reader.close()
    assert chunks is not None
    assert [c.position for c in chunks] == list(range(230))
    # Without the claim the internal route answers as if there were no such document.
    response = await document_app.client.get(
        "/internal/documents/doc-long/chunks", params={"owner_id": ALICE}
    )
    assert response.status_code == 404


async def test_delete_is_followed_until_every_part_is_gone(document_app: DocumentApp) -> None:
    await _publish_extracted(document_app, "doc-gone")
    await document_app.wait_for(lambda: _count(document_app, "document.stored", 1))
    client, alice = document_app.client, document_app.headers()

    assert (await client.delete("/api/v1/documents/doc-gone", headers=alice)).status_code == 202
    await document_app.wait_for(lambda: _count(document_app, "document.deleted", 1))
    deleted = document_app.events_of("document.deleted")[0]
    assert deleted.data == {"document_id": "doc-gone", "owner_id": ALICE}

    for part in ("vector", "graph"):
        removed = DocumentPartsRemoved(document_id="doc-gone", owner_id=ALICE, part=part)
        await document_app.bus.publish(removed.envelope(source=f"kglab/{part}"))

    async def complete() -> bool:
        status = await client.get("/api/v1/documents/doc-gone/deletion", headers=alice)
        return bool(status.json()["state"] == "complete")

    await document_app.wait_for(complete)
    status = await client.get("/api/v1/documents/doc-gone/deletion", headers=alice)
    assert status.json()["parts"] == {"document": True, "vector": True, "graph": True}


@pytest.fixture
async def flaky_app(
    settings: DocumentSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[DocumentApp]:
    async for harness in run_document_app(settings, PublishFailsOnce(bus_factory())):
        yield harness


@pytest.fixture
async def flaky_deleted_app(
    settings: DocumentSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[DocumentApp]:
    async for harness in run_document_app(
        settings, PublishFailsOnce(bus_factory(), "document.deleted")
    ):
        yield harness


@pytest.fixture
async def flaky_indexed_app(
    settings: DocumentSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[DocumentApp]:
    async for harness in run_document_app(
        settings, PublishFailsOnce(bus_factory(), "document.indexed")
    ):
        yield harness


async def test_lost_stored_event_is_published_on_redelivery(flaky_app: DocumentApp) -> None:
    await _publish_extracted(flaky_app, "doc-retry")

    await flaky_app.wait_for(lambda: _count(flaky_app, "document.stored", 1))
    # The flag is set just after the bus confirms the event, so the test can see the event
    # a moment before the flag: wait for it rather than read it once.
    await flaky_app.wait_for(lambda: flaky_app.store.is_stored_event_published(ALICE, "doc-retry"))

    assert len(flaky_app.events_of("document.stored")) == 1
    assert await flaky_app.bus.dead_letters("document") == []


async def test_a_stored_document_is_acknowledged_after_it_is_announced(
    document_app: DocumentApp,
) -> None:
    await _publish_extracted(document_app, "doc-ack")
    await document_app.wait_for(lambda: _count(document_app, "document.indexed", 1))
    types = [e.type for e in document_app.received if e.subject == "doc-ack"]
    assert types.index("document.stored") < types.index("document.indexed")
    indexed = document_app.events_of("document.indexed")[0]
    assert indexed.data == {
        "document_id": "doc-ack",
        "owner_id": ALICE,
        "part": "stored",
        "ok": True,
    }
    assert indexed.id == "indexed:stored:done:doc-ack"


async def test_a_lost_acknowledgement_is_published_on_redelivery(
    flaky_indexed_app: DocumentApp,
) -> None:
    # Fault test of the document service's acknowledgement: the first publish of
    # document.indexed is not confirmed; the handler raises, the bus redelivers
    # document.extracted, and the acknowledgement goes out (once, under its stable id).
    app = flaky_indexed_app
    await _publish_extracted(app, "doc-ack-retry")
    await app.wait_for(lambda: _count(app, "document.indexed", 1))
    assert [e.id for e in app.events_of("document.indexed")] == [
        "indexed:stored:done:doc-ack-retry"
    ]
    assert await app.bus.dead_letters("document") == []


async def test_a_lost_deleted_event_is_published_by_the_relay(
    flaky_deleted_app: DocumentApp,
) -> None:
    # Fault test of document.deleted: the bus does not confirm the first publish. The request
    # still answers 202 (the deletion is written and the event owed), and the relay
    # publishes it without the client asking again.
    app = flaky_deleted_app
    await _publish_extracted(app, "doc-owed")
    await app.wait_for(lambda: _count(app, "document.stored", 1))
    response = await app.client.delete("/api/v1/documents/doc-owed", headers=app.headers())
    assert response.status_code == 202, response.text
    assert app.bus.failed  # type: ignore[attr-defined]
    await app.wait_for(lambda: _count(app, "document.deleted", 1))
    assert app.events_of("document.deleted")[0].id == "document.deleted:doc-owed"

    async def settled() -> bool:
        return await app.store.unannounced_deletions(10) == []

    await app.wait_for(settled)


async def test_a_failed_job_discards_its_document(document_app: DocumentApp) -> None:
    await _publish_extracted(document_app, "doc-failed-job")
    await document_app.wait_for(lambda: _count(document_app, "document.stored", 1))
    failed = IngestionJobFailed(job_id="job-1", owner_id=ALICE, document_id="doc-failed-job")
    await document_app.bus.publish(failed.envelope(source="kglab/ingestion"))
    await document_app.wait_for(lambda: _count(document_app, "document.deleted", 1))
    response = await document_app.client.get(
        "/api/v1/documents/doc-failed-job", headers=document_app.headers()
    )
    assert response.status_code == 404
    # A job that failed before its document was stored leaves nothing to discard.
    nothing = IngestionJobFailed(job_id="job-2", owner_id=ALICE, document_id="never-stored")
    await document_app.bus.publish(nothing.envelope(source="kglab/ingestion"))
    await document_app.bus.publish(failed.envelope(source="kglab/ingestion"))  # a repeat

    async def repeat_announced() -> bool:
        return len(document_app.events_of("document.deleted")) >= 2

    await document_app.wait_for(repeat_announced)
    assert {e.subject for e in document_app.events_of("document.deleted")} == {"doc-failed-job"}


async def _count(document_app: DocumentApp, event_type: str, count: int) -> bool:
    return len(document_app.events_of(event_type)) >= count


def _consumed_extracted() -> float:
    # Tests in one process run one at a time, so a difference of this counter is this test's.
    value = REGISTRY.get_sample_value(
        "kglab_events_consumed_total", {"group": "document", "type": "document.extracted"}
    )
    return value or 0.0
