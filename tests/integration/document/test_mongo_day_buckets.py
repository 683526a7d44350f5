"""The Mongo adapter's day buckets (adr/0013): what the contract suite cannot see from outside.

Documents stored before buckets get their day, initial and markers once, at start-up; a page
that walks more buckets than ``day_walk_limit`` finishes with one bounded query and stays exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kglab_document.domain import Document, DocumentCursor, DocumentFilters, SortOrder
from kglab_document.store import mongo
from kglab_document.store.mongo import MongoDocumentStore
from tests.conftest import unique_name

OWNER = "user-days"
START = datetime(2026, 5, 1, 8, tzinfo=UTC)


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = unique_name("kglab_doc_days")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def document(i: int, *, days: int) -> Document:
    return Document(
        id=f"d-{i:03d}",
        owner_id=OWNER,
        job_id=f"j-{i}",
        title=f"T {i}",
        media_type="text/plain",
        source="a.txt",
        created_at=START + timedelta(days=days, minutes=i),
        chunk_count=0,
    )


async def all_ids(store: MongoDocumentStore, sort: SortOrder, limit: int) -> list[str]:
    seen: list[str] = []
    after: DocumentCursor | None = None
    for _ in range(200):
        page = await store.list_documents(
            OWNER, filters=DocumentFilters(), sort=sort, limit=limit, after=after
        )
        seen += [d.id for d in page.items]
        if page.next_cursor is None:
            return seen
        after = DocumentCursor.decode(page.next_cursor, sort)
    raise AssertionError("pagination did not end")


async def test_documents_from_before_day_buckets_are_listed_after_start_up(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    old = [document(i, days=i % 4) for i in range(9)]
    # Written as the adapter did before day buckets: no day field, no markers.
    await database["documents"].insert_many(
        [
            {"_id": d.id, **{k: v for k, v in mongo._document_to_mongo(d).items() if k != "day"}}
            for d in old
        ]
    )
    store = MongoDocumentStore(database)
    await store.ensure_indexes()
    await store.ensure_indexes()  # the second start finds the migration done

    newest = sorted(old, key=lambda d: (d.created_at, d.id), reverse=True)
    assert await all_ids(store, SortOrder.NEWEST, 2) == [d.id for d in newest]
    assert await database["documents"].count_documents({"day": {"$exists": False}}) == 0
    assert await database["document_days"].count_documents({"kind": "day"}) == 4
    assert await database["document_days"].count_documents({"kind": "month"}) == 1
    assert await database["documents"].count_documents({"initial": "T"}) == len(old)
    by_title = sorted(old, key=lambda d: (d.title, d.id))
    assert await all_ids(store, SortOrder.TITLE, 2) == [d.id for d in by_title]


async def test_a_page_past_the_walk_limit_is_exact(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    store = MongoDocumentStore(database, day_walk_limit=2)
    await store.ensure_indexes()
    # One document a day, titles under several initials.
    saved = [
        replace(document(i, days=i), title=f"{'ABCDE'[i % 5]}{'xyz'[i % 3]} {i}") for i in range(15)
    ]
    for d in saved:
        assert (await store.save_extracted(d, [])).created

    for sort in SortOrder:
        if sort is SortOrder.TITLE:
            expected = sorted(saved, key=lambda d: (d.title, d.id))
        else:
            expected = sorted(
                saved, key=lambda d: (d.created_at, d.id), reverse=sort is SortOrder.NEWEST
            )
        for limit in (1, 2, 5, 14, 15, 16):
            assert await all_ids(store, sort, limit) == [d.id for d in expected], (sort, limit)
