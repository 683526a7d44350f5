"""Raw files in MongoDB GridFS (pymongo's async API), the file id being the SHA-256.

GridFS writes the ``files`` document after the last chunk, so a file whose upload died half-way
does not exist; its orphan chunks are removed before the same bytes are stored again. A read
checks the bytes against their key, so it never hands out other bytes than those asked for
(damaged chunks read as "not stored").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import CorruptGridFile, FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from kglab_ingestion.store.blob_file import check_key
from kglab_ingestion.store.port import BlobNotFoundError

_CHUNK_BYTES = 255 * 1024
#: Bytes read from the local file, or from GridFS, at a time.
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
            return False  # the same bytes, stored by a concurrent upload
        except BaseException:
            await stream.abort()
            raise
        return True

    async def exists(self, sha256: str) -> bool:
        found = await self._database[f"{self._bucket_name}.files"].find_one(
            {"_id": check_key(sha256)}, projection={"_id": 1}
        )
        return found is not None

    async def copy_to(self, sha256: str, destination: Path) -> None:
        key = check_key(sha256)
        digest = hashlib.sha256()
        try:
            stream = await self._bucket.open_download_stream(key)
            with destination.open("wb") as target:
                while data := await stream.read(_READ_BYTES):
                    digest.update(data)
                    target.write(data)
        except (NoFile, CorruptGridFile) as exc:
            destination.unlink(missing_ok=True)
            raise BlobNotFoundError(sha256) from exc
        if digest.hexdigest() != key:
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
