"""One store per test, for each adapter: SQLite and PostgreSQL jobs, file and GridFS blobs,
in-process and Redis progress. Real servers give each test its own database or prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from kglab_ingestion.store.blob_file import FileBlobStore
from kglab_ingestion.store.blob_gridfs import GridFsBlobStore
from kglab_ingestion.store.port import BlobStore, ProgressChannel
from kglab_ingestion.store.progress_memory import InProcessProgressChannel
from kglab_ingestion.store.progress_redis import RedisProgressChannel
from kglab_ingestion.store.sql import SqlJobStore, create_engine, sqlite_url
from tests.conftest import unique_name
from tests.isolation import fresh_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.backend("postgres"))])
async def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlJobStore]:
    if request.param == "sqlite":
        store = SqlJobStore(create_engine(sqlite_url(tmp_path / "jobs.sqlite3")))
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
        return
    server: str = request.getfixturevalue("postgres_url")
    async with fresh_postgres_database(server, prefix="kglab_ing") as url:
        store = SqlJobStore(create_engine(url))
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=["file", pytest.param("gridfs", marks=pytest.mark.backend("mongo"))])
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "file":
        yield FileBlobStore(tmp_path / "blobs")
        return
    url: str = request.getfixturevalue("mongo_url")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = unique_name("kglab_blobs")
    store = GridFsBlobStore(client[name])
    await store.ensure_indexes()
    try:
        yield store
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backend("redis"))])
async def progress_channel(request: pytest.FixtureRequest) -> AsyncIterator[ProgressChannel]:
    if request.param == "memory":
        channel: ProgressChannel = InProcessProgressChannel()
    else:
        url: str = request.getfixturevalue("redis_url")
        channel = RedisProgressChannel(Redis.from_url(url), prefix=f"{unique_name('test')}:")
    try:
        yield channel
    finally:
        await channel.close()
