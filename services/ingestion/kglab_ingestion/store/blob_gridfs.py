"""Raw files in MongoDB GridFS (pymongo's async API), the file id being the SHA-256.

Works on MongoDB and on FerretDB 1.24 (GridFS is plain inserts and finds on two collections).
An upload interrupted half-way leaves no ``files`` document, so the blob does not exist; its
orphan chunks are removed before the same bytes are stored again.

Small files (one chunk, the common upload) take two writes, not four round trips: the chunk is
upserted (the same key always means the same bytes, so rewriting it is harmless) and the
``files`` document inserted, whose duplicate key means "already stored". Reading fetches the
chunks in one query and checks them against the key (the SHA-256), so a read needs no separate
``files`` lookup and can never hand out bytes other than those asked for (chunks of an upload
that died half-way, or damaged ones, read as "not stored").
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from kglab_ingestion.store.blob_file import check_key
from kglab_ingestion.store.port import BlobNotFoundError

_CHUNK_BYTES = 255 * 1024
#: Bytes read from the local file per write (local disk reads are short; no thread hop).
_READ_BYTES = 1024 * 1024


class GridFsBlobStore:
    def __init__(self, database: AsyncDatabase[Any], *, bucket_name: str = "blobs") -> None:
        self._database = database
        self._bucket_name = bucket_name
        self._bucket = AsyncGridFSBucket(database, bucket_name=bucket_name)

    async def ensure_indexes(self) -> None:
        # GridFS drivers create these lazily; doing it once up front keeps uploads simple.
        await self._database[f"{self._bucket_name}.chunks"].create_index(
            [("files_id", 1), ("n", 1)], unique=True
        )
        await self._database[f"{self._bucket_name}.files"].create_index(
            [("filename", 1), ("uploadDate", 1)]
        )

    async def put_file(self, sha256: str, path: Path) -> bool:
        key = check_key(sha256)
        size = path.stat().st_size
        if size <= _CHUNK_BYTES:
            return await self._put_small(key, path.read_bytes())
        if await self.exists(key):
            return False
        # Chunks of an earlier upload that died before its files document was written.
        await self._database[f"{self._bucket_name}.chunks"].delete_many({"files_id": key})
        stream = self._bucket.open_upload_stream_with_id(
            key, key, chunk_size_bytes=_CHUNK_BYTES, metadata={"sha256": key}
        )
        try:
            with path.open("rb") as source:
                while block := source.read(_READ_BYTES):
                    await stream.write(block)
            await stream.close()
        except FileExists:
            return False
        except BaseException:
            await stream.abort()
            raise
        return True

    async def _put_small(self, key: str, data: bytes) -> bool:
        """One chunk and its ``files`` document, as GridFS itself lays them out."""
        await self._database[f"{self._bucket_name}.chunks"].update_one(
            {"files_id": key, "n": 0},
            {"$set": {"data": Binary(data)}, "$setOnInsert": {"_id": ObjectId()}},
            upsert=True,
        )
        try:
            await self._database[f"{self._bucket_name}.files"].insert_one(
                {
                    "_id": key,
                    "length": len(data),
                    "chunkSize": _CHUNK_BYTES,
                    "uploadDate": datetime.now(UTC),
                    "filename": key,
                    "metadata": {"sha256": key},
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def exists(self, sha256: str) -> bool:
        found = await self._database[f"{self._bucket_name}.files"].find_one(
            {"_id": check_key(sha256)}, projection={"_id": 1}
        )
        return found is not None

    async def copy_to(self, sha256: str, destination: Path) -> None:
        key = check_key(sha256)
        digest = hashlib.sha256()
        found = False
        chunks = self._database[f"{self._bucket_name}.chunks"].find(
            {"files_id": key}, projection={"data": 1, "n": 1}, sort=[("n", 1)]
        )
        with destination.open("wb") as target:
            expected = 0
            async for chunk in chunks:
                if chunk["n"] != expected:
                    break
                found = True
                expected += 1
                data = bytes(chunk["data"])
                digest.update(data)
                target.write(data)
        if not found or digest.hexdigest() != key:
            # Nothing stored, or chunks of an upload that never finished (or bytes that are
            # not the ones asked for): there is no such blob.
            destination.unlink(missing_ok=True)
            raise BlobNotFoundError(sha256)

    async def delete(self, sha256: str) -> None:
        try:
            await self._bucket.delete(check_key(sha256))
        except NoFile:
            return

    async def ping(self) -> None:
        await self._database.command("ping")

    async def close(self) -> None:
        await self._database.client.close()
