"""Databases at 10,000 records, side by side: PostgreSQL, the MongoDB-wire server, Neo4j and
Redis, on the servers of ``make servers``, through the drivers the services use (asyncpg,
PyMongo's async client, the neo4j driver, redis-py's asyncio client).

The same records in each store: 10,000 documents of 100 owners (Zipf-skewed: a few own many)
with 1 to 5 chunks each. The common queries, one client, one at a time:

- **insert**: the 10,000 documents in one batch, the way each store takes a batch best (COPY;
  ``insert_many``; one ``UNWIND`` transaction; a pipeline); run three times;
- **get** one document by id (and owner: each user sees only their own data);
- **page**: the 20 documents of one owner after a cursor (newest first; the cursor is the last
  document's ``(created_at, id)``: keyset paging, no offsets);
- **update** one document's title; **delete** one document and its chunks.

And one complex query each: *documents per owner with their chunk counts and total size, the
top 10 by size*: a join and an aggregation in SQL, a ``$lookup`` pipeline on the MongoDB wire, a
2-hop pattern (owner -> document -> chunk) in Cypher. Redis has no joins or ad hoc aggregation:
there the answer is kept up to date on every write (per-owner counters in the same
transaction), and reading every record back to the client is measured apart to show what the ad
hoc query costs. Every answer is checked against the one computed here from the records.

Each store gets scratch space of its own, removed afterwards: a new PostgreSQL database, a new
MongoDB database, nodes labelled ``KglabStudy*`` carrying this run's tag in Neo4j (Community
Edition has one database), keys under ``kglab:study:<tag>:`` in Redis. Nothing else on the
shared servers is read or written. Each phase is bounded by a sample count and a time budget.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

RECORDS = 10_000
OWNERS = 100
PAGE = 20
MAX_CHUNKS = 5
TOP = 10
INSERT_RUNS = 3
BASE_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
COMPLEX_QUERY = "documents per owner with their chunk counts and total size, top 10 by size"


@dataclass(frozen=True)
class Record:
    """One document: what every store holds for it."""

    id: str
    owner_id: str
    title: str
    media_type: str
    size_bytes: int
    created_ms: int
    chunks: int


@dataclass(frozen=True)
class OwnerTotal:
    owner_id: str
    documents: int
    chunks: int
    bytes: int


Cursor = tuple[int, str]  # (created_ms, id) of the last document of the previous page


def make_records(count: int, owners: int, tag: str, seed: int = 16) -> list[Record]:
    """``count`` documents of ``owners`` owners, Zipf-skewed, ids unique to ``tag``."""
    rng = random.Random(seed)
    names = [f"{tag}-owner-{k:03d}" for k in range(owners)]
    weights = [1 / (k + 1) for k in range(owners)]
    media = ("application/pdf", "text/plain", "text/html", "text/markdown")
    return [
        Record(
            id=f"{tag}-doc-{i:05d}",
            owner_id=rng.choices(names, weights)[0],
            title=f"Report {rng.randrange(100_000):05d}",
            media_type=media[i % len(media)],
            size_bytes=rng.randrange(1_000, 5_000_000),
            created_ms=BASE_MS + rng.randrange(86_400_000 * 300),
            chunks=rng.randint(1, MAX_CHUNKS),
        )
        for i in range(count)
    ]


def newest_first(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.created_ms, r.id), reverse=True)


def expected_page(ordered: list[Record], cursor: Cursor | None, limit: int) -> list[str]:
    """The ids after ``cursor`` in one owner's newest-first list."""
    after = [r for r in ordered if cursor is None or (r.created_ms, r.id) < cursor]
    return [r.id for r in after[:limit]]


