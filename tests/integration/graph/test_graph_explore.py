"""Exploring without ids (adr/0024): neighbours and paths by name with disambiguation, the most
connected entities, type filters and exports, on each store adapter."""

from __future__ import annotations

import csv
import io
import zipfile
from xml.etree import ElementTree

from tests.integration.graph.conftest import GraphApp
from tests.integration.graph.test_graph_api import ingest


async def test_paths_and_neighbours_take_names(graph_app: GraphApp) -> None:
    headers = await ingest(graph_app)
    client = graph_app.client

    path = await client.get(
        "/api/v1/graph/paths", params={"from": "marie curie", "to": "Sorbone"}, headers=headers
    )
    assert path.status_code == 200, path.text
    assert [e["name"] for e in path.json()["entities"]] == [
        "Marie Curie",
        "Pierre Curie",
        "Sorbonne",
    ]

    neighbors = await client.get(
        "/api/v1/graph/neighbors", params={"entity": "Pierre Curie"}, headers=headers
    )
    assert neighbors.status_code == 200
    assert neighbors.json()["entity"]["name"] == "Pierre Curie"
    assert "Marie Curie" in {n["name"] for n in neighbors.json()["neighbors"]}


async def test_no_path_names_the_entities_not_their_ids(graph_app: GraphApp) -> None:
    headers = await ingest(graph_app)

    # Marie Curie reaches the Sorbonne only through Pierre Curie: not within one relation.
    answer = await graph_app.client.get(
        "/api/v1/graph/paths",
        params={"from": "marie curie", "to": "Sorbone", "max_depth": 1},
        headers=headers,
    )

    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail == "No path of at most 1 relation joins Marie Curie and Sorbonne."
    assert "ent_" not in detail


async def test_an_ambiguous_name_answers_409_with_the_candidates(graph_app: GraphApp) -> None:
    headers = await ingest(graph_app)

    answer = await graph_app.client.get(
        "/api/v1/graph/neighbors", params={"entity": "Curie"}, headers=headers
    )

    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert {c["name"] for c in body["candidates"]} == {"Marie Curie", "Pierre Curie"}
    assert "could mean 2 entities" in body["detail"]
    assert "Marie Curie" in body["detail"]


async def test_an_unknown_name_answers_404_and_another_users_too(graph_app: GraphApp) -> None:
    await ingest(graph_app)
    for user in (graph_app.alice, graph_app.bob):
        answer = await graph_app.client.get(
            "/api/v1/graph/paths",
            params={"from": "Marie Curie" if user == graph_app.bob else "Zebulon", "to": "x"},
            headers=graph_app.headers(user),
        )
        assert answer.status_code == 404
        assert "is named" in answer.json()["detail"]


async def test_most_connected_entities_come_first_and_filter_by_type(
    graph_app: GraphApp,
) -> None:
    headers = await ingest(graph_app)
    client = graph_app.client

    top = (await client.get("/api/v1/graph/top-entities", headers=headers)).json()["results"]
    assert top[0]["name"] == "Pierre Curie"  # related to all four others
    assert top[0]["degree"] == 4
    assert [r["degree"] for r in top] == sorted((r["degree"] for r in top), reverse=True)

    none = await client.get(
        "/api/v1/graph/top-entities", params={"type": "PERSON"}, headers=headers
    )
    assert none.json()["results"] == []  # the rules recogniser types everything ENTITY
    bob = await client.get("/api/v1/graph/top-entities", headers=graph_app.headers(graph_app.bob))
    assert bob.json()["results"] == []


async def test_the_graph_exports_as_graphml_jsonld_and_neo4j_import_csv(
    graph_app: GraphApp,
) -> None:
    headers = await ingest(graph_app)
    client = graph_app.client

    graphml = await client.get(
        "/api/v1/graph/export", params={"format": "graphml"}, headers=headers
    )
    assert graphml.headers["content-type"].startswith("application/graphml+xml")
    root = ElementTree.fromstring(graphml.content)
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    nodes = root.findall("g:graph/g:node", ns)
    edges = root.findall("g:graph/g:edge", ns)
    assert len(nodes) == 5
    node_ids = {n.get("id") for n in nodes}
    assert all(e.get("source") in node_ids and e.get("target") in node_ids for e in edges)
    assert edges
    # Each edge says why it exists: its sentences' references and their text.
    keys = {k.get("attr.name"): k.get("id") for k in root.findall("g:key", ns)}
    for edge in edges:
        data = {d.get("key"): d.text or "" for d in edge.findall("g:data", ns)}
        assert data[keys["evidence"]].startswith("doc-curie:"), data
        assert "Curie" in data[keys["sentences"]], data

    jsonld = (
        await client.get("/api/v1/graph/export", params={"format": "jsonld"}, headers=headers)
    ).json()
    assert "@context" in jsonld
    names = {n["name"] for n in jsonld["@graph"] if "name" in n}
    assert {"Marie Curie", "Pierre Curie", "Sorbonne"} <= names
    links = [n for n in jsonld["@graph"] if "source" in n]
    assert {n["@type"] for n in links} >= {"RELATED_TO"}
    assert all(n["evidence"] and n["sentences"] for n in links), links

    archive = await client.get("/api/v1/graph/export", params={"format": "csv"}, headers=headers)
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        entities = list(csv.reader(io.StringIO(files.read("entities.csv").decode())))
        relations = list(csv.reader(io.StringIO(files.read("relations.csv").decode())))
    assert entities[0] == ["id:ID", "name", "type", ":LABEL"]
    assert relations[0][:4] == [":START_ID", ":END_ID", ":TYPE", "weight:int"]
    ids = {row[0] for row in entities[1:]}
    assert len(ids) == 5
    assert all(row[0] in ids and row[1] in ids for row in relations[1:])
    assert relations[0][5] == "evidence:string[]"
    # The co-occurrence rows too (they were exported without it).
    assert [r for r in relations[1:] if r[2] == "RELATED_TO"]
    assert all(r[5].startswith("doc-curie:") for r in relations[1:]), relations

    refused = await client.get("/api/v1/graph/export", params={"format": "pdf"}, headers=headers)
    assert refused.status_code == 422
    empty = await client.get(
        "/api/v1/graph/export",
        params={"format": "graphml"},
        headers=graph_app.headers(graph_app.bob),
    )
    assert ElementTree.fromstring(empty.content).findall("g:graph/g:node", ns) == []
