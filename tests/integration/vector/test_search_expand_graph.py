"""``search?expand=graph``: the vector service asks the real graph service (in-process, both on
one in-process broker and fed the same ``document.stored`` events) for related documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kglab_graph.config import GraphSettings
from kglab_graph.main import create_app as create_graph
from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.memory import InProcessBroker
from kglab_vector.config import VectorSettings
from kglab_vector.main import create_app as create_vector
from tests.claims import holder
from tests.integration.vector.conftest import (
    ALICE,
    BOB,
    VectorApp,
    run_vector_app,
    stored_envelope,
    stored_event,
)
from tests.waiting import wait_until

CURIE = [
    "Marie Curie studied radium in Paris with Pierre Curie.",
    "The laboratory on Rue Cuvier was cold and damp.",
]
NOBEL = ["Pierre Curie travelled to Stockholm for the Nobel Prize ceremony."]
GARDEN = ["Tomatoes grow best in full sun with regular watering."]


def _vector_settings(tmp_path: Path, **extra: object) -> VectorSettings:
    return VectorSettings(
        KGLAB_DATA_DIR=str(tmp_path),
        KGLAB_BUS="memory",
        KGLAB_STORES="embedded",
        embedder="hashing",
        qdrant_local_path=":memory:",
        cache="memory",
        **extra,
    )


async def _seed(harness: VectorApp, graph: FastAPI) -> None:
    """Two documents of Alice's sharing Pierre Curie, one of Bob's; wait for both services."""
    for document_id, texts in (("doc-curie", CURIE), ("doc-nobel", NOBEL)):
        await harness.bus.publish(stored_envelope(stored_event(document_id, texts)))
    await harness.bus.publish(stored_envelope(stored_event("doc-garden", GARDEN, owner=BOB)))
    transport = httpx.ASGITransport(app=graph)
    async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:

        async def graph_has_both() -> bool:
            response = await client.get(
                "/api/v1/graph/related-documents",
                params={"chunk_id": "doc-curie-0"},
                headers=harness.headers(ALICE),
            )
            return len(response.json().get("results", [])) == 2

        await wait_until(graph_has_both, timeout_s=10)

    async def indexed() -> bool:
        return await harness.service.store.count(ALICE) == 3

    await wait_until(indexed, timeout_s=10)


@pytest.fixture
async def with_graph(tmp_path: Path) -> AsyncIterator[VectorApp]:
    broker = InProcessBroker()
    graph_bus = create_bus("memory", None, source="kglab/graph", broker=broker)
    await graph_bus.start()
    graph_settings = GraphSettings(
        KGLAB_DATA_DIR=str(tmp_path / "graph"),
        KGLAB_BUS="memory",
        KGLAB_STORES="embedded",
        recogniser="rules",
    )
    (tmp_path / "graph").mkdir()
    graph = create_graph(graph_settings, bus=graph_bus, document_transport=holder())
    try:
        async with graph.router.lifespan_context(graph):
            vector_bus = create_bus("memory", None, source="kglab/vector", broker=broker)
            settings = _vector_settings(tmp_path)
            app = create_vector(
                settings,
                bus=vector_bus,
                graph_transport=httpx.ASGITransport(app=graph),
                document_transport=holder(),
            )
            async for harness in run_vector_app(settings, vector_bus, app=app):
                await _seed(harness, graph)
                yield harness
    finally:
        await graph_bus.close()


async def test_expand_graph_adds_documents_reached_through_entities(
    with_graph: VectorApp,
) -> None:
    response = await with_graph.search(
        q="Marie Curie studied radium in Paris", limit=1, expand="graph"
    )

    assert response.status_code == 200
    body = response.json()
    assert [r["document_id"] for r in body["results"]] == ["doc-curie"]
    related = body["related_documents"]
    assert [d["document_id"] for d in related] == ["doc-nobel"]
    assert related[0]["reached_through"] == "graph"
    assert "Pierre Curie" in related[0]["via"]
    assert body["notices"] == []


async def test_without_expand_there_is_no_graph_part(with_graph: VectorApp) -> None:
    body = (await with_graph.search(q="radium", limit=1)).json()
    assert body["related_documents"] is None


async def test_another_owner_reaches_nothing_through_the_graph(with_graph: VectorApp) -> None:
    body = (await with_graph.search(BOB, q="tomatoes sun", expand="graph")).json()
    assert [r["document_id"] for r in body["results"]] == ["doc-garden"]
    assert body["related_documents"] == []


async def test_a_graph_service_that_is_down_degrades_the_answer(tmp_path: Path) -> None:
    # Nothing listens on this port: the search still answers, and says what is missing.
    settings = _vector_settings(tmp_path, graph_url="http://127.0.0.1:9", graph_timeout_s=1)
    bus = create_bus("memory", None, source="kglab/vector", broker=InProcessBroker())
    async for harness in run_vector_app(settings, bus):
        await harness.publish_and_wait(stored_envelope(stored_event("doc-curie", CURIE)), ALICE, 2)
        response = await harness.search(q="radium", expand="graph")
        assert response.status_code == 200
        body = response.json()
        assert body["results"]
        assert body["related_documents"] == []
        assert body["notices"] == [
            "The graph service is unavailable; related documents are left out."
        ]
