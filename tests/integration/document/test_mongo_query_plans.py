"""The Mongo adapter's queries are served by its indexes: ``explain`` of every listing shape
(first page, a cursor's page, each filter, each sort) and of a get shows an index scan, and no
listing sorts in memory. What the contract suite cannot see from outside: a listing that
scanned the collection would pass it, only slowly.

Runs on a server that plans like MongoDB (``queryPlanner.winningPlan``); FerretDB 1.x plans
nothing (adr/0011) and is skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kglab_document.domain import Document, DocumentCursor, DocumentFilters, SortOrder
from kglab_document.store import mongo
from kglab_document.store.mongo import MongoDocumentStore
from tests.conftest import unique_name

pytestmark = pytest.mark.backend("mongo")

OWNER = "user-plans"
START = datetime(2026, 5, 1, 8, tzinfo=UTC)


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    info = await client.admin.command("buildInfo")
    if "ferretdbVersion" in info or "ferretdb" in info:
        await client.close()
        pytest.skip("FerretDB 1.x has no query planner to ask (adr/0011)")
    name = unique_name("kglab_doc_plans")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def stages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stage of a plan tree, depth first (MongoDB's slot-based engine nests the tree
    under ``queryPlan``)."""
    plan = plan.get("queryPlan", plan)
    found = [plan]
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if isinstance(child, dict):
            found += stages(child)
    return found


async def test_every_listing_and_get_reads_an_index(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    store = MongoDocumentStore(database)
    await store.ensure_indexes()
    await store.ensure_indexes()  # a second start finds them
    documents = [
        Document(
            id=f"d-{i:03d}",
            owner_id=OWNER if i % 5 else "someone-else",
            job_id=f"j-{i}",
            title=f"{'abc'[i % 3]} {i}",
            media_type=("text/plain", "application/pdf")[i % 2],
            source=f"s{i % 4}.txt",
            created_at=START + timedelta(hours=i),
            chunk_count=0,
        )
        for i in range(60)
    ]
    for document in documents:
        assert (await store.save_extracted(document, [])).created
    middle = documents[31]
    shapes = [
        (DocumentFilters(), SortOrder.NEWEST),
        (DocumentFilters(), SortOrder.OLDEST),
        (DocumentFilters(), SortOrder.TITLE),
        (DocumentFilters(media_type="text/plain"), SortOrder.NEWEST),
        (DocumentFilters(source="s1.txt"), SortOrder.OLDEST),
        (
            DocumentFilters(created_from=START, created_to=START + timedelta(days=1)),
            SortOrder.NEWEST,
        ),
    ]
    for filters, sort in shapes:
        for after in (None, DocumentCursor.after(sort, middle)):
            query, order = mongo.list_query(OWNER, filters=filters, sort=sort, after=after)
            answer = await database.command(
                "explain", {"find": "documents", "filter": query, "sort": dict(order), "limit": 21}
            )
            plan = stages(answer["queryPlanner"]["winningPlan"])
            names = [stage.get("stage") for stage in plan]
            assert "IXSCAN" in names, (filters, sort, after, names)
            assert "COLLSCAN" not in names, (filters, sort, after, names)
            assert "SORT" not in names, (filters, sort, after, names)
    answer = await database.command(
        "explain", {"find": "documents", "filter": {"_id": middle.id, "owner_id": OWNER}}
    )
    names = [stage.get("stage") for stage in stages(answer["queryPlanner"]["winningPlan"])]
    assert "COLLSCAN" not in names, names
    index_names = {index["name"] async for index in await database["documents"].list_indexes()}
    assert not index_names & set(mongo._RETIRED_INDEXES)
