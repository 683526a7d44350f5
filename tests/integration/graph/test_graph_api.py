"""The graph routes through the app: events in, owner-scoped queries out."""

from __future__ import annotations

from kglab_graph.domain import entity_id
from tests.integration.graph.conftest import GraphApp

CURIE = (
    "Marie Curie worked with Pierre Curie at the University of Paris. "
    "M. Curie won the Nobel Prize with Pierre Curie. "
    "Pierre Curie taught at the Sorbonne."
)


async def ingest(graph_app: GraphApp) -> dict[str, str]:
    await graph_app.store_document(graph_app.alice, "doc-curie", CURIE)
    headers = graph_app.headers(graph_app.alice)

    async def ready() -> bool:
        response = await graph_app.client.get("/api/v1/documents/doc-curie/graph", headers=headers)
        return response.status_code == 200

    await graph_app.wait_for(ready)
    return headers


async def test_a_stored_document_becomes_a_searchable_graph(graph_app: GraphApp) -> None:
    headers = await ingest(graph_app)
    client = graph_app.client

    found = await client.get(
        "/api/v1/graph/entities", params={"q": "Mari Curie", "limit": 3}, headers=headers
    )
    assert found.status_code == 200
    marie = found.json()["results"][0]
    assert marie["name"] == "Marie Curie"

    detail = (await client.get(f"/api/v1/graph/entities/{marie['id']}", headers=headers)).json()
    assert detail["mentions"] == 2  # "M. Curie" resolved to her
    assert detail["degree"] >= 2
    assert detail["top_documents"][0]["document_id"] == "doc-curie"

    neighbors = await client.get(
        f"/api/v1/graph/entities/{marie['id']}/neighbors",
        params={"depth": 2, "min_weight": 1},
        headers=headers,
    )
    assert neighbors.status_code == 200
    names = {n["name"]: n["distance"] for n in neighbors.json()["neighbors"]}
    assert names["Pierre Curie"] == 1
    assert names["Sorbonne"] == 2
    # Neighbours say why two entities are linked: the evidence and its sentences.
    for relation in neighbors.json()["relations"]:
        assert relation["evidence"]
        assert relation["statements"][0]["sentences"]
        assert relation["statements"][0]["document_id"] == "doc-curie"

    sorbonne = entity_id(graph_app.alice, "sorbonne")
    path = await client.get(
        "/api/v1/graph/paths", params={"from": marie["id"], "to": sorbonne}, headers=headers
    )
    assert path.status_code == 200
    assert [e["name"] for e in path.json()["entities"]] == [
        "Marie Curie",
        "Pierre Curie",
        "Sorbonne",
    ]
    for relation in path.json()["relations"]:
        assert relation["evidence"]
        statement = relation["statements"][0]
        assert statement["kind"] == "co-occurrence"  # the rules recogniser reads no verbs
        assert "Curie" in statement["sentences"][0]

    graph = (await client.get("/api/v1/documents/doc-curie/graph", headers=headers)).json()
    assert {"Marie Curie", "Pierre Curie", "Sorbonne"} <= {e["name"] for e in graph["entities"]}
    assert all(r["evidence"] for r in graph["relations"])


async def test_another_users_entity_and_document_answer_404(graph_app: GraphApp) -> None:
    await ingest(graph_app)
    marie = entity_id(graph_app.alice, "marie curie")
    pierre = entity_id(graph_app.alice, "pierre curie")
    bob = graph_app.headers(graph_app.bob)
    client = graph_app.client

    for path, params in [
        (f"/api/v1/graph/entities/{marie}", {}),
        (f"/api/v1/graph/entities/{marie}/neighbors", {"depth": 1}),
        ("/api/v1/graph/paths", {"from": marie, "to": pierre}),
        ("/api/v1/documents/doc-curie/graph", {}),
    ]:
        response = await client.get(path, params=params, headers=bob)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "knowledge graph" in response.json()["detail"]
    search = await client.get("/api/v1/graph/entities", params={"q": "Curie"}, headers=bob)
    assert search.json()["results"] == []


async def test_depth_outside_one_to_three_is_422_with_a_readable_detail(
    graph_app: GraphApp,
) -> None:
    headers = graph_app.headers(graph_app.alice)
    response = await graph_app.client.get(
        "/api/v1/graph/entities/ent_x/neighbors", params={"depth": 4}, headers=headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "'depth': Input should be less than or equal to 3."


async def test_routes_need_an_identity(graph_app: GraphApp) -> None:
    for path in [
        "/api/v1/graph/entities?q=Curie",
        "/api/v1/graph/entities/ent_x",
        "/api/v1/graph/entities/ent_x/neighbors",
        "/api/v1/graph/paths?from=a&to=b",
        "/api/v1/documents/doc-1/graph",
        "/api/v1/graph/related-documents?chunk_id=doc-1-0",
    ]:
        response = await graph_app.client.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_related_documents_are_reached_through_shared_entities(
    graph_app: GraphApp,
) -> None:
    headers = await ingest(graph_app)
    await graph_app.store_document(
        graph_app.alice, "doc-nobel", "Pierre Curie shared the Nobel Prize in Stockholm."
    )
    await graph_app.store_document(graph_app.bob, "doc-bob", "Pierre Curie lived in Paris.")
    client = graph_app.client
    params = {"chunk_id": "doc-curie-0", "exclude": "doc-curie"}

    async def found() -> bool:
        response = await client.get(
            "/api/v1/graph/related-documents", params=params, headers=headers
        )
        return bool(response.json()["results"])

    await graph_app.wait_for(found)
    related = (
        await client.get("/api/v1/graph/related-documents", params=params, headers=headers)
    ).json()["results"]
    assert [r["document_id"] for r in related] == ["doc-nobel"]
    assert "Pierre Curie" in related[0]["via"]
    assert related[0]["title"] == "Title of doc-nobel"
    # Bob starting from Alice's chunk reaches nothing, not even his own similar document.
    bobs = await client.get(
        "/api/v1/graph/related-documents", params=params, headers=graph_app.headers(graph_app.bob)
    )
    assert bobs.json()["results"] == []
    # No chunk at all, or too many, is a readable 422.
    missing = await client.get("/api/v1/graph/related-documents", headers=headers)
    assert missing.status_code == 422
    assert "chunk_id" in missing.json()["detail"]
    too_many = await client.get(
        "/api/v1/graph/related-documents",
        params=[("chunk_id", f"c{i}") for i in range(51)],
        headers=headers,
    )
    assert too_many.status_code == 422


async def test_a_deleted_document_leaves_the_graph_and_says_so(graph_app: GraphApp) -> None:
    headers = await ingest(graph_app)
    await graph_app.delete_document(graph_app.alice, "doc-curie")

    async def removed() -> bool:
        return any(e.type == "document.parts_removed" for e in graph_app.received)

    await graph_app.wait_for(removed)
    event = next(e for e in graph_app.received if e.type == "document.parts_removed")
    assert event.data == {
        "document_id": "doc-curie",
        "owner_id": graph_app.alice,
        "part": "graph",
    }
    marie = entity_id(graph_app.alice, "marie curie")
    assert (
        await graph_app.client.get(f"/api/v1/graph/entities/{marie}", headers=headers)
    ).status_code == 404


async def test_readiness_names_the_graph_store(graph_app: GraphApp) -> None:
    response = await graph_app.client.get("/ready")
    assert response.status_code == 200
    dependencies = response.json()["dependencies"]
    assert {"neo4j", "graph_store"} & set(dependencies)
