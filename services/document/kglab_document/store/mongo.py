"""``DocumentStore`` on MongoDB through PyMongo's native async API.

Plain finds with equality, range and ``$or`` filters served by compound indexes, and
``update_one`` upserts with ``$setOnInsert``. No transactions: idempotency comes from upserts
keyed by ids (chunks first, then the document, so a visible document has its chunks).

A listing is one query: the owner's stored documents, the filters as equalities and ranges, in
the sort's order with the id as tie-break, ``limit + 1`` rows. Each sort has a compound index
that starts with the equalities and ends with the sort key and id, so the server walks the
index from the cursor's position and reads about a page of documents (``explain`` shows an
index scan and no sort stage; adr/0007).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from kglab_document.domain import (
    REMOVABLE_PARTS,
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

MongoDoc = dict[str, Any]

# Equalities first (owner, status, then the filter's field), the sort key and id last: every
# listing walks one index in sort order from its cursor (status in the index keeps deletion
# tombstones out of the walk).
_DOCUMENT_INDEXES = [
    IndexModel(
        [
            ("owner_id", ASCENDING),
            ("status", ASCENDING),
            ("created_at", ASCENDING),
            ("_id", ASCENDING),
        ],
        name="owner_status_created",
    ),
    IndexModel(
        [
            ("owner_id", ASCENDING),
            ("status", ASCENDING),
            ("media_type", ASCENDING),
            ("created_at", ASCENDING),
            ("_id", ASCENDING),
        ],
        name="owner_status_media_type_created",
    ),
    IndexModel(
        [
            ("owner_id", ASCENDING),
            ("status", ASCENDING),
            ("source", ASCENDING),
            ("created_at", ASCENDING),
            ("_id", ASCENDING),
        ],
        name="owner_status_source_created",
    ),
    IndexModel(
        [("owner_id", ASCENDING), ("status", ASCENDING), ("title", ASCENDING), ("_id", ASCENDING)],
        name="owner_status_title",
    ),
]
#: An outbox row whose document is still stored this long after its request: the request
#: died before deleting (see ``delete``); the row is dropped.
ABANDONED_DELETION = timedelta(minutes=1)
_CHUNK_INDEXES = [
    IndexModel(
        [("owner_id", ASCENDING), ("document_id", ASCENDING), ("position", ASCENDING)],
        name="owner_document_position",
        unique=True,
    ),
]
#: Indexes of earlier layouts (adr/0013's day and title buckets, and the listing indexes
#: without ``status``), dropped at start-up: nothing queries them any more.
_RETIRED_INDEXES = (
    "owner_created",
    "owner_media_type",
    "owner_title",
    "owner_source",
    "owner_day_created",
    "owner_initial_title",
)
#: Collections of adr/0013's day buckets (markers and their one-off migration), dropped too.
_RETIRED_COLLECTIONS = ("document_days", "migrations")
_INDEX_NOT_FOUND = 27


class MongoDocumentStore:
    """The client is created (and closed) by the composition root; this takes a database."""

    def __init__(self, database: AsyncDatabase[MongoDoc]) -> None:
        self._db = database
        self._documents: AsyncCollection[MongoDoc] = database["documents"]
        self._chunks: AsyncCollection[MongoDoc] = database["chunks"]
        # One insert-only row per removed part: two parts reported at once cannot overwrite
        # each other, and the first report's time is kept by the duplicate key.
        self._removed_parts: AsyncCollection[MongoDoc] = database["removed_parts"]
        self._published: AsyncCollection[MongoDoc] = database["stored_events_published"]
        #: Outbox of ``document.deleted``: one row per deletion the bus has not confirmed.
        self._to_announce: AsyncCollection[MongoDoc] = database["deletions_to_announce"]
        self._rebuilds: AsyncCollection[MongoDoc] = database["rebuilds"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries use (a no-op when they exist) and drop those of
        earlier layouts."""
        for collection, indexes in (
            (self._documents, _DOCUMENT_INDEXES),
            (self._chunks, _CHUNK_INDEXES),
        ):
            await collection.create_indexes(list(indexes))
        for name in _RETIRED_INDEXES:
            try:
                await self._documents.drop_index(name)
            except OperationFailure as exc:
                if exc.code != _INDEX_NOT_FOUND:
                    raise
        for retired in _RETIRED_COLLECTIONS:
            await self._db.drop_collection(retired)

    async def save_extracted(self, document: Document, chunks: Sequence[Chunk]) -> SaveResult:
        existing = await self._documents.find_one({"_id": document.id})
        if existing is not None:
            # Stored, or a deletion tombstone: a redelivery must neither change nor resurrect it.
            return SaveResult(created=False, document=_document_from_mongo(existing))
        if chunks:
            await self._chunks.bulk_write(
                [
                    UpdateOne(
                        {"_id": _chunk_key(chunk)},
                        {"$setOnInsert": _chunk_to_mongo(chunk)},
                        upsert=True,
                    )
                    for chunk in chunks
                ],
                ordered=False,
            )
        result = await self._documents.update_one(
            {"_id": document.id},
            {"$setOnInsert": _document_to_mongo(document)},
            upsert=True,
        )
        if result.upserted_id is not None:
            return SaveResult(created=True, document=document)
        # A concurrent delivery of the same event stored it first.
        stored = await self._documents.find_one({"_id": document.id})
        return SaveResult(
            created=False, document=document if stored is None else _document_from_mongo(stored)
        )

    async def mark_stored_event_published(self, owner_id: str, document_id: str) -> None:
        # A marker row, not a $set on the document: see ``_removed_parts``. A lost update here
        # could otherwise write back a stale status over a concurrent delete.
        try:
            await self._published.insert_one({"_id": document_id, "owner_id": owner_id})
        except DuplicateKeyError:
            pass

    async def set_claim(self, owner_id: str, document_id: str, digest: str) -> None:
        # Only this field: a concurrent delete's status is never written back.
        await self._documents.update_one(
            {"_id": document_id, "owner_id": owner_id}, {"$set": {"claim_digest": digest}}
        )

    async def is_stored_event_published(self, owner_id: str, document_id: str) -> bool:
        marker = await self._published.find_one({"_id": document_id})
        return marker is not None and marker.get("owner_id") == owner_id

    async def list_documents(
        self,
        owner_id: str,
        *,
        filters: DocumentFilters,
        sort: SortOrder,
        limit: int,
        after: DocumentCursor | None = None,
    ) -> Page[Document]:
        query, order = list_query(owner_id, filters=filters, sort=sort, after=after)
        cursor = self._documents.find(query).sort(order).limit(limit + 1)
        return document_page([_document_from_mongo(raw) async for raw in cursor], limit, sort)

    async def get(self, owner_id: str, document_id: str) -> Document | None:
        raw = await self._documents.find_one({"_id": document_id, "owner_id": owner_id})
        if raw is None:
            return None
        document = _document_from_mongo(raw)
        if document.status is not DocumentStatus.DELETING:
            return document
        removed: dict[str, datetime] = {}
        for part in REMOVABLE_PARTS:
            row = await self._removed_parts.find_one({"_id": f"{document_id}:{part}"})
            if row is not None:
                removed[part] = utc_millis(row["removed_at"])
        return replace(document, removed_parts=removed)

    async def chunks(
        self,
        owner_id: str,
        document_id: str,
        *,
        limit: int,
        after: ChunkCursor | None = None,
    ) -> Page[Chunk]:
        query: MongoDoc = {"owner_id": owner_id, "document_id": document_id}
        if after is not None:
            query["position"] = {"$gt": after.position}
        cursor = self._chunks.find(query).sort([("position", ASCENDING)]).limit(limit + 1)
        rows = [_chunk_from_mongo(raw) async for raw in cursor]
        return chunk_page(rows, limit)

    async def delete(self, owner_id: str, document_id: str, *, at: datetime) -> Document | None:
        owned = {"_id": document_id, "owner_id": owner_id}
        # The outbox row first (this store uses no transactions, so the two cannot commit
        # together): a crash between the two leaves a row whose document is still stored,
        # which the relay drops after a while, never a deletion that nobody announces.
        if await self._documents.find_one(owned, projection={"_id": 1}) is not None:
            await self._to_announce.update_one(
                {"_id": document_id},
                {"$setOnInsert": {"owner_id": owner_id, "requested_at": utc_millis(at)}},
                upsert=True,
            )
        # Only the first request sets the time: the filter on status makes a repeat a no-op.
        await self._documents.update_one(
            {**owned, "status": DocumentStatus.STORED.value},
            {
                "$set": {
                    "status": DocumentStatus.DELETING.value,
                    "deletion_requested_at": utc_millis(at),
                }
            },
        )
        document = await self.get(owner_id, document_id)
        if document is None:
            return None
        await self._chunks.delete_many({"owner_id": owner_id, "document_id": document_id})
        return document

    async def unannounced_deletions(self, limit: int) -> list[Document]:
        cursor = self._to_announce.find({}).sort([("requested_at", ASCENDING)]).limit(limit)
        rows = [row async for row in cursor]
        owed: list[Document] = []
        abandoned_before = utc_millis(datetime.now(UTC) - ABANDONED_DELETION)
        for row in rows:
            document = await self.get(str(row["owner_id"]), str(row["_id"]))
            if document is not None and document.status is DocumentStatus.DELETING:
                owed.append(document)
            elif document is None or _aware(row["requested_at"]) < abandoned_before:
                # Its request died between the row and the deletion: nothing was deleted.
                await self._to_announce.delete_one({"_id": row["_id"]})
        return owed

    async def mark_deletion_announced(self, owner_id: str, document_id: str) -> None:
        await self._to_announce.delete_one({"_id": document_id, "owner_id": owner_id})

    async def mark_part_removed(
        self, owner_id: str, document_id: str, part: str, *, at: datetime
    ) -> bool:
        if await self.get(owner_id, document_id) is None:
            return False
        try:
            # The first report wins; a redelivered one collides on _id and changes nothing.
            await self._removed_parts.insert_one(
                {
                    "_id": f"{document_id}:{part}",
                    "owner_id": owner_id,
                    "document_id": document_id,
                    "part": part,
                    "removed_at": utc_millis(at),
                }
            )
        except DuplicateKeyError:
            pass
        return True

    async def stored_documents(
        self, *, owner_id: str | None, after: str | None, limit: int
    ) -> list[Document]:
        query: MongoDoc = {"status": DocumentStatus.STORED.value}
        if owner_id is not None:
            query["owner_id"] = owner_id
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._documents.find(query).sort([("_id", ASCENDING)]).limit(limit)
        return [_document_from_mongo(raw) async for raw in cursor]

    async def count_stored(self, owner_id: str | None) -> int:
        query: MongoDoc = {"status": DocumentStatus.STORED.value}
        if owner_id is not None:
            query["owner_id"] = owner_id
        return int(await self._documents.count_documents(query))

    async def save_rebuild(self, rebuild: Rebuild) -> None:
        row = _rebuild_to_mongo(rebuild)
        await self._rebuilds.replace_one({"_id": rebuild.id}, row, upsert=True)

    async def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        raw = await self._rebuilds.find_one({"_id": rebuild_id})
        return None if raw is None else _rebuild_from_mongo(raw)

    async def running_rebuilds(self) -> list[Rebuild]:
        cursor = self._rebuilds.find({"status": RebuildStatus.RUNNING.value})
        return [_rebuild_from_mongo(raw) async for raw in cursor]

    async def ping(self) -> None:
        await self._db.command("ping")