def expected_top(records: Iterable[Record], limit: int = TOP) -> list[OwnerTotal]:
    """The complex query's answer: per owner, documents, chunks and bytes; largest first."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        total = totals[r.owner_id]
        total[0] += 1
        total[1] += r.chunks
        total[2] += r.size_bytes
    ranked = sorted(totals.items(), key=lambda item: (-item[1][2], item[0]))
    return [OwnerTotal(owner, *values) for owner, values in ranked[:limit]]


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p95 is a latency that happened)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def summary(samples_ms: list[float], correct: bool) -> dict[str, Any]:
    return {
        "samples": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 0.5), 3),
        "p95_ms": round(percentile(samples_ms, 0.95), 3),
        "correct": correct,
    }


class Store(Protocol):
    """One database, as the study drives it."""

    name: str
    fits: str
    complex_kind: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def clear(self) -> None: ...
    async def insert(self, records: list[Record]) -> None: ...
    async def insert_chunks(self, records: list[Record]) -> None: ...
    async def get(self, owner_id: str, document_id: str) -> str | None: ...
    async def page(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[str]: ...
    async def update(self, owner_id: str, document_id: str, title: str) -> bool: ...
    async def delete(self, owner_id: str, document_id: str) -> bool: ...
    async def top(self, limit: int) -> list[OwnerTotal]: ...


# --- PostgreSQL -------------------------------------------------------------------------------


class PostgresStore:
    fits = "yes: every query through indexes; the complex one is a plain join and GROUP BY"
    complex_kind = "JOIN documents to chunk counts, GROUP BY owner, ORDER BY total size"
    TOP_SQL = """
        SELECT d.owner_id, count(*) AS documents, sum(c.n) AS chunks, sum(d.size_bytes) AS bytes
        FROM study_documents d
        JOIN (SELECT document_id, count(*) AS n FROM study_chunks GROUP BY document_id) c
          ON c.document_id = d.id
        GROUP BY d.owner_id ORDER BY bytes DESC, d.owner_id LIMIT $1"""

    def __init__(self, server_url: str, tag: str) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(server_url).set(drivername="postgresql")
        self.database = f"kglab_study_{tag}"
        self.admin_dsn = url.render_as_string(hide_password=False)
        self.dsn = url.set(database=self.database).render_as_string(hide_password=False)
        self.name = "PostgreSQL"
        self.pool: Any = None

    async def open(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        admin = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            self.name = f"PostgreSQL {await admin.fetchval('SHOW server_version')}".split(" (")[0]
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        await self.pool.execute(
            """
            CREATE TABLE study_documents (
                id text PRIMARY KEY, owner_id text NOT NULL, title text NOT NULL,
                media_type text NOT NULL, size_bytes bigint NOT NULL,
                created_at timestamptz NOT NULL);
            CREATE INDEX study_documents_owner_page
                ON study_documents (owner_id, created_at DESC, id DESC);
            CREATE TABLE study_chunks (
                document_id text NOT NULL REFERENCES study_documents (id) ON DELETE CASCADE,
                seq int NOT NULL, owner_id text NOT NULL, text text NOT NULL,
                PRIMARY KEY (document_id, seq));
            """
        )

    async def close(self) -> None:
        import asyncpg

        if self.pool is not None:
            await self.pool.close()
        admin = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()

    async def clear(self) -> None:
        await self.pool.execute("TRUNCATE study_chunks, study_documents")

    async def insert(self, records: list[Record]) -> None:
        rows = [
            (r.id, r.owner_id, r.title, r.media_type, r.size_bytes, _when(r.created_ms))
            for r in records
        ]
        await self.pool.copy_records_to_table("study_documents", records=rows)

    async def insert_chunks(self, records: list[Record]) -> None:
        rows = [(r.id, s, r.owner_id, _chunk_text(r, s)) for r in records for s in range(r.chunks)]
        await self.pool.copy_records_to_table("study_chunks", records=rows)

    async def get(self, owner_id: str, document_id: str) -> str | None:
        row = await self.pool.fetchrow(
            "SELECT id, title FROM study_documents WHERE id = $1 AND owner_id = $2",
            document_id,
            owner_id,
        )
        return None if row is None else str(row["id"])

    async def page(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[str]:
        if cursor is None:
            rows = await self.pool.fetch(
                "SELECT id FROM study_documents WHERE owner_id = $1"
                " ORDER BY created_at DESC, id DESC LIMIT $2",
                owner_id,
                limit,
            )
        else:
            rows = await self.pool.fetch(
                "SELECT id FROM study_documents WHERE owner_id = $1 AND (created_at, id) < ($2, $3)"
                " ORDER BY created_at DESC, id DESC LIMIT $4",
                owner_id,
                _when(cursor[0]),
                cursor[1],
                limit,
            )
        return [str(row["id"]) for row in rows]

    async def update(self, owner_id: str, document_id: str, title: str) -> bool:
        status = await self.pool.execute(
            "UPDATE study_documents SET title = $1 WHERE id = $2 AND owner_id = $3",
            title,
            document_id,
            owner_id,
        )
        return bool(status == "UPDATE 1")

    async def delete(self, owner_id: str, document_id: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM study_documents WHERE id = $1 AND owner_id = $2", document_id, owner_id
        )
        return bool(status == "DELETE 1")

    async def top(self, limit: int) -> list[OwnerTotal]:
        rows = await self.pool.fetch(self.TOP_SQL, limit)
        return [OwnerTotal(r["owner_id"], r["documents"], r["chunks"], r["bytes"]) for r in rows]


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _chunk_text(record: Record, seq: int) -> str:
    return f"Paragraph {seq} of {record.title}."


# --- MongoDB wire -----------------------------------------------------------------------------


class MongoStore:
    fits = (
        "yes: every query through indexes; the join is a $lookup stage, which runs one chunk "
        "lookup per document. Measured on SecantusDB, the stand-in: MongoDB itself is not here"
    )
    complex_kind = "$lookup chunks, $group by owner, $sort by total size"

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.database_name = f"kglab_study_{tag}"
        self.name = "MongoDB wire"
        self.client: Any = None
        self.db: Any = None

    async def open(self) -> None:
        from pymongo import AsyncMongoClient

        self.client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=10_000)
        info = await self.client.admin.command("buildInfo")
        secantus = info.get("secantusVersion")
        self.name = (
            f"SecantusDB {secantus} (MongoDB wire {info['version']})"
            if secantus
            else f"MongoDB {info['version']}"
        )
        self.db = self.client[self.database_name]
        await self.db.documents.create_index([("owner_id", 1), ("created_at", -1), ("_id", -1)])
        await self.db.chunks.create_index([("document_id", 1)])

    async def close(self) -> None:
        await self.client.drop_database(self.database_name)
        await self.client.close()

    async def clear(self) -> None:
        await self.db.documents.delete_many({})
        await self.db.chunks.delete_many({})

    async def insert(self, records: list[Record]) -> None:
        await self.db.documents.insert_many(
            [
                {
                    "_id": r.id,
                    "owner_id": r.owner_id,
                    "title": r.title,
                    "media_type": r.media_type,
                    "size_bytes": r.size_bytes,
                    "created_at": _when(r.created_ms),
                }
                for r in records
            ],
            ordered=False,
        )

    async def insert_chunks(self, records: list[Record]) -> None:
        await self.db.chunks.insert_many(
            [
                {"document_id": r.id, "seq": s, "owner_id": r.owner_id, "text": _chunk_text(r, s)}
                for r in records
                for s in range(r.chunks)
            ],
            ordered=False,
        )

    async def get(self, owner_id: str, document_id: str) -> str | None:
        found = await self.db.documents.find_one({"_id": document_id, "owner_id": owner_id})
        return None if found is None else str(found["_id"])

    async def page(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[str]:
        query: dict[str, Any] = {"owner_id": owner_id}
        if cursor is not None:
            when = _when(cursor[0])
            query["$or"] = [
                {"created_at": {"$lt": when}},
                {"created_at": when, "_id": {"$lt": cursor[1]}},
            ]
        found = (
            self.db.documents.find(query, {"_id": 1})
            .sort([("created_at", -1), ("_id", -1)])
            .limit(limit)
        )
        return [str(doc["_id"]) async for doc in found]

    async def update(self, owner_id: str, document_id: str, title: str) -> bool:
        result = await self.db.documents.update_one(
            {"_id": document_id, "owner_id": owner_id}, {"$set": {"title": title}}
        )
        return bool(result.matched_count == 1)

    async def delete(self, owner_id: str, document_id: str) -> bool:
        result = await self.db.documents.delete_one({"_id": document_id, "owner_id": owner_id})
        await self.db.chunks.delete_many({"document_id": document_id})
        return bool(result.deleted_count == 1)

    async def top(self, limit: int) -> list[OwnerTotal]:
        pipeline: list[dict[str, Any]] = [
            {
                "$lookup": {
                    "from": "chunks",
                    "localField": "_id",
                    "foreignField": "document_id",
                    "as": "chunks",
                }
            },
            {
                "$group": {
                    "_id": "$owner_id",
                    "documents": {"$sum": 1},
                    "chunks": {"$sum": {"$size": "$chunks"}},
                    "bytes": {"$sum": "$size_bytes"},
                }
            },
            {"$sort": {"bytes": -1, "_id": 1}},
            {"$limit": limit},
        ]
        cursor = await self.db.documents.aggregate(pipeline, maxTimeMS=60_000)
        return [OwnerTotal(d["_id"], d["documents"], d["chunks"], d["bytes"]) async for d in cursor]


# --- Neo4j ------------------------------------------------------------------------------------


class Neo4jStore:
    fits = (
        "yes, though these records are not a graph: lookups and pages go through property "
        "indexes; the complex query is a 2-hop pattern. Traversals of unknown depth are where "
        "it earns its place (the graph study)"
    )
    complex_kind = "MATCH (owner)-[:OWNS]->(document)-[:HAS_CHUNK]->(chunk), aggregated"
    INDEXES = (
        "CREATE INDEX kglab_study_owner IF NOT EXISTS FOR (o:KglabStudyOwner) ON (o.id)",
        "CREATE INDEX kglab_study_document IF NOT EXISTS FOR (d:KglabStudyDocument) ON (d.id)",
        "CREATE INDEX kglab_study_document_page IF NOT EXISTS"
        " FOR (d:KglabStudyDocument) ON (d.owner_id, d.created_ms)",
    )
    TOP_CYPHER = """
        MATCH (o:KglabStudyOwner {run: $run})-[:OWNS]->(d:KglabStudyDocument)
              -[:HAS_CHUNK]->(c:KglabStudyChunk)
        WITH o, d, count(c) AS chunks
        RETURN o.id AS owner_id, count(d) AS documents, sum(chunks) AS chunks,
               sum(d.size_bytes) AS bytes
        ORDER BY bytes DESC, owner_id LIMIT $limit"""

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.run = tag
        self.name = "Neo4j"
        self.driver: Any = None

    async def open(self) -> None:
        from neo4j import AsyncGraphDatabase

        address, auth = neo4j_address(self.url)
        self.driver = AsyncGraphDatabase.driver(address, auth=auth)
        records, _, _ = await self.driver.execute_query(
            "CALL dbms.components() YIELD name, versions, edition"
            " RETURN versions[0] AS version, edition"
        )
        self.name = f"Neo4j {records[0]['version']} {records[0]['edition']}"
        for statement in self.INDEXES:
            await self.driver.execute_query(statement)
        await self.driver.execute_query("CALL db.awaitIndexes(60)")

    async def close(self) -> None:
        await self.clear()
        await self._delete_batched("KglabStudyOwner")
        # The indexes are the study's own (their labels hold nothing else); drop them unless
        # another run still has nodes under them.
        records, _, _ = await self.driver.execute_query(
            "MATCH (n) WHERE n:KglabStudyOwner OR n:KglabStudyDocument OR n:KglabStudyChunk"
            " RETURN count(n) AS left"
        )
        if records[0]["left"] == 0:
            for name in ("kglab_study_owner", "kglab_study_document", "kglab_study_document_page"):
                await self.driver.execute_query(f"DROP INDEX {name} IF EXISTS")
        await self.driver.close()

    async def _delete_batched(self, label: str) -> None:
        while True:
            records, _, _ = await self.driver.execute_query(
                f"MATCH (n:{label} {{run: $run}}) WITH n LIMIT 5000 DETACH DELETE n"
                " RETURN count(*) AS n",
                run=self.run,
            )
            if records[0]["n"] == 0:
                return

    async def clear(self) -> None:
        await self._delete_batched("KglabStudyChunk")
        await self._delete_batched("KglabStudyDocument")

    async def insert(self, records: list[Record]) -> None:
        owners = sorted({r.owner_id for r in records})
        await self.driver.execute_query(
            "UNWIND $owners AS id MERGE (o:KglabStudyOwner {id: id}) SET o.run = $run",
            owners=owners,
            run=self.run,
        )
        await self.driver.execute_query(
            """
            UNWIND $rows AS r
            MATCH (o:KglabStudyOwner {id: r.owner_id})
            CREATE (o)-[:OWNS]->(:KglabStudyDocument {
                id: r.id, run: $run, owner_id: r.owner_id, title: r.title,
                media_type: r.media_type, size_bytes: r.size_bytes, created_ms: r.created_ms})
            """,
            rows=[_row(r) for r in records],
            run=self.run,
        )

    async def insert_chunks(self, records: list[Record]) -> None:
        rows = [
            {"document_id": r.id, "seq": s, "text": _chunk_text(r, s)}
            for r in records
            for s in range(r.chunks)
        ]
        for start in range(0, len(rows), 10_000):
            await self.driver.execute_query(
                """
                UNWIND $rows AS r
                MATCH (d:KglabStudyDocument {id: r.document_id})
                CREATE (d)-[:HAS_CHUNK]->(:KglabStudyChunk {run: $run, seq: r.seq, text: r.text})
                """,
                rows=rows[start : start + 10_000],
                run=self.run,
            )

    async def get(self, owner_id: str, document_id: str) -> str | None:
        records, _, _ = await self.driver.execute_query(
            "MATCH (d:KglabStudyDocument {id: $id}) WHERE d.owner_id = $owner"
            " RETURN d.id AS id, d.title AS title",
            id=document_id,
            owner=owner_id,
            routing_="r",
        )
        return str(records[0]["id"]) if records else None

    async def page(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[str]:
        records, _, _ = await self.driver.execute_query(
            """
            MATCH (d:KglabStudyDocument) WHERE d.owner_id = $owner
              AND ($ms IS NULL OR d.created_ms < $ms OR (d.created_ms = $ms AND d.id < $id))
            RETURN d.id AS id ORDER BY d.created_ms DESC, d.id DESC LIMIT $limit
            """,
            owner=owner_id,
            ms=None if cursor is None else cursor[0],
            id=None if cursor is None else cursor[1],
            limit=limit,
            routing_="r",
        )
        return [str(r["id"]) for r in records]

    async def update(self, owner_id: str, document_id: str, title: str) -> bool:
        records, _, _ = await self.driver.execute_query(
            "MATCH (d:KglabStudyDocument {id: $id}) WHERE d.owner_id = $owner"
            " SET d.title = $title RETURN count(d) AS n",
            id=document_id,
            owner=owner_id,
            title=title,
        )
        return bool(records[0]["n"] == 1)

    async def delete(self, owner_id: str, document_id: str) -> bool:
        records, _, _ = await self.driver.execute_query(
            """
            MATCH (d:KglabStudyDocument {id: $id}) WHERE d.owner_id = $owner
            OPTIONAL MATCH (d)-[:HAS_CHUNK]->(c:KglabStudyChunk)
            DETACH DELETE c, d RETURN count(DISTINCT d) AS n
            """,
            id=document_id,
            owner=owner_id,
        )
        return bool(records[0]["n"] == 1)

    async def top(self, limit: int) -> list[OwnerTotal]:
        records, _, _ = await self.driver.execute_query(
            self.TOP_CYPHER, run=self.run, limit=limit, routing_="r"
        )
        return [OwnerTotal(r["owner_id"], r["documents"], r["chunks"], r["bytes"]) for r in records]


def neo4j_address(url: str) -> tuple[str, tuple[str, str]]:
    """``bolt://user:password@host:port`` as the driver takes it: address, (user, password)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    address = f"{parts.scheme}://{parts.hostname}:{parts.port or 7687}"
    return address, (unquote(parts.username or "neo4j"), unquote(parts.password or ""))


