"""One ``DocumentStore`` per test, for each adapter: the embedded SQLite file and Mongo.

The Mongo one gets a database of its own (dropped afterwards), so tests run in parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from kglab_document.store.file import SqliteDocumentStore
from kglab_document.store.mongo import MongoDocumentStore
from kglab_document.store.port import DocumentStore
from tests.conftest import unique_name


@pytest.fixture(params=["file", "mongo"])
async def document_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DocumentStore]:
    if request.param == "file":
        store = await SqliteDocumentStore.open(tmp_path / "documents.sqlite3")
        try:
            yield store
        finally:
            await store.close()
        return
    url: str = request.getfixturevalue("mongo_url")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = unique_name("kglab_doc")
    try:
        mongo = MongoDocumentStore(client[name])
        await mongo.ensure_indexes()
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()