def list_query(
    owner_id: str,
    *,
    filters: DocumentFilters,
    sort: SortOrder,
    after: DocumentCursor | None = None,
) -> tuple[MongoDoc, list[tuple[str, int]]]:
    """The filter and sort of a listing page: the equalities and the date range, then the
    cursor as a bound on the sort key (``$lte``/``$gte``, so the index walk starts at the
    cursor) with the id breaking ties among documents sharing that key (``$or``)."""
    query: MongoDoc = {"owner_id": owner_id, "status": DocumentStatus.STORED.value}
    if filters.media_type is not None:
        query["media_type"] = filters.media_type
    if filters.source is not None:
        query["source"] = filters.source
    created: MongoDoc = {}
    if filters.created_from is not None:
        created["$gte"] = filters.created_from
    if filters.created_to is not None:
        created["$lt"] = filters.created_to
    if created:
        query["created_at"] = created
    field, direction = _SORTS[sort]
    if after is not None:
        descending = direction == DESCENDING
        # Merged into the date range when there is one (a tighter bound of the same kind wins).
        bound: MongoDoc = dict(query.get(field, {}))
        if descending:
            bound["$lte"] = after.key
        else:
            bound["$gte"] = max(bound.get("$gte", after.key), after.key)
        query[field] = bound
        op = "$lt" if descending else "$gt"
        query["$or"] = [{field: {op: after.key}}, {"_id": {op: after.id}}]
    return query, [(field, direction), ("_id", direction)]