def _row(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "owner_id": record.owner_id,
        "title": record.title,
        "media_type": record.media_type,
        "size_bytes": record.size_bytes,
        "created_ms": record.created_ms,
    }


# --- Redis ------------------------------------------------------------------------------------

#: Update a document's title only if it exists (HSET alone would create a stray hash).
_UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'title', ARGV[1]) return 1
end
return 0
"""


class RedisStore:
    fits = (
        "partly: get, update, delete and cursor pages (a sorted set per owner) fit; the complex "
        "query does not (no joins, no ad hoc aggregation): it is kept on every write as "
        "per-owner counters, and the ad hoc version reads every record to the client"
    )
    complex_kind = "per-owner counters kept in each write's transaction (ZREVRANGE + HMGET)"

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.prefix = f"kglab:study:{tag}:"
        self.name = "Redis"
        self.redis: Any = None
        self.update_script: Any = None

    def _doc(self, owner_id: str, document_id: str) -> str:
        # The owner is part of the key: a caller can only name their own documents.
        return f"{self.prefix}doc:{owner_id}:{document_id}"

    def _chunks(self, document_id: str) -> str:
        return f"{self.prefix}chunks:{document_id}"

    def _index(self, owner_id: str) -> str:
        return f"{self.prefix}owner:{owner_id}"

    async def open(self) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(self.url, decode_responses=True)
        info = await self.redis.info("server")
        self.name = f"Redis {info['redis_version']}"
        self.update_script = self.redis.register_script(_UPDATE_IF_EXISTS)

    async def close(self) -> None:
        await self.clear()
        await self.redis.aclose()

    async def clear(self) -> None:
        batch: list[str] = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self.redis.unlink(*batch)
                batch = []
        if batch:
            await self.redis.unlink(*batch)

    async def insert(self, records: list[Record]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for r in records:
            pipe.hset(self._doc(r.owner_id, r.id), mapping=_row(r))
            pipe.zadd(self._index(r.owner_id), {_member(r.created_ms, r.id): 0})
            pipe.zincrby(f"{self.prefix}bytes", r.size_bytes, r.owner_id)
            pipe.hincrby(f"{self.prefix}documents", r.owner_id, 1)
        await pipe.execute()

    async def insert_chunks(self, records: list[Record]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for r in records:
            pipe.rpush(self._chunks(r.id), *(_chunk_text(r, s) for s in range(r.chunks)))
            pipe.hincrby(f"{self.prefix}chunks", r.owner_id, r.chunks)
        await pipe.execute()

    async def get(self, owner_id: str, document_id: str) -> str | None:
        found = await self.redis.hgetall(self._doc(owner_id, document_id))
        return str(found["id"]) if found else None

    async def page(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[str]:
        start = "+" if cursor is None else f"({_member(*cursor)}"
        members = await self.redis.zrange(
            self._index(owner_id), start, "-", desc=True, bylex=True, offset=0, num=limit
        )
        return [m.split(":", 1)[1] for m in members]

    async def update(self, owner_id: str, document_id: str, title: str) -> bool:
        return bool(await self.update_script(keys=[self._doc(owner_id, document_id)], args=[title]))

    async def delete(self, owner_id: str, document_id: str) -> bool:
        key = self._doc(owner_id, document_id)
        size, created = await self.redis.hmget(key, "size_bytes", "created_ms")
        if size is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.unlink(key)
            pipe.zrem(self._index(owner_id), _member(int(created), document_id))
            pipe.llen(self._chunks(document_id))
            pipe.unlink(self._chunks(document_id))
            pipe.zincrby(f"{self.prefix}bytes", -int(size), owner_id)
            pipe.hincrby(f"{self.prefix}documents", owner_id, -1)
            results = await pipe.execute()
        await self.redis.hincrby(f"{self.prefix}chunks", owner_id, -int(results[2]))
        return True

    async def top(self, limit: int) -> list[OwnerTotal]:
        ranked = await self.redis.zrange(f"{self.prefix}bytes", 0, -1, desc=True, withscores=True)
        # Equal sizes rank by owner id, as the other stores' ORDER BY does.
        ranked = sorted(ranked, key=lambda item: (-item[1], item[0]))[:limit]
        owners = [owner for owner, _ in ranked]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(f"{self.prefix}documents", owners)
        pipe.hmget(f"{self.prefix}chunks", owners)
        documents, chunks = await pipe.execute()
        return [
            OwnerTotal(owner, int(d), int(c), int(size))
            for (owner, size), d, c in zip(ranked, documents, chunks, strict=True)
        ]

    async def top_ad_hoc(self, limit: int) -> list[OwnerTotal]:
        """The same answer with no counters: every document and chunk list read back."""
        keys = [k async for k in self.redis.scan_iter(match=f"{self.prefix}doc:*", count=1000)]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "id", "owner_id", "size_bytes", "created_ms")
        rows = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            pipe.llen(self._chunks(row[0]))
        counts = await pipe.execute()
        records = [
            Record(row[0], row[1], "", "", int(row[2]), int(row[3]), int(n))
            for row, n in zip(rows, counts, strict=True)
        ]
        return expected_top(records, limit)


def _member(created_ms: int, document_id: str) -> str:
    # Fixed-width time first: lexicographic order is (created_at, id) order.
    return f"{created_ms:015d}:{document_id}"


# --- the study --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    samples: int = 300
    complex_samples: int = 15
    seconds_per_phase: float = 90.0


Call = Callable[[], Awaitable[bool]]


async def _interleaved(
    stores: list[Store], calls: Callable[[Store], Iterable[Call]], budget_s: float
) -> list[tuple[list[float], bool]]:
    """Each store's calls, taken in turn (one of each store's, then the next): every store runs
    under the same load, whatever the neighbours do. Stops at the first round past the budget,
    so every store has the same number of samples."""
    iterators = [iter(calls(store)) for store in stores]
    samples: list[list[float]] = [[] for _ in stores]
    correct = [True for _ in stores]
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        round_calls = [next(it, None) for it in iterators]
        if any(call is None for call in round_calls):
            break
        for index, call in enumerate(round_calls):
            assert call is not None
            started = time.perf_counter()
            ok = await call()
            samples[index].append((time.perf_counter() - started) * 1000)
            correct[index] = correct[index] and ok
    return list(zip(samples, correct, strict=True))


async def _ms(action: Awaitable[None]) -> float:
    started = time.perf_counter()
    await action
    return round((time.perf_counter() - started) * 1000, 1)


async def measure(
    stores: list[Store], records: list[Record], budget: Budget
) -> list[dict[str, Any]]:
    """Every operation on every store, in order: insert, get, page, complex, update, delete."""
    rng = random.Random(7)
    picks = rng.sample(records, min(budget.samples, len(records)))
    by_owner: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_owner[r.owner_id].append(r)
    ordered = {owner: newest_first(rs) for owner, rs in by_owner.items()}
    expected = expected_top(records)
    seconds = budget.seconds_per_phase
    operations: list[dict[str, Any]] = [{} for _ in stores]

    inserts: list[list[float]] = [[] for _ in stores]
    for run in range(INSERT_RUNS):
        for index, store in enumerate(stores):
            if run:
                await store.clear()
            inserts[index].append(await _ms(store.insert(records)))
    for index, store in enumerate(stores):
        operations[index]["insert_10000"] = {
            "median_ms": statistics.median(inserts[index]),
            "runs_ms": inserts[index],
        }
        operations[index]["insert_chunks"] = {
            "ms": await _ms(store.insert_chunks(records)),
            "chunks": sum(r.chunks for r in records),
        }

    def gets(store: Store) -> Iterable[Call]:
        for r in picks:

            async def call(r: Record = r) -> bool:
                return await store.get(r.owner_id, r.id) == r.id

            yield call

    def pages(store: Store) -> Iterable[Call]:
        for r in picks:
            cursor = (r.created_ms, r.id)
            want = expected_page(ordered[r.owner_id], cursor, PAGE)

            async def call(r: Record = r, cursor: Cursor = cursor, want: list[str] = want) -> bool:
                return await store.page(r.owner_id, cursor, PAGE) == want

            yield call

    def tops(store: Store) -> Iterable[Call]:
        for _ in range(budget.complex_samples):

            async def call() -> bool:
                return await store.top(TOP) == expected

            yield call

    def updates(store: Store) -> Iterable[Call]:
        for r in picks:

            async def call(r: Record = r) -> bool:
                return await store.update(r.owner_id, r.id, f"Renamed {r.title}")

            yield call

    def deletes(store: Store) -> Iterable[Call]:
        for r in picks:

            async def call(r: Record = r) -> bool:
                deleted = await store.delete(r.owner_id, r.id)
                return deleted and await store.get(r.owner_id, r.id) is None

            yield call

    for name, calls in (
        ("get", gets),
        ("page", pages),
        ("complex", tops),
        ("update", updates),
        ("delete", deletes),
    ):
        for index, measured in enumerate(await _interleaved(stores, calls, seconds)):
            operations[index][name] = summary(*measured)
            print(f"{stores[index].name}: {name} {operations[index][name]}", flush=True)
    redis = [store for store in stores if isinstance(store, RedisStore)]
    if redis:
        # Not interleaved: the ad hoc read is Redis's alone (the others answer with a query).
        ad_hoc = redis[0]
        deleted = set(picks[: operations[stores.index(ad_hoc)]["delete"]["samples"]])
        records_left = [r for r in records if r not in deleted]

        def ad_hocs(_store: Store) -> Iterable[Call]:
            want = expected_top(records_left)
            for _ in range(budget.complex_samples):

                async def call() -> bool:
                    return await ad_hoc.top_ad_hoc(TOP) == want

                yield call

        [(samples, correct)] = await _interleaved([ad_hoc], ad_hocs, seconds)
        operations[stores.index(ad_hoc)]["complex_ad_hoc"] = summary(samples, correct)
    return [
        {
            "store": store.name,
            "fits": store.fits,
            "complex_query": store.complex_kind,
            "operations": operations[index],
        }
        for index, store in enumerate(stores)
    ]


def server_urls() -> dict[str, str] | None:
    names = {
        "postgres": "KGLAB_POSTGRES_URL",
        "mongo": "KGLAB_MONGO_URL",
        "neo4j": "KGLAB_NEO4J_URL",
        "redis": "KGLAB_REDIS_URL",
    }
    urls = {key: os.environ.get(env, "") for key, env in names.items()}
    return urls if all(urls.values()) else None


def all_stores(urls: dict[str, str], tag: str) -> list[Store]:
    return [
        PostgresStore(urls["postgres"], tag),
        MongoStore(urls["mongo"], tag),
        Neo4jStore(urls["neo4j"], tag),
        RedisStore(urls["redis"], tag),
    ]


async def study(urls: dict[str, str], budget: Budget | None = None) -> list[dict[str, Any]]:
    """The four stores side by side on the same records, in one run; each store's scratch
    space is removed afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:10]
    records = make_records(RECORDS, OWNERS, tag)
    stores = all_stores(urls, tag)
    opened: list[Store] = []
    try:
        for store in stores:
            opened.append(store)
            await store.open()
        return await measure(stores, records, budget or Budget())
    finally:
        for store in opened:
            try:
                await store.close()
            except Exception as exc:  # the others must still be cleaned up
                print(f"{store.name}: clean-up failed: {exc!r}", flush=True)


if __name__ == "__main__":  # a quick look without make bench
    found = server_urls()
    if found is None:
        raise SystemExit("needs the KGLAB_*_URL variables of make servers")
    print(asyncio.run(study(found, Budget(samples=20, complex_samples=2, seconds_per_phase=5))))
