"""Raw files in the jobs database (PostgreSQL; SQLite works too): one row per stored file and
its bytes in 1 MB chunks, addressed by SHA-256 (adr/0012-blobs-in-postgresql.md).

A file's chunks and its row commit in one transaction, so a stored file is always whole and
an interrupted upload leaves nothing behind. Files are read and written one chunk at a time:
a 50 MB file never sits in memory. Two uploads of the same bytes at once are harmless: the
second one's inserts meet the first one's keys and do nothing.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kglab_ingestion.store.blob_file import check_key
from kglab_ingestion.store.port import BlobNotFoundError
from kglab_ingestion.store.tables import blob_chunks, blobs

#: Bytes per stored chunk (and per read of the local file).
CHUNK_BYTES = 1024 * 1024


class SqlBlobStore:
    """``BlobStore`` on the jobs database; shares (and does not close) its engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # A one-statement read needs no BEGIN/ROLLBACK around it (see SqlJobStore).
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def put_file(self, sha256: str, path: Path) -> bool:
        key = check_key(sha256)
        if path.stat().st_size > CHUNK_BYTES and await self.exists(key):
            return False  # do not send megabytes only to have them ignored
        async with self._engine.begin() as connection:
            size = 0
            with path.open("rb") as source:
                number = 0
                while True:
                    block = source.read(CHUNK_BYTES)
                    if not block and number:
                        break
                    await self._put_chunk(connection, key, number, block)
                    size += len(block)
                    number += 1
                    if len(block) < CHUNK_BYTES:
                        break
            stored = await connection.execute(
                self._insert(blobs)
                .values(sha256=key, size_bytes=size, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["sha256"])
                .returning(blobs.c.sha256)
            )
            return stored.first() is not None

    async def _put_chunk(
        self, connection: AsyncConnection, key: str, number: int, block: bytes
    ) -> None:
        await connection.execute(
            self._insert(blob_chunks)
            .values(sha256=key, n=number, data=block)
            .on_conflict_do_nothing(index_elements=["sha256", "n"])
        )

    async def exists(self, sha256: str) -> bool:
        query = select(blobs.c.sha256).where(blobs.c.sha256 == check_key(sha256))
        async with self._single.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def copy_to(self, sha256: str, destination: Path) -> None:
        key = check_key(sha256)
        digest = hashlib.sha256()
        found = False
        query = (
            select(blob_chunks.c.data)
            .where(blob_chunks.c.sha256 == key)
            .order_by(blob_chunks.c.n)
            .execution_options(yield_per=2)
        )
        async with self._engine.connect() as connection:
            result = await connection.stream(query)
            with destination.open("wb") as target:
                async for row in result:
                    found = True
                    data = bytes(row.data)
                    digest.update(data)
                    target.write(data)
        if not found or digest.hexdigest() != key:
            destination.unlink(missing_ok=True)
            raise BlobNotFoundError(sha256)

    async def delete(self, sha256: str) -> None:
        key = check_key(sha256)
        async with self._engine.begin() as connection:
            await connection.execute(delete(blobs).where(blobs.c.sha256 == key))
            await connection.execute(delete(blob_chunks).where(blob_chunks.c.sha256 == key))

    async def ping(self) -> None:
        async with self._single.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        return None
