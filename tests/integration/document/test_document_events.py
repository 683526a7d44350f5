"""The document service on the in-process bus: extracted -> stored, delete -> parts removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from kglab_document.config import DocumentSettings
from kglab_shared.bus.port import DeadLetter, EventBus, EventHandler, PublishError, RetryPolicy
from kglab_shared.events import DocumentPartsRemoved, DocumentStored, EventEnvelope
from kglab_shared.metrics import REGISTRY
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
    assert [c.position for c in data.chunks] == [0, 1, 2, 3]
    response = await document_app.client.get(
        "/api/v1/documents/doc-flow/chunks", headers=document_app.headers()
    )
    assert len(response.json()["items"]) == 4


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


class StoredPublishFailsOnce:
    """A bus whose first ``document.stored`` publish is lost, as in a crash after the save."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.failed = False

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, event: EventEnvelope) -> None:
        if event.type == "document.stored" and not self.failed:
            self.failed = True
            raise PublishError("The broker did not confirm the event.")
        await self.inner.publish(event)

    async def subscribe(
        self,
        group: str,
        patterns: Sequence[str],
        handler: EventHandler,
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 16,
    ) -> None:
        # Retry quickly so the test does not wait for the production backoff.
        await self.inner.subscribe(
            group, patterns, handler, retry=RetryPolicy(base_delay_s=0.05), prefetch=prefetch
        )

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(group, limit)

    async def replay_dead_letters(self, group: str) -> int:
        return await self.inner.replay_dead_letters(group)

    async def ping(self) -> None:
        await self.inner.ping()


@pytest.fixture
async def flaky_app(
    settings: DocumentSettings, bus_factory: Callable[[], EventBus]
) -> AsyncIterator[DocumentApp]:
    async for harness in run_document_app(settings, StoredPublishFailsOnce(bus_factory())):
        yield harness


async def test_lost_stored_event_is_published_on_redelivery(flaky_app: DocumentApp) -> None:
    await _publish_extracted(flaky_app, "doc-retry")

    await flaky_app.wait_for(lambda: _count(flaky_app, "document.stored", 1))
    # The flag is set just after the bus confirms the event, so the test can see the event
    # a moment before the flag: wait for it rather than read it once.
    await flaky_app.wait_for(lambda: flaky_app.store.is_stored_event_published(ALICE, "doc-retry"))

    assert len(flaky_app.events_of("document.stored")) == 1
    assert await flaky_app.bus.dead_letters("document") == []


async def _count(document_app: DocumentApp, event_type: str, count: int) -> bool:
    return len(document_app.events_of(event_type)) >= count


def _consumed_extracted() -> float:
    # Tests in one process run one at a time, so a difference of this counter is this test's.
    value = REGISTRY.get_sample_value(
        "kglab_events_consumed_total", {"group": "document", "type": "document.extracted"}
    )
    return value or 0.0
