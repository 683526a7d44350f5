"""``DocumentStore`` on MongoDB (or FerretDB 1.x) through PyMongo's native async API.

Only what both servers support: plain finds with equality, range and ``$or`` filters, compound
indexes, ``update_one`` upserts with ``$setOnInsert``. No transactions: idempotency comes from
upserts keyed by ids (chunks first, then the document, so a visible document has its chunks).

Query shapes follow what FerretDB 1.x hands to its backend (adr/0011): a get is ``{_id}`` alone
(the only filter its SQLite handler pushes down), and listings keep every equality at the top
level (its PostgreSQL handler pushes those down, and nothing nested under ``$and``/``$or``).

Listings walk **buckets** (adr/0013): FerretDB 1.x decodes, filters and sorts in Go every row
its pushed-down equalities let through (about 0.15-0.3 ms each), so a listing that selects on
the owner alone reads all of the owner's documents. Each document carries its UTC ``day`` and
its title's first character (``initial``); insert-only markers say which months, days (also per
media type) and initials hold an owner's documents. A page reads the markers, then one bucket
at a time with ``day`` or ``initial`` as an equality, in sort order, until the page is full.
After ``day_walk_limit`` buckets, or sooner when the buckets walked show that filling the page
would take more, the rest of the page comes from one query bounded to the buckets not yet
walked (the single-query shape), so sparse listings cost at most that query plus a few small
ones. The source filter uses the single query.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from kglab_document.domain import (
    REMOVABLE_PARTS,
    Chunk,
    ChunkCursor,
    Document,
    DocumentCursor,
    DocumentFilters,
    DocumentStatus,
    Page,
    SaveResult,
    SortOrder,
    chunk_page,
    document_page,
    utc_millis,
)

MongoDoc = dict[str, Any]

_DOCUMENT_INDEXES = [
    IndexModel(
        [("owner_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
        name="owner_created",
    ),
    IndexModel(
        [("owner_id", ASCENDING), ("media_type", ASCENDING), ("created_at", ASCENDING)],
        name="owner_media_type",
    ),
    IndexModel(
        [("owner_id", ASCENDING), ("title", ASCENDING), ("_id", ASCENDING)], name="owner_title"
    ),
    IndexModel([("owner_id", ASCENDING), ("source", ASCENDING)], name="owner_source"),
    IndexModel(
        [("owner_id", ASCENDING), ("day", ASCENDING), ("created_at", ASCENDING)],
        name="owner_day_created",
    ),
    IndexModel(
        [("owner_id", ASCENDING), ("initial", ASCENDING), ("title", ASCENDING)],
        name="owner_initial_title",
    ),
]
_DAY_INDEXES = [
    IndexModel(
        [
            ("owner_id", ASCENDING),
            ("kind", ASCENDING),
            ("media_type", ASCENDING),
            ("month", ASCENDING),
        ],
        name="owner_kind_media_type_month",
    ),
]
#: Day buckets a page reads one by one before one bounded query serves the rest of it.
DAY_WALK_LIMIT = 16
_DAY_MIGRATION = "document_buckets_by_month_and_initial"
#: Marker ids this process knows are written (a bulk ingestion writes the same few again).
_MARKED_CACHE = 10_000
#: An outbox row whose document is still stored this long after its request: the request
#: died before deleting (see ``delete``); the row is dropped.
ABANDONED_DELETION = timedelta(minutes=1)
_DUPLICATE_KEY = 11000
_CHUNK_INDEXES = [
    IndexModel(
        [("owner_id", ASCENDING), ("document_id", ASCENDING), ("position", ASCENDING)],
        name="owner_document_position",
        unique=True,
    ),
]


class MongoDocumentStore:
    """The client is created (and closed) by the composition root; this takes a database."""

    def __init__(
        self, database: AsyncDatabase[MongoDoc], *, day_walk_limit: int = DAY_WALK_LIMIT
    ) -> None:
        self._db = database
        #: 0 turns day buckets off: every listing is one query (what MongoDB serves best).
        self._day_walk_limit = day_walk_limit
        self._documents: AsyncCollection[MongoDoc] = database["documents"]
        self._chunks: AsyncCollection[MongoDoc] = database["chunks"]
        # One insert-only row per removed part: FerretDB 1.x applies an update as a
        # read-modify-write of the whole document, so two parts reported at once as $sets on
        # the document itself could lose one. Inserts of distinct _ids cannot.
        self._removed_parts: AsyncCollection[MongoDoc] = database["removed_parts"]
        self._published: AsyncCollection[MongoDoc] = database["stored_events_published"]
        #: Outbox of ``document.deleted``: one row per deletion the bus has not confirmed.
        self._to_announce: AsyncCollection[MongoDoc] = database["deletions_to_announce"]
        # Insert-only markers of the days that hold an owner's documents (see the module doc).
        self._days: AsyncCollection[MongoDoc] = database["document_days"]
        self._migrations: AsyncCollection[MongoDoc] = database["migrations"]
        self._marked: set[str] = set()

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries use (a no-op when they exist), and give documents
        stored before day buckets their ``day`` and markers, once per database."""
        for collection, indexes in (
            (self._documents, _DOCUMENT_INDEXES),
            (self._chunks, _CHUNK_INDEXES),
            (self._days, _DAY_INDEXES),
        ):
            # One at a time: FerretDB 1.24 panics (and drops the connection) when one
            # createIndexes names two or more indexes that already exist, i.e. on every
            # restart (handler/msg_createindexes.go deletes from its list by a stale position).
            for index in indexes:
                await collection.create_indexes([index])
        if await self._migrations.find_one({"_id": _DAY_MIGRATION}) is None:
            # Read them all before writing: FerretDB 1.x can fail a cursor's getMore while its
            # collection is being updated.
            stored = await self._documents.find(
                {}, ["owner_id", "media_type", "created_at", "title", "day", "initial"]
            ).to_list()
            for raw in stored:
                day = day_of(raw["created_at"])
                await self._mark_buckets(raw["owner_id"], day, raw["media_type"], raw["title"])
                if raw.get("day") != day or "initial" not in raw:
                    await self._documents.update_one(
                        {"_id": raw["_id"]},
                        {"$set": {"day": day, "initial": raw["title"][:1]}},
                    )
            try:
                await self._migrations.insert_one({"_id": _DAY_MIGRATION})
            except DuplicateKeyError:
                pass  # another replica finished it too

    async def _mark_buckets(self, owner_id: str, day: str, media_type: str, title: str) -> None:
        # Markers are never removed, so one this process wrote stays written.
        fresh = [*day_markers(owner_id, day, media_type), initial_marker(owner_id, title)]
        markers = [m for m in fresh if m["_id"] not in self._marked]
        if not markers:
            return
        # Insert-only, so concurrent saves cannot lose one (FerretDB 1.x updates are
        # read-modify-write); a marker already there collides and changes nothing. One round
        # trip, unordered: the others are inserted past a collision.
        try:
            await self._days.insert_many(markers, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
        if len(self._marked) >= _MARKED_CACHE:
            self._marked.clear()
        self._marked.update(m["_id"] for m in markers)

    async def save_extracted(self, document: Document, chunks: Sequence[Chunk]) -> SaveResult:
        existing = await self._documents.find_one({"_id": document.id})
        if existing is not None:
            # Stored, or a deletion tombstone: a redelivery must neither change nor resurrect it.
            return SaveResult(created=False, document=_document_from_mongo(existing))
        # The day's markers before the document: a visible document is always in a bucket.
        await self._mark_buckets(
            document.owner_id, day_of(document.created_at), document.media_type, document.title
        )
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
        if filters.source is not None or self._day_walk_limit < 1:
            # A source equality already selects few rows.
            return document_page(await self._find(query, order, limit + 1), limit, sort)
        buckets: AsyncGenerator[str, None]
        if sort is SortOrder.TITLE:
            field, buckets = "initial", self._owner_initials(owner_id, after)
        else:
            newest = sort is SortOrder.NEWEST
            field, buckets = "day", self._owner_days(owner_id, filters, after, newest=newest)
        rows: list[Document] = []
        walked: list[str] = []
        async with aclosing(buckets):
            async for bucket in buckets:
                wanted = limit + 1 - len(rows)
                if wanted <= 0:
                    break
                left = self._day_walk_limit - len(walked)
                # Two buckets walked tell how full one is: when filling the page would take
                # more than the walk has left, stop walking now (a bucket costs a query).
                if left <= 0 or (len(walked) >= 2 and wanted * len(walked) > len(rows) * left):
                    # The remaining buckets in one query: everything past the last one
                    # walked, with the page's filters and cursor.
                    beyond = _beyond_bucket(query, sort, walked[-1])
                    if beyond is not None:
                        rows += await self._find(beyond, order, wanted)
                    break
                rows += await self._find({**query, field: bucket}, order, wanted)
                walked.append(bucket)
        return document_page(rows, limit, sort)

    async def _find(
        self, query: MongoDoc, order: list[tuple[str, int]], limit: int
    ) -> list[Document]:
        cursor = self._documents.find(query).sort(order).limit(limit)
        return [_document_from_mongo(raw) async for raw in cursor]

    async def _owner_days(
        self,
        owner_id: str,
        filters: DocumentFilters,
        after: DocumentCursor | None,
        *,
        newest: bool,
    ) -> AsyncGenerator[str, None]:
        """The owner's days that can hold the page, in walking order: the month markers first
        (a dozen a year), then the day markers of one month at a time, so a page reads tens of
        markers however long the owner has been storing documents."""
        kind = "" if filters.media_type is None else "_media_type"
        marker: MongoDoc = {"owner_id": owner_id}
        if filters.media_type is not None:
            marker["media_type"] = filters.media_type
        first = day_of(filters.created_from) if filters.created_from is not None else None
        last = (
            day_of(filters.created_to - timedelta(milliseconds=1))
            if filters.created_to is not None
            else None
        )
        if after is not None and isinstance(after.key, datetime):
            if newest:
                last = min(last, day_of(after.key)) if last else day_of(after.key)
            else:
                first = max(first, day_of(after.key)) if first else day_of(after.key)

        def within(value: str) -> bool:  # a day, or a month (a prefix of its days)
            return (first is None or value >= first[: len(value)]) and (
                last is None or value <= last[: len(value)]
            )

        months = {
            raw["month"]
            async for raw in self._days.find({**marker, "kind": f"month{kind}"}, {"month": 1})
            if within(raw["month"])
        }
        for month in sorted(months, reverse=newest):
            days = {
                raw["day"]
                async for raw in self._days.find(
                    {**marker, "kind": f"day{kind}", "month": month}, {"day": 1}
                )
                if within(raw["day"])
            }
            for day in sorted(days, reverse=newest):
                yield day

    async def _owner_initials(
        self, owner_id: str, after: DocumentCursor | None
    ) -> AsyncGenerator[str, None]:
        """The first characters of the owner's titles from the cursor's on, in title order."""
        start = after.key[:1] if after is not None and isinstance(after.key, str) else None
        marker = {"owner_id": owner_id, "kind": "initial"}
        initials = {
            raw["initial"]
            async for raw in self._days.find(marker, {"initial": 1})
            if start is None or raw["initial"] >= start
        }
        for initial in sorted(initials):
            yield initial

    async def get(self, owner_id: str, document_id: str) -> Document | None:
        # Look up by _id alone and check the owner here: FerretDB 1.x pushes an _id equality
        # down to its backend but evaluates any further condition by scanning (measured 9x).
        raw = await self._documents.find_one({"_id": document_id})
        if raw is None or raw.get("owner_id") != owner_id:
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
        # The outbox row first (one document is the unit FerretDB writes atomically, so the
        # two cannot commit together): a crash between the two leaves a row whose document
        # is still stored, which the relay drops after a while, never a deletion that nobody
        # announces.
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

    async def ping(self) -> None:
        await self._db.command("ping")


async def day_walk_limit_for(database: AsyncDatabase[MongoDoc]) -> int:
    """Day buckets for FerretDB, whose listings otherwise decode all of an owner's documents;
    none for MongoDB, which serves the single query from a compound index (markers are still
    written, so a deployment can move between the two)."""
    info = await database.client.admin.command("buildInfo")
    return DAY_WALK_LIMIT if "ferretdbVersion" in info or "ferretdb" in info else 0


def list_query(
    owner_id: str,
    *,
    filters: DocumentFilters,
    sort: SortOrder,
    after: DocumentCursor | None = None,
) -> tuple[MongoDoc, list[tuple[str, int]]]:
    """The filter and sort of a listing page.

    Every equality sits at the top level of the filter, never inside ``$and``: FerretDB 1.x on
    PostgreSQL turns top-level scalar equalities into SQL (``WHERE``) and evaluates the rest,
    and everything under a top-level operator, in Go after fetching; MongoDB reads both shapes
    the same way. The range and the cursor condition have keys of their own (``created_at``,
    ``$or``), so no ``$and`` is needed.
    """
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
        op = "$lt" if direction == DESCENDING else "$gt"
        query["$or"] = [{field: {op: after.key}}, {field: after.key, "_id": {op: after.id}}]
    return query, [(field, direction), ("_id", direction)]


def day_of(moment: datetime) -> str:
    """The UTC day a document's ``created_at`` falls on: its listing bucket."""
    return utc_millis(moment).strftime("%Y-%m-%d")


def day_markers(owner_id: str, day: str, media_type: str) -> list[MongoDoc]:
    """The markers saying that ``day`` (and its month) holds a document of the owner, and one
    of that media type."""
    month = day[:7]
    plain = [("month", [owner_id, month]), ("day", [owner_id, day])]
    typed = [
        ("month_media_type", [owner_id, month, media_type]),
        ("day_media_type", [owner_id, day, media_type]),
    ]
    markers: list[MongoDoc] = []
    for kind, key in plain + typed:
        marker: MongoDoc = {"_id": json.dumps([kind, *key]), "owner_id": owner_id, "kind": kind}
        marker["month"] = month
        if kind.startswith("day"):
            marker["day"] = day
        if kind.endswith("media_type"):
            marker["media_type"] = media_type
        markers.append(marker)
    return markers


def initial_marker(owner_id: str, title: str) -> MongoDoc:
    """The marker saying that the owner has a title starting with ``title``'s first character
    (by code point, the order MongoDB and FerretDB compare strings in)."""
    initial = title[:1]
    return {
        "_id": json.dumps(["initial", owner_id, initial]),
        "owner_id": owner_id,
        "kind": "initial",
        "initial": initial,
    }


def _beyond_bucket(query: MongoDoc, sort: SortOrder, bucket: str) -> MongoDoc | None:
    """``query`` narrowed to the buckets after ``bucket`` in ``sort`` order; None when none
    can follow it."""
    if sort is not SortOrder.TITLE:
        return _beyond_day(query, bucket, newest=sort is SortOrder.NEWEST)
    if bucket == "":
        return {**query, "title": {"$gt": ""}}
    if ord(bucket) >= 0x10FFFF:
        return None
    # Titles starting after ``bucket``: the title sort has no other top-level title condition
    # (its cursor sits under $or).
    return {**query, "title": {"$gte": chr(ord(bucket) + 1)}}


def _beyond_day(query: MongoDoc, day: str, *, newest: bool) -> MongoDoc:
    """``query`` narrowed to the days before ``day`` (newest first) or after it (oldest)."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    created = dict(query.get("created_at", {}))
    if newest:
        created["$lt"] = min(created.get("$lt", start), start)
    else:
        end = start + timedelta(days=1)
        created["$gte"] = max(created.get("$gte", end), end)
    return {**query, "created_at": created}


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
        "day": day_of(document.created_at),
        "initial": document.title[:1],
        "chunk_count": document.chunk_count,
        "metadata": document.metadata,
        "provenance": document.provenance,
        "status": document.status.value,
        "deletion_requested_at": document.deletion_requested_at,
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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
