"""Raw files in MongoDB GridFS (pymongo's async API), the file id being the SHA-256.

Works on MongoDB and on FerretDB 1.24 (GridFS is plain inserts and finds on two collections).
An upload interrupted half-way leaves no ``files`` document, so the blob does not exist; its
orphan chunks are removed before the same bytes are stored again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase

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

    async def exists(self, sha256: str) -> bool:
        found = await self._database[f"{self._bucket_name}.files"].find_one(
            {"_id": check_key(sha256)}, projection={"_id": 1}
        )
        return found is not None

    async def copy_to(self, sha256: str, destination: Path) -> None:
        try:
            stream = await self._bucket.open_download_stream(check_key(sha256))
        except NoFile as exc:
            raise BlobNotFoundError(sha256) from exc
        with destination.open("wb") as target:
            while block := await stream.readchunk():
                target.write(block)

    async def delete(self, sha256: str) -> None:
        try:
            await self._bucket.delete(check_key(sha256))
        except NoFile:
            return

    async def ping(self) -> None:
        await self._database.command("ping")

    async def close(self) -> None:
        await self._database.client.close()