_SORTS: dict[SortOrder, tuple[str, int]] = {
    SortOrder.NEWEST: ("created_at", DESCENDING),
    SortOrder.OLDEST: ("created_at", ASCENDING),
    SortOrder.TITLE: ("title", ASCENDING),
}


def _chunk_key(chunk: Chunk) -> str:
    # Chunk ids come from ingestion; scoping them by document keeps two documents apart.
    return f"{chunk.document_id}:{chunk.position}"


def _document_to_mongo(document: Document) -> MongoDoc:
    return {
        "owner_id": document.owner_id,
        "job_id": document.job_id,
        "title": document.title,
        "media_type": document.media_type,
        "source": document.source,
        "created_at": utc_millis(document.created_at),
        "chunk_count": document.chunk_count,
        "metadata": document.metadata,
        "provenance": document.provenance,
        "status": document.status.value,
        "deletion_requested_at": document.deletion_requested_at,
        "claim_digest": document.claim_digest,
    }


def _document_from_mongo(raw: Mapping[str, Any]) -> Document:
    return Document(
        id=str(raw["_id"]),
        owner_id=raw["owner_id"],
        job_id=raw["job_id"],
        title=raw["title"],
        media_type=raw["media_type"],
        source=raw["source"],
        created_at=utc_millis(raw["created_at"]),
        chunk_count=int(raw["chunk_count"]),
        metadata=dict(raw.get("metadata") or {}),
        provenance=dict(raw.get("provenance") or {}),
        status=DocumentStatus(raw["status"]),
        deletion_requested_at=(
            utc_millis(raw["deletion_requested_at"]) if raw.get("deletion_requested_at") else None
        ),
        claim_digest=raw.get("claim_digest"),
    )


