"""The graph service acknowledges each document's graph (``document.indexed``, part
``graphed``): after a publish the bus did not confirm, and when the graph cannot be written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kglab_shared.bus.port import EventBus
from kglab_shared.events import EventEnvelope
from tests.bus_faults import PublishFailsOnce
from tests.integration.graph.conftest import GraphApp

TEXT = "Marie Curie worked in Paris with Pierre Curie."


@pytest.fixture
def wrap_bus() -> Callable[[EventBus], EventBus]:
    return lambda bus: PublishFailsOnce(bus, "document.indexed")


async def _acknowledgements(graph_app: GraphApp) -> list[EventEnvelope]:
    received: list[EventEnvelope] = []

    async def record(envelope: EventEnvelope) -> None:
        received.append(envelope)

    await graph_app.bus.subscribe("ack-observer", ["document.indexed"], record)
    return received


async def test_a_lost_acknowledgement_is_published_on_redelivery(graph_app: GraphApp) -> None:
    # Fault test of the graph service's producer: the first document.indexed is not
    # confirmed; the handler raises, document.stored comes again, the graph is written again
    # (the same entities) and the acknowledgement goes out.
    acks = await _acknowledgements(graph_app)
    await graph_app.store_document(graph_app.alice, "doc-g", TEXT)

    async def acknowledged() -> bool:
        return len(acks) >= 1

    await graph_app.wait_for(acknowledged)
    assert graph_app.bus.failed  # type: ignore[attr-defined]
    assert acks[0].id == "indexed:graphed:done:doc-g"
    assert acks[0].data == {
        "document_id": "doc-g",
        "owner_id": graph_app.alice,
        "part": "graphed",
        "ok": True,
    }
    graph = await graph_app.client.get(
        "/api/v1/documents/doc-g/graph", headers=graph_app.headers(graph_app.alice)
    )
    assert graph.status_code == 200, graph.text
    assert graph.json()["entities"]
    assert await graph_app.bus.dead_letters("graph") == []


async def test_a_graph_that_cannot_be_written_is_reported_failed(
    graph_app: GraphApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    acks = await _acknowledgements(graph_app)
    graph_app.bus.failed = True  # type: ignore[attr-defined]  # no injected publish failure
    store = graph_app.app.state.graph_store

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the graph store refused the write")

    monkeypatch.setattr(store, "apply_document", broken)
    await graph_app.store_document(graph_app.alice, "doc-broken", TEXT)

    async def reported() -> bool:
        return any(a.data.get("ok") is False for a in acks)

    await graph_app.wait_for(reported)
    failed = [a for a in acks if a.data["ok"] is False]
    assert [a.id for a in failed] == ["indexed:graphed:failed:doc-broken"]
    # Reported and acknowledged, not parked: the job fails and its document is removed.
    assert await graph_app.bus.dead_letters("graph") == []
