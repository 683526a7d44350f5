"""document.stored -> points; document.deleted -> points gone + document.parts_removed.

On the in-process bus (per test) and on a real RabbitMQ (a virtual host per test).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import pytest

from kglab_shared.bus.idempotency import InMemoryProcessedEvents
from kglab_shared.events import DocumentDeleted, DocumentPartsRemoved
from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.config import VectorSettings
from kglab_vector.domain import point_id
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.service import Indexer, VectorService
from tests.claims import held
from tests.conftest import unique_name
from tests.integration.vector.conftest import (
    ALICE,
    VectorApp,
    deleted_envelope,
    run_vector_app,
    stored_envelope,
    stored_event,
)
from tests.waiting import wait_until

TEXTS = ["First chunk about salt.", "Second chunk about wool.", "Third about lanterns."]


async def _parts_removed(vector_app: VectorApp, count: int) -> bool:
    return len(vector_app.events_of("document.parts_removed")) >= count


async def check_stored_then_deleted(vector_app: VectorApp) -> None:
    event = stored_event("doc-flow", TEXTS)
    await vector_app.publish_and_wait(stored_envelope(event), ALICE, 3)
    store = vector_app.service.store
    assert await store.count(ALICE, "doc-flow") == 3

    # A redelivery writes the same points: still three.
    await vector_app.bus.publish(stored_envelope(event))
    # A fresh event id (a re-announcement) is handled, and upserts the same point ids.
    await vector_app.bus.publish(
        event.envelope(source="kglab/document", subject="doc-flow", event_id="another-id")
    )
    await vector_app.publish_and_wait(
        stored_envelope(stored_event("doc-mark", TEXTS[:1])), ALICE, 4
    )
    assert await store.count(ALICE, "doc-flow") == 3

    await vector_app.publish_and_wait(deleted_envelope("doc-flow"), ALICE, 1)
    await wait_until(lambda: _parts_removed(vector_app, 1), timeout_s=10)
    removed = vector_app.events_of("document.parts_removed")[0]
    assert removed.id == "document.parts_removed:vector:doc-flow"
    assert DocumentPartsRemoved.model_validate(removed.data) == DocumentPartsRemoved(
        document_id="doc-flow", owner_id=ALICE, part="vector"
    )
    assert await store.count(ALICE, "doc-flow") == 0

    # The stored event redelivered after the deletion does not bring the vectors back.
    await vector_app.bus.publish(stored_envelope(event))
    await vector_app.publish_and_wait(
        stored_envelope(stored_event("doc-last", TEXTS[:1])), ALICE, 2
    )
    assert await store.count(ALICE, "doc-flow") == 0


async def test_stored_and_deleted_on_the_in_process_bus(vector_app: VectorApp) -> None:
    await check_stored_then_deleted(vector_app)


async def test_a_rechunked_document_keeps_only_its_new_chunks(vector_app: VectorApp) -> None:
    await vector_app.publish_and_wait(stored_envelope(stored_event("doc-re", TEXTS)), ALICE, 3)
    shorter = stored_event("doc-re", ["Only one chunk now."])
    await vector_app.publish_and_wait(
        shorter.envelope(source="kglab/document", subject="doc-re", event_id="rechunk"), ALICE, 1
    )
    response = await vector_app.search(q="chunk")
    assert [r["text"] for r in response.json()["results"]] == ["Only one chunk now."]


def test_point_ids_follow_owner_document_and_chunk() -> None:
    assert point_id(ALICE, "doc-flow", "doc-flow-0") != point_id("other", "doc-flow", "doc-flow-0")


@pytest.fixture
async def rabbitmq_vector_app(
    rabbitmq_url: str, settings: VectorSettings
) -> AsyncIterator[VectorApp]:
    from kglab_shared.bus.rabbitmq import RabbitMQBus
    from tests.contract.test_event_bus import (
        RabbitMQManagement,
        amqp_url_for_vhost,
        management_url,
    )

    management = RabbitMQManagement(management_url(rabbitmq_url))
    vhost = unique_name("kglab_vector_test")
    await management.create_vhost(vhost)
    try:
        bus = RabbitMQBus(amqp_url_for_vhost(rabbitmq_url, vhost), "kglab/vector-test")
        async for harness in run_vector_app(settings, bus):
            yield harness
    finally:
        await management.delete_vhost(vhost)
        await management.aclose()


@pytest.mark.backend("rabbitmq")
async def test_stored_and_deleted_on_rabbitmq(rabbitmq_vector_app: VectorApp) -> None:
    await check_stored_then_deleted(rabbitmq_vector_app)


class GatedEmbedder(HashingEmbedder):
    """Embeds only when the test opens the gate: a document still being embedded."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.started = threading.Event()
        self.gate = threading.Event()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.started.set()
        self.gate.wait(timeout=10)
        return super().embed_documents(texts)


async def test_a_deletion_during_indexing_elsewhere_leaves_no_vectors(
    vector_app: VectorApp,
) -> None:
    # Two replicas of the service on one index and one ledger: replica A is still embedding
    # the document when replica B handles its deletion. A must not bring the vectors back.
    store, dimension = vector_app.service.store, vector_app.service.indexer.embedder.dimension
    ledger = InMemoryProcessedEvents()
    gated = GatedEmbedder(dimension)
    replica_a = VectorService(
        store, Indexer(gated, Bm25SparseEncoder()), InMemorySearchCache(), tombstones=ledger
    )
    replica_b = VectorService(
        store,
        Indexer(HashingEmbedder(dimension), Bm25SparseEncoder()),
        InMemorySearchCache(),
        tombstones=ledger,
    )
    event = stored_event("doc-race", TEXTS)

    indexing = asyncio.create_task(replica_a.index_document(event, held(event.claim)))
    await asyncio.to_thread(gated.started.wait, 10)
    await replica_b.remove_document(DocumentDeleted(document_id="doc-race", owner_id=ALICE))
    gated.gate.set()

    assert await indexing == 0
    assert await store.count(ALICE, "doc-race") == 0
    # A later redelivery, under any event id, on either replica, changes nothing.
    assert await replica_b.index_document(event, held(event.claim)) == 0
    assert await store.count(ALICE, "doc-race") == 0


async def test_index_and_delete_of_one_document_take_turns(vector_app: VectorApp) -> None:
    service = vector_app.service
    event = stored_event("doc-turns", TEXTS)
    deleted = DocumentDeleted(document_id="doc-turns", owner_id=ALICE)
    # Both at once in one process: whichever order they run in, nothing is left behind.
    await asyncio.gather(
        service.index_document(event, held(event.claim)), service.remove_document(deleted)
    )
    assert await service.store.count(ALICE, "doc-turns") == 0
