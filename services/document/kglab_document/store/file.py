"""The embedded ``DocumentStore`` for ``make dev``: one SQLite file under the data directory.

SQLite gives crash-safe writes (WAL) and real indexes with nothing to install; the keyset queries
mirror the Mongo adapter's so both pass one contract suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from kglab_document.domain import (
    Chunk,
    ChunkCursor,
    Document,
    DocumentCursor,
    DocumentFilters,
    DocumentStatus,
    Rebuild,
    RebuildStatus,
    SaveResult,
    SortOrder,
    chunk_page,
    document_page,
    utc_millis,
)
from kglab_shared.pages import Page

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    title TEXT NOT NULL,
    media_type TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    provenance TEXT NOT NULL,
    status TEXT NOT NULL,
    stored_event_published INTEGER NOT NULL DEFAULT 0,
    deletion_requested_at TEXT,
    removed_parts TEXT NOT NULL DEFAULT '{}',
    claim_digest TEXT
);
CREATE INDEX IF NOT EXISTS documents_owner_created
    ON documents (owner_id, status, created_at, id);
CREATE INDEX IF NOT EXISTS documents_owner_media_type
    ON documents (owner_id, status, media_type, created_at, id);
CREATE INDEX IF NOT EXISTS documents_owner_title ON documents (owner_id, status, title, id);
CREATE INDEX IF NOT EXISTS documents_owner_source ON documents (owner_id, source);
CREATE TABLE IF NOT EXISTS deletions_to_announce (
    document_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    owner_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    chunk_id TEXT NOT NULL,
    text TEXT NOT NULL,
    heading TEXT,
    PRIMARY KEY (owner_id, document_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rebuilds (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
"""

_COLUMNS = (
    "id, owner_id, job_id, title, media_type, source, created_at, chunk_count, metadata, "
    "provenance, status, stored_event_published, deletion_requested_at, removed_parts, "
    "claim_digest"
)
_SORTS: dict[SortOrder, tuple[str, str]] = {
    SortOrder.NEWEST: ("created_at", "DESC"),
    SortOrder.OLDEST: ("created_at", "ASC"),
    SortOrder.TITLE: ("title", "ASC"),
}


class SqliteDocumentStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # One connection: writes that span statements take the lock so they do not interleave.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDocumentStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path)
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.executescript(_SCHEMA)
            async with connection.execute("PRAGMA table_info(documents)") as cursor:
                columns = {row[1] async for row in cursor}
            if "claim_digest" not in columns:  # a data directory from before adr/0020
                await connection.execute("ALTER TABLE documents ADD COLUMN claim_digest TEXT")
            await connection.commit()
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def close(self) -> None:
        await self._db.close()

    async def save_extracted(self, document: Document, chunks: Sequence[Chunk]) -> SaveResult:
        async with self._write_lock:
            try:
                cursor = await self._db.execute(
                    f"INSERT INTO documents ({_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    _document_row(document),
                )
                created = cursor.rowcount == 1
                if created:
                    await self._db.executemany(
                        "INSERT OR IGNORE INTO chunks "
                        "(owner_id, document_id, position, chunk_id, text, heading) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (c.owner_id, c.document_id, c.position, c.chunk_id, c.text, c.heading)
                            for c in chunks
                        ],
                    )
                await self._db.commit()
            except BaseException:
                await self._db.rollback()
                raise
        if created:
            return SaveResult(created=True, document=document)
        stored = await self._get_any(document.id)
        return SaveResult(created=False, document=stored or document)

    async def mark_stored_event_published(self, owner_id: str, document_id: str) -> None:
        async with self._write_lock:
            await self._db.execute(
                "UPDATE documents SET stored_event_published = 1 WHERE id = ? AND owner_id = ?",
                (document_id, owner_id),
            )
            await self._db.commit()

    async def set_claim(self, owner_id: str, document_id: str, digest: str) -> None:
        async with self._write_lock:
            await self._db.execute(
                "UPDATE documents SET claim_digest = ? WHERE id = ? AND owner_id = ?",
                (digest, document_id, owner_id),
            )
            await self._db.commit()

    async def is_stored_event_published(self, owner_id: str, document_id: str) -> bool:
        async with self._db.execute(
            "SELECT stored_event_published FROM documents WHERE id = ? AND owner_id = ?",
            (document_id, owner_id),
        ) as cursor:
            row = await cursor.fetchone()
        return row is not None and bool(row[0])

    async def list_documents(
        self,
        owner_id: str,
        *,
        filters: DocumentFilters,
        sort: SortOrder,
        limit: int,
        after: DocumentCursor | None = None,
    ) -> Page[Document]:
        where = ["owner_id = ?", "status = ?"]
        params: list[Any] = [owner_id, DocumentStatus.STORED.value]
        if filters.media_type is not None:
            where.append("media_type = ?")
            params.append(filters.media_type)
        if filters.source is not None:
            where.append("source = ?")
            params.append(filters.source)
        if filters.created_from is not None:
            where.append("created_at >= ?")
            params.append(_iso(filters.created_from))
        if filters.created_to is not None:
            where.append("created_at < ?")
            params.append(_iso(filters.created_to))
        column, direction = _SORTS[sort]
        if after is not None:
            op = "<" if direction == "DESC" else ">"
            key = after.key if isinstance(after.key, str) else _iso(after.key)
            where.append(f"({column}, id) {op} (?, ?)")
            params.extend([key, after.id])
        params.append(limit + 1)
        sql = (
            f"SELECT {_COLUMNS} FROM documents WHERE {' AND '.join(where)} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT ?"
        )
        async with self._db.execute(sql, params) as cursor:
            rows = [_document_from_row(row) async for row in cursor]
        return document_page(rows, limit, sort)

    async def get(self, owner_id: str, document_id: str) -> Document | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE id = ? AND owner_id = ?",
            (document_id, owner_id),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _document_from_row(row)

    async def chunks(
        self,
        owner_id: str,
        document_id: str,
        *,
        limit: int,
        after: ChunkCursor | None = None,
    ) -> Page[Chunk]:
        async with self._db.execute(
            "SELECT owner_id, document_id, position, chunk_id, text, heading FROM chunks "
            "WHERE owner_id = ? AND document_id = ? AND position > ? "
            "ORDER BY position LIMIT ?",
            (owner_id, document_id, -1 if after is None else after.position, limit + 1),
        ) as cursor:
            rows = [
                Chunk(
                    owner_id=row[0],
                    document_id=row[1],
                    position=row[2],
                    chunk_id=row[3],
                    text=row[4],
                    heading=row[5],
                )
                async for row in cursor
            ]
        return chunk_page(rows, limit)

    async def delete(self, owner_id: str, document_id: str, *, at: datetime) -> Document | None:
        async with self._write_lock:
            try:
                await self._db.execute(
                    "UPDATE documents SET status = ?, deletion_requested_at = ? "
                    "WHERE id = ? AND owner_id = ? AND status = ?",
                    (
                        DocumentStatus.DELETING.value,
                        _iso(at),
                        document_id,
                        owner_id,
                        DocumentStatus.STORED.value,
                    ),
                )
                await self._db.execute(
                    "DELETE FROM chunks WHERE owner_id = ? AND document_id = ?",
                    (owner_id, document_id),
                )
                # The outbox entry commits with the deletion (same transaction).
                await self._db.execute(
                    "INSERT OR IGNORE INTO deletions_to_announce (document_id, owner_id, "
                    "requested_at) SELECT id, owner_id, ? FROM documents "
                    "WHERE id = ? AND owner_id = ?",
                    (_iso(at), document_id, owner_id),
                )
                await self._db.commit()
            except BaseException:
                await self._db.rollback()
                raise
        return await self.get(owner_id, document_id)

    async def unannounced_deletions(self, limit: int) -> list[Document]:
        async with self._db.execute(
            "SELECT owner_id, document_id FROM deletions_to_announce "
            "ORDER BY requested_at, document_id LIMIT ?",
            (limit,),
        ) as cursor:
            keys = [(str(row[0]), str(row[1])) async for row in cursor]
        found = [await self.get(owner_id, document_id) for owner_id, document_id in keys]
        return [document for document in found if document is not None]

    async def mark_deletion_announced(self, owner_id: str, document_id: str) -> None:
        async with self._write_lock:
            await self._db.execute(
                "DELETE FROM deletions_to_announce WHERE document_id = ? AND owner_id = ?",
                (document_id, owner_id),
            )
            await self._db.commit()

    async def mark_part_removed(
        self, owner_id: str, document_id: str, part: str, *, at: datetime
    ) -> bool:
        async with self._write_lock:
            document = await self.get(owner_id, document_id)
            if document is None:
                return False
            if part not in document.removed_parts:
                removed = {p: _iso(t) for p, t in document.removed_parts.items()}
                removed[part] = _iso(at)
                await self._db.execute(
                    "UPDATE documents SET removed_parts = ? WHERE id = ?",
                    (json.dumps(removed), document_id),
                )
                await self._db.commit()
            return True

    async def stored_documents(
        self, *, owner_id: str | None, after: str | None, limit: int
    ) -> list[Document]:
        sql = f"SELECT {_COLUMNS} FROM documents WHERE status = ?"
        params: list[Any] = [DocumentStatus.STORED.value]
        if owner_id is not None:
            sql += " AND owner_id = ?"
            params.append(owner_id)
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        async with self._db.execute(f"{sql} ORDER BY id LIMIT ?", [*params, limit]) as cursor:
            return [_document_from_row(row) async for row in cursor]

    async def count_stored(self, owner_id: str | None) -> int:
        sql = "SELECT count(*) FROM documents WHERE status = ?"
        params: list[Any] = [DocumentStatus.STORED.value]
        if owner_id is not None:
            sql += " AND owner_id = ?"
            params.append(owner_id)
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def save_rebuild(self, rebuild: Rebuild) -> None:
        record = {
            "owner_id": rebuild.owner_id,
            "total": rebuild.total,
            "published": rebuild.published,
            "checkpoint": rebuild.checkpoint,
            "started_at": _iso(rebuild.started_at),
            "updated_at": _iso(rebuild.updated_at),
            "finished_at": _iso(rebuild.finished_at) if rebuild.finished_at else None,
            "error": rebuild.error,
        }
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO rebuilds (id, status, record) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record",
                (rebuild.id, rebuild.status.value, json.dumps(record)),
            )
            await self._db.commit()

    async def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        async with self._db.execute(
            "SELECT id, status, record FROM rebuilds WHERE id = ?", (rebuild_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _rebuild_from_row(row)

    async def running_rebuilds(self) -> list[Rebuild]:
        async with self._db.execute(
            "SELECT id, status, record FROM rebuilds WHERE status = ?",
            (RebuildStatus.RUNNING.value,),
        ) as cursor:
            return [_rebuild_from_row(row) async for row in cursor]

    async def ping(self) -> None:
        async with self._db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    async def _get_any(self, document_id: str) -> Document | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE id = ?", (document_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _document_from_row(row)


def _iso(moment: datetime) -> str:
    # Fixed width and UTC, so text order is time order.
    return utc_millis(moment).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _document_row(document: Document) -> tuple[Any, ...]:
    return (
        document.id,
        document.owner_id,
        document.job_id,
        document.title,
        document.media_type,
        document.source,
        _iso(document.created_at),
        document.chunk_count,
        json.dumps(document.metadata),
        json.dumps(document.provenance),
        document.status.value,
        0,  # stored_event_published: set only by mark_stored_event_published
        _iso(document.deletion_requested_at) if document.deletion_requested_at else None,
        json.dumps({p: _iso(t) for p, t in document.removed_parts.items()}),
        document.claim_digest,
    )


def _document_from_row(row: Sequence[Any]) -> Document:
    return Document(
        id=row[0],
        owner_id=row[1],
        job_id=row[2],
        title=row[3],
        media_type=row[4],
        source=row[5],
        created_at=_parse(row[6]),
        chunk_count=int(row[7]),
        metadata=json.loads(row[8]),
        provenance=json.loads(row[9]),
        status=DocumentStatus(row[10]),
        deletion_requested_at=_parse(row[12]) if row[12] else None,
        removed_parts={p: _parse(t) for p, t in json.loads(row[13]).items()},
        claim_digest=row[14],
    )


def _rebuild_from_row(row: Sequence[Any]) -> Rebuild:
    record = json.loads(row[2])
    return Rebuild(
        id=str(row[0]),
        owner_id=record["owner_id"],
        status=RebuildStatus(row[1]),
        total=int(record["total"]),
        published=int(record["published"]),
        checkpoint=record["checkpoint"],
        started_at=_parse(record["started_at"]),
        updated_at=_parse(record["updated_at"]),
        finished_at=_parse(record["finished_at"]) if record["finished_at"] else None,
        error=record["error"],
    )
