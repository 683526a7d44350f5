"""The vector service acknowledges each indexed document (``document.indexed``, part
``embedded``): after a publish the bus did not confirm, and when the document cannot be
indexed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_shared.events import EventEnvelope
from kglab_vector.config import VectorSettings
from tests.bus_faults import PublishFailsOnce
from tests.integration.vector.conftest import (
    ALICE,
    VectorApp,
    run_vector_app,
    stored_envelope,
    stored_event,
)
from tests.waiting import wait_until

TEXTS = ["First chunk about salt.", "Second chunk about wool."]


@pytest.fixture
async def flaky_vector_app(settings: VectorSettings) -> AsyncIterator[VectorApp]:
    bus = create_bus("memory", None, source="kglab/test", broker=InProcessBroker())
    async for harness in run_vector_app(settings, PublishFailsOnce(bus, "document.indexed")):
        yield harness


async def _acknowledgements(app: VectorApp) -> list[EventEnvelope]:
    received: list[EventEnvelope] = []

    async def record(envelope: EventEnvelope) -> None:
        received.append(envelope)

    await app.bus.subscribe("ack-observer", ["document.indexed"], record)
    return received


async def test_a_lost_acknowledgement_is_published_on_redelivery(
    flaky_vector_app: VectorApp,
) -> None:
    # Fault test of the vector service's producer: the first document.indexed is not
    # confirmed; the handler raises, so the event id is not marked handled, document.stored
    # comes again, the same points are written and the acknowledgement goes out.
    app = flaky_vector_app
    acks = await _acknowledgements(app)
    await app.bus.publish(stored_envelope(stored_event("doc-v", TEXTS)))

    async def acknowledged() -> bool:
        return len(acks) >= 1

    await wait_until(acknowledged, timeout_s=10)
    assert app.bus.failed  # type: ignore[attr-defined]
    assert [a.id for a in acks] == ["indexed:embedded:done:doc-v"]
    assert acks[0].data == {
        "document_id": "doc-v",
        "owner_id": ALICE,
        "part": "embedded",
        "ok": True,
    }
    assert await app.service.store.count(ALICE, "doc-v") == 2
    assert await app.bus.dead_letters("vector") == []


async def test_a_document_that_cannot_be_indexed_is_reported_failed(
    flaky_vector_app: VectorApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = flaky_vector_app
    app.bus.failed = True  # type: ignore[attr-defined]  # no injected publish failure
    acks = await _acknowledgements(app)

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the vector store refused the write")

    monkeypatch.setattr(app.service.store, "upsert", broken)
    await app.bus.publish(stored_envelope(stored_event("doc-broken", TEXTS)))

    async def reported() -> bool:
        return len(acks) >= 1

    await wait_until(reported, timeout_s=10)
    assert [(a.id, a.data["ok"]) for a in acks] == [("indexed:embedded:failed:doc-broken", False)]
    assert await app.bus.dead_letters("vector") == []