def _chunk_to_mongo(chunk: Chunk) -> MongoDoc:
    return {
        "owner_id": chunk.owner_id,
        "document_id": chunk.document_id,
        "chunk_id": chunk.chunk_id,
        "position": chunk.position,
        "text": chunk.text,
        "heading": chunk.heading,
    }


def _chunk_from_mongo(raw: Mapping[str, Any]) -> Chunk:
    return Chunk(
        document_id=raw["document_id"],
        owner_id=raw["owner_id"],
        chunk_id=raw["chunk_id"],
        position=int(raw["position"]),
        text=raw["text"],
        heading=raw.get("heading"),
    )


def _rebuild_to_mongo(rebuild: Rebuild) -> MongoDoc:
    return {
        "owner_id": rebuild.owner_id,
        "status": rebuild.status.value,
        "total": rebuild.total,
        "published": rebuild.published,
        "checkpoint": rebuild.checkpoint,
        "started_at": utc_millis(rebuild.started_at),
        "updated_at": utc_millis(rebuild.updated_at),
        "finished_at": utc_millis(rebuild.finished_at) if rebuild.finished_at else None,
        "error": rebuild.error,
    }


def _rebuild_from_mongo(raw: Mapping[str, Any]) -> Rebuild:
    return Rebuild(
        id=str(raw["_id"]),
        owner_id=raw.get("owner_id"),
        status=RebuildStatus(raw["status"]),
        total=int(raw["total"]),
        published=int(raw["published"]),
        checkpoint=raw.get("checkpoint"),
        started_at=utc_millis(raw["started_at"]),
        updated_at=utc_millis(raw["updated_at"]),
        finished_at=utc_millis(raw["finished_at"]) if raw.get("finished_at") else None,
        error=raw.get("error"),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
