"""Resolution across documents (adr/0024): acronyms and spellings become one entity per owner,
the merge is recorded, and undoing it restores both entities everywhere; on each adapter."""

from __future__ import annotations

from typing import Any

import pytest

from kglab_graph.domain import entity_id
from kglab_shared.events import DocumentStored, ExtractedChunk
from tests.integration.graph.conftest import GraphApp

FIRST = "The FSF publishes licences. NodeJS runs servers."
SECOND = "The Free Software Foundation (FSF) sits in Boston. Node JS is popular."


async def graphed(graph_app: GraphApp, owner: str, document_id: str, *texts: str) -> None:
    await graph_app.store_document(owner, document_id, *texts)
    headers = graph_app.headers(owner)

    async def done() -> bool:
        answer = await graph_app.client.get(
            f"/api/v1/documents/{document_id}/graph", headers=headers
        )
        return answer.status_code == 200

    await graph_app.wait_for(done)


async def mentions(graph_app: GraphApp, owner: str, key: str) -> int | None:
    answer = await graph_app.client.get(
        f"/api/v1/graph/entities/{entity_id(owner, key)}", headers=graph_app.headers(owner)
    )
    return answer.json()["mentions"] if answer.status_code == 200 else None


async def test_acronyms_and_spellings_merge_across_documents_and_the_merge_is_reversible(
    graph_app: GraphApp,
) -> None:
    alice, client = graph_app.alice, graph_app.client
    headers = graph_app.headers(alice)
    await graphed(graph_app, alice, "doc-1", FIRST)
    assert await mentions(graph_app, alice, "fsf") == 1
    await graphed(graph_app, alice, "doc-2", SECOND)

    async def merged() -> bool:
        return await mentions(graph_app, alice, "fsf") is None

    await graph_app.wait_for(merged)
    # doc-1's "FSF" and doc-2's "(FSF)" joined the Free Software Foundation; the spellings of
    # Node.js joined the one the owner had first.
    assert await mentions(graph_app, alice, "free software foundation") == 3
    assert await mentions(graph_app, alice, "nodejs") == 2
    assert await mentions(graph_app, alice, "node js") is None
    recorded = (await client.get("/api/v1/graph/aliases", headers=headers)).json()["results"]
    assert {(a["alias"], a["canonical"]) for a in recorded} == {
        ("fsf", "free software foundation"),
        ("node js", "nodejs"),
    }
    assert any("acronym" in a["reason"] for a in recorded)

    undone = await client.delete("/api/v1/graph/aliases/FSF", headers=headers)
    assert undone.status_code == 200
    assert undone.json()["documents_rewritten"] == 2
    assert await mentions(graph_app, alice, "fsf") == 2
    assert await mentions(graph_app, alice, "free software foundation") == 1

    # A merge undone stays undone when the document comes again (processed here and now).
    service = graph_app.app.state.graph_service
    await service.ingest_document(
        DocumentStored(
            document_id="doc-2",
            owner_id=alice,
            title="Title of doc-2",
            media_type="text/plain",
            chunk_count=1,
            claim="read-directly-here",
        ),
        [ExtractedChunk(chunk_id="doc-2-0", position=0, text=SECOND)],
    )
    assert await mentions(graph_app, alice, "fsf") == 2
    again = await client.get("/api/v1/graph/aliases", headers=headers)
    assert {"alias": "fsf", "canonical": "fsf"}.items() <= next(
        a for a in again.json()["results"] if a["alias"] == "fsf"
    ).items()

    merged_again = await client.post(
        "/api/v1/graph/aliases",
        json={"alias": "FSF", "canonical": "Free Software Foundation"},
        headers=headers,
    )
    assert merged_again.status_code == 201
    assert merged_again.json()["documents_rewritten"] == 2
    assert await mentions(graph_app, alice, "fsf") is None
    assert await mentions(graph_app, alice, "free software foundation") == 3


async def test_merges_are_per_owner_and_bad_requests_are_readable(graph_app: GraphApp) -> None:
    await graphed(graph_app, graph_app.alice, "doc-2", SECOND)
    bob = graph_app.headers(graph_app.bob)
    client = graph_app.client
    assert (await client.get("/api/v1/graph/aliases", headers=bob)).json()["results"] == []
    missing = await client.delete("/api/v1/graph/aliases/FSF", headers=bob)
    assert missing.status_code == 404
    assert "is not merged" in missing.json()["detail"]
    unknown = await client.post(
        "/api/v1/graph/aliases", json={"alias": "FSF", "canonical": "Nothing Here"}, headers=bob
    )
    assert unknown.status_code == 404
    same = await client.post(
        "/api/v1/graph/aliases",
        json={"alias": "free software foundation", "canonical": "Free Software Foundation"},
        headers=graph_app.headers(graph_app.alice),
    )
    assert same.status_code == 422
    assert "already is" in same.json()["detail"]


async def test_a_documents_spellings_are_known_before_its_graph_can_be_read(
    graph_app: GraphApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document that arrives right after another must find the other's spellings as soon
    as that one's graph is readable (seen in CI: "Node JS" stayed apart from "NodeJS" when the
    spellings were written after the graph)."""
    service = graph_app.app.state.graph_service
    store = service.store
    seen: list[dict[str, list[str]]] = []
    apply_document = store.apply_document

    async def checked(owner: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(await store.variant_keys(owner, ["nodejs"]))
        return await apply_document(owner, *args, **kwargs)

    monkeypatch.setattr(store, "apply_document", checked)
    await graphed(graph_app, graph_app.alice, "doc-1", FIRST)
    assert seen == [{"nodejs": ["nodejs"]}]
