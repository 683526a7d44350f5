"""The GridFS adapter keeps GridFS's own layout (a stock GridFS reader reads what it stores),
ignores the chunks of an upload that died, and checks the bytes it reads against their key."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kglab_ingestion.store.blob_gridfs import GridFsBlobStore
from kglab_ingestion.store.port import BlobNotFoundError
from tests.conftest import unique_name

pytestmark = pytest.mark.backend("mongo")


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = unique_name("kglab_gridfs")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def a_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / f"source-{size}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_a_small_file_is_a_regular_gridfs_file(
    database: AsyncDatabase[Any], tmp_path: Path
) -> None:
    store = GridFsBlobStore(database)
    await store.ensure_indexes()
    path, sha = a_file(tmp_path, 4000)
    assert await store.put_file(sha, path) is True
    stream = await AsyncGridFSBucket(database, bucket_name="blobs").open_download_stream(sha)
    assert stream.length == 4000
    assert await stream.read() == path.read_bytes()
    assert await database["blobs.chunks"].count_documents({"files_id": sha}) == 1


async def test_chunks_without_their_files_document_are_not_a_blob(
    database: AsyncDatabase[Any], tmp_path: Path
) -> None:
    # An upload that died after its chunks: the bytes are incomplete (or unconfirmed) and a
    # read must not hand them out.
    store = GridFsBlobStore(database)
    await store.ensure_indexes()
    path, sha = a_file(tmp_path, 600_000)
    await database["blobs.chunks"].insert_one(
        {"files_id": sha, "n": 0, "data": path.read_bytes()[:1000]}
    )
    with pytest.raises(BlobNotFoundError):
        await store.copy_to(sha, tmp_path / "out")
    assert not await store.exists(sha)
    # Storing the bytes for real replaces the orphan and reads back whole.
    assert await store.put_file(sha, path) is True
    await store.copy_to(sha, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == path.read_bytes()


async def test_bytes_that_do_not_match_their_key_are_not_handed_out(
    database: AsyncDatabase[Any], tmp_path: Path
) -> None:
    store = GridFsBlobStore(database)
    await store.ensure_indexes()
    path, sha = a_file(tmp_path, 2000)
    await store.put_file(sha, path)
    await database["blobs.chunks"].update_one(
        {"files_id": sha, "n": 0}, {"$set": {"data": b"tampered"}}
    )
    with pytest.raises(BlobNotFoundError):
        await store.copy_to(sha, tmp_path / "out")
    assert not (tmp_path / "out").exists()
