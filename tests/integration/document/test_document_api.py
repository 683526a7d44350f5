"""The document routes through the app, on each store adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.document.conftest import ALICE, BOB, DocumentApp, extracted_event

PROBLEM = "application/problem+json"


def routes(document_id: str) -> list[tuple[str, str]]:
    base = f"/api/v1/documents/{document_id}"
    return [
        ("GET", base),
        ("GET", f"{base}/chunks"),
        ("GET", f"{base}/deletion"),
        ("DELETE", base),
    ]


async def test_every_route_needs_an_identity(document_app: DocumentApp) -> None:
    await document_app.seed(extracted_event("doc-1"))

    for method, path in [("GET", "/api/v1/documents"), *routes("doc-1")]:
        response = await document_app.client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "Sign in" in response.json()["detail"]


async def test_another_users_document_is_404_on_every_route(document_app: DocumentApp) -> None:
    await document_app.seed(extracted_event("doc-alice", owner=ALICE))
    bob = document_app.headers(BOB)

    for method, path in routes("doc-alice"):
        response = await document_app.client.request(method, path, headers=bob)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "doc-alice" in response.json()["detail"]
    # Even with a malformed cursor, ownership is checked first.
    response = await document_app.client.get(
        "/api/v1/documents/doc-alice/chunks", params={"cursor": "!!"}, headers=bob
    )
    assert response.status_code == 404
    listed = await document_app.client.get("/api/v1/documents", headers=bob)
    assert listed.json()["items"] == []

    # Bob's DELETE changed nothing for Alice.
    mine = await document_app.client.get(
        "/api/v1/documents/doc-alice", headers=document_app.headers(ALICE)
    )
    assert mine.status_code == 200
    assert mine.json()["status"] == "stored"
    assert document_app.events_of("document.deleted") == []


async def test_list_get_chunks_delete_flow(document_app: DocumentApp) -> None:
    base = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    for i in range(5):
        await document_app.seed(
            extracted_event(f"doc-{i}", title=f"Report {i}", uploaded_at=base + timedelta(hours=i))
        )
    client, alice = document_app.client, document_app.headers()

    first = await client.get("/api/v1/documents", params={"limit": 2}, headers=alice)
    assert first.status_code == 200
    body = first.json()
    assert [d["id"] for d in body["items"]] == ["doc-4", "doc-3"]
    second = await client.get(
        "/api/v1/documents", params={"limit": 2, "cursor": body["next_cursor"]}, headers=alice
    )
    assert [d["id"] for d in second.json()["items"]] == ["doc-2", "doc-1"]

    one = await client.get("/api/v1/documents/doc-2", headers=alice)
    assert one.status_code == 200
    document = one.json()
    assert document["title"] == "Report 2"
    assert document["source"] == "report.txt"
    assert document["chunk_count"] == 3
    assert document["provenance"]["sha256"] == "cd" * 32
    assert datetime.fromisoformat(document["created_at"]) == base + timedelta(hours=2)

    chunks = await client.get("/api/v1/documents/doc-2/chunks", params={"limit": 2}, headers=alice)
    assert [c["position"] for c in chunks.json()["items"]] == [0, 1]
    rest = await client.get(
        "/api/v1/documents/doc-2/chunks",
        params={"cursor": chunks.json()["next_cursor"]},
        headers=alice,
    )
    assert [c["text"] for c in rest.json()["items"]] == ["Part 2."]
    assert rest.json()["next_cursor"] is None

    status = await client.get("/api/v1/documents/doc-2/deletion", headers=alice)
    assert status.json()["state"] == "not_requested"

    deleted = await client.delete("/api/v1/documents/doc-2", headers=alice)
    assert deleted.status_code == 202
    assert deleted.json() == {
        "document_id": "doc-2",
        "status": "deleting",
        "deletion_url": "/api/v1/documents/doc-2/deletion",
    }
    assert deleted.headers["location"] == "/api/v1/documents/doc-2/deletion"
    assert (await client.get("/api/v1/documents/doc-2", headers=alice)).status_code == 404
    assert (await client.get("/api/v1/documents/doc-2/chunks", headers=alice)).status_code == 404
    status = await client.get("/api/v1/documents/doc-2/deletion", headers=alice)
    assert status.status_code == 200
    assert status.json()["state"] == "in_progress"
    assert status.json()["parts"] == {"document": True, "vector": False, "graph": False}
    listed = await client.get("/api/v1/documents", params={"limit": 100}, headers=alice)
    assert [d["id"] for d in listed.json()["items"]] == ["doc-4", "doc-3", "doc-1", "doc-0"]
    await document_app.wait_for(lambda: _has(document_app, "document.deleted", 1))


async def _has(document_app: DocumentApp, event_type: str, count: int) -> bool:
    return len(document_app.events_of(event_type)) >= count


async def test_filters_and_sorts(document_app: DocumentApp) -> None:
    base = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    await document_app.seed(
        extracted_event("pdf-old", title="b", media_type="application/pdf", uploaded_at=base)
    )
    await document_app.seed(
        extracted_event(
            "txt-mid", title="c", source="https://example.org/x", uploaded_at=base + timedelta(1)
        )
    )
    await document_app.seed(
        extracted_event(
            "pdf-new", title="a", media_type="application/pdf", uploaded_at=base + timedelta(2)
        )
    )
    client, alice = document_app.client, document_app.headers()

    async def ids(**params: str) -> list[str]:
        response = await client.get("/api/v1/documents", params=params, headers=alice)
        assert response.status_code == 200, response.json()
        return [d["id"] for d in response.json()["items"]]

    assert await ids() == ["pdf-new", "txt-mid", "pdf-old"]
    assert await ids(sort="created_at") == ["pdf-old", "txt-mid", "pdf-new"]
    assert await ids(sort="title") == ["pdf-new", "pdf-old", "txt-mid"]
    assert await ids(type="application/pdf") == ["pdf-new", "pdf-old"]
    assert await ids(source="https://example.org/x") == ["txt-mid"]
    assert await ids(created_from="2026-11-27", created_to="2026-11-28") == ["txt-mid"]
    assert await ids(created_from="2026-11-27T00:00:00+00:00") == ["pdf-new", "txt-mid"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ2IjoxfQ"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"sort": "size"}, "sort"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_from": "2026-11-28", "created_to": "2026-11-27"}, "earlier"),
    ],
)
async def test_bad_listing_queries_are_422(
    document_app: DocumentApp, params: dict[str, str], fragment: str
) -> None:
    response = await document_app.client.get(
        "/api/v1/documents", params=params, headers=document_app.headers()
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    assert fragment in response.json()["detail"]


async def test_cursor_of_another_sort_is_422(document_app: DocumentApp) -> None:
    for i in range(3):
        await document_app.seed(extracted_event(f"doc-{i}"))
    client, alice = document_app.client, document_app.headers()
    first = await client.get("/api/v1/documents", params={"limit": 1}, headers=alice)

    response = await client.get(
        "/api/v1/documents",
        params={"limit": 1, "sort": "title", "cursor": first.json()["next_cursor"]},
        headers=alice,
    )

    assert response.status_code == 422
    assert "sorted by '-created_at'" in response.json()["detail"]


async def test_ready_names_the_store(document_app: DocumentApp) -> None:
    response = await document_app.client.get("/ready")

    assert response.status_code == 200
    dependencies = response.json()["dependencies"]
    assert dependencies.keys() >= {"bus"}
    assert {"mongo", "document_store"} & dependencies.keys()
