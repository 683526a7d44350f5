"""GET /api/v1/search through the app: results, owner isolation, bad input, the answer cache."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from kglab_shared.bus.port import EventBus
from kglab_vector.api.routes import CACHE_HEADER, NOTHING_RELEVANT
from kglab_vector.config import VectorSettings
from tests.integration.vector.conftest import (
    ALICE,
    BOB,
    VectorApp,
    deleted_envelope,
    run_vector_app,
    stored_envelope,
    stored_event,
)
from tests.waiting import wait_until

PROBLEM = "application/problem+json"
TEXTS = [
    "Salt is mined in deep shafts under the town of Velmora.",
    "Wool is woven on hand looms by every family.",
    "A lantern procession walks the streets each midwinter.",
]


async def seed(vector_app: VectorApp, document_id: str = "doc-a", owner: str = ALICE) -> None:
    event = stored_event(document_id, TEXTS, owner=owner, title=f"Report {document_id}")
    before = await vector_app.service.store.count(owner)
    await changed(
        vector_app,
        vector_app.publish_and_wait(stored_envelope(event), owner, before + len(TEXTS)),
    )


async def changed(vector_app: VectorApp, publishing: Awaitable[None]) -> None:
    """Run ``publishing`` and wait until the event is fully handled: hot answers refreshed."""
    stats = vector_app.service.refresh_stats
    refreshes = stats.changes
    await publishing

    async def refreshed() -> bool:
        return stats.changes > refreshes

    await wait_until(refreshed, timeout_s=10)


async def test_search_returns_enriched_snippets(vector_app: VectorApp) -> None:
    await seed(vector_app)
    for mode in ("hybrid", "dense", "sparse"):
        response = await vector_app.search(q="salt shafts Velmora", mode=mode, limit=2)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == mode
        first = body["results"][0]
        assert first == {
            "document_id": "doc-a",
            "chunk_id": "doc-a-0",
            "text": TEXTS[0],
            "score": first["score"],
            "title": "Report doc-a",
            "position": 0,
            "heading": "Part",
        }
        assert len(body["results"]) <= 2


async def test_another_owners_chunks_never_appear(vector_app: VectorApp) -> None:
    await seed(vector_app, "doc-alice", ALICE)
    await seed(vector_app, "doc-bob", BOB)
    for mode in ("hybrid", "dense", "sparse"):
        alice = (await vector_app.search(ALICE, q="salt shafts", mode=mode)).json()["results"]
        assert alice
        assert {r["document_id"] for r in alice} == {"doc-alice"}
    # Naming Bob's document filters Alice's search to nothing; it does not reveal Bob's.
    response = await vector_app.search(ALICE, q="salt", document_id="doc-bob")
    assert response.status_code == 200
    assert response.json()["results"] == []


async def test_document_filter(vector_app: VectorApp) -> None:
    await seed(vector_app, "doc-a")
    await seed(vector_app, "doc-b")
    results = (await vector_app.search(q="salt", document_id="doc-b")).json()["results"]
    assert results
    assert {r["document_id"] for r in results} == {"doc-b"}


async def test_media_type_filter(vector_app: VectorApp) -> None:
    for document_id, media_type in (("doc-pdf", "application/pdf"), ("doc-md", "text/markdown")):
        event = stored_event(document_id, TEXTS).model_copy(update={"media_type": media_type})
        before = await vector_app.service.store.count(ALICE)
        await vector_app.publish_and_wait(stored_envelope(event), ALICE, before + len(TEXTS))

    pdf = (await vector_app.search(q="salt", type="application/pdf")).json()["results"]
    assert pdf
    assert {r["document_id"] for r in pdf} == {"doc-pdf"}
    assert (await vector_app.search(q="salt", type="text/html")).json()["results"] == []


async def test_search_needs_an_identity(vector_app: VectorApp) -> None:
    response = await vector_app.client.get("/api/v1/search", params={"q": "salt"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "Sign in" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "'q' is required"),
        ({"q": ""}, "'q'"),
        ({"q": "   "}, "empty"),
        ({"q": "x" * 513}, "512"),
        ({"q": "salt", "limit": "0"}, "'limit'"),
        ({"q": "salt", "limit": "51"}, "'limit'"),
        ({"q": "salt", "limit": "ten"}, "'limit'"),
        ({"q": "salt", "mode": "fuzzy"}, "'mode'"),
        ({"q": "salt", "expand": "graph,pictures"}, "'pictures'"),
        ({"q": "salt", "expand": "nonsense"}, "supported values"),
        ({"q": "salt", "document_id": "d" * 201}, "'document_id'"),
        ({"q": "salt", "type": "t" * 201}, "'type'"),
    ],
)
async def test_bad_input_is_a_readable_422(
    vector_app: VectorApp, params: dict[str, str], says: str
) -> None:
    response = await vector_app.search(**params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    detail = response.json()["detail"]
    assert says in detail
    assert detail.endswith(".")


async def test_hostile_query_text_is_just_text(vector_app: VectorApp) -> None:
    await seed(vector_app)
    for q in ['{"$ne": null}', "owner_id:user-bob OR 1=1", "\u0000\u202e", "🔥" * 100]:
        response = await vector_app.search(q=q)
        assert response.status_code == 200, (q, response.text)
        assert all(r["document_id"] == "doc-a" for r in response.json()["results"])


async def test_answers_are_cached_and_invalidated_when_documents_change(
    vector_app: VectorApp,
) -> None:
    await seed(vector_app, "doc-a")
    first = await vector_app.search(q="Salt  shafts")
    assert first.headers[CACHE_HEADER] == "miss"
    again = await vector_app.search(q="salt shafts")  # case and spacing do not matter
    assert again.headers[CACHE_HEADER] == "hit"
    assert again.json() == first.json()
    other_mode = await vector_app.search(q="salt shafts", mode="dense")
    assert other_mode.headers[CACHE_HEADER] == "miss"
    # Bob's answer is his own, and his changes do not touch Alice's cache.
    assert (await vector_app.search(BOB, q="salt shafts")).headers[CACHE_HEADER] == "miss"
    await seed(vector_app, "doc-bob", BOB)
    assert (await vector_app.search(q="salt shafts")).headers[CACHE_HEADER] == "hit"

    # A new document of Alice's: the old answer is not served; her hot query (asked 3 times)
    # was searched again when the event was handled, so it is a hit that holds the new chunk;
    # a query asked once before was only invalidated.
    await seed(vector_app, "doc-new")
    fresh = await vector_app.search(q="salt shafts")
    assert fresh.headers[CACHE_HEADER] == "hit"
    assert {r["document_id"] for r in fresh.json()["results"]} == {"doc-a", "doc-new"}
    dense = await vector_app.search(q="salt shafts", mode="dense")
    assert dense.headers[CACHE_HEADER] == "miss"
    assert "doc-new" in {r["document_id"] for r in dense.json()["results"]}

    # Deleting it: invalidated again, refreshed, and it is gone from the answer.
    await changed(
        vector_app, vector_app.publish_and_wait(deleted_envelope("doc-new"), ALICE, len(TEXTS))
    )
    after = await vector_app.search(q="salt shafts")
    assert after.headers[CACHE_HEADER] == "hit"
    assert {r["document_id"] for r in after.json()["results"]} == {"doc-a"}


async def test_ready_names_qdrant_and_the_bus(vector_app: VectorApp) -> None:
    response = await vector_app.client.get("/ready")
    assert response.status_code == 200
    dependencies = response.json()["dependencies"]
    assert dependencies["qdrant_edge"]["status"] == "up"
    assert dependencies["bus"]["status"] == "up"
    settings = vector_app.app.state.vector_service.cache
    if settings.name == "redis":
        assert dependencies["redis"]["status"] == "up"


async def test_nothing_relevant_is_an_empty_answer_with_a_notice(
    settings: VectorSettings, bus_factory: Callable[[], EventBus]
) -> None:
    strict = settings.model_copy(update={"search_min_relevance": 0.99})
    async for vector_app in run_vector_app(strict, bus_factory()):
        await seed(vector_app)
        for mode in ("hybrid", "dense"):
            answer = await vector_app.search(q="how do I bake sourdough bread", mode=mode)
            assert answer.status_code == 200
            assert answer.json()["results"] == []
            assert answer.json()["notices"] == [NOTHING_RELEVANT]
        # A chunk with every word of the query is relevant whatever its cosine (identifiers,
        # rare names); word search has no calibrated score and always answers.
        for mode in ("hybrid", "sparse"):
            words = await vector_app.search(q="salt shafts Velmora", mode=mode)
            assert words.json()["results"][0]["chunk_id"] == "doc-a-0"
            assert words.json()["notices"] == []
