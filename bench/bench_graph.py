"""Graph store benchmark: Neo4j (the real adapter), PostgreSQL (edges table + recursive CTEs)
and the embedded SQLite adapter, in one run, on one machine.

    eval "$(bash deploy/local/servers.sh env)"
    uv run python bench/bench_graph.py [--entities 100000] [--relations 500000] [--build-budget 300]

1. Insert 1,000 entities and 1,000 relations in one batch (a fresh owner per run), median of
   ``--runs`` (15) on a warm server: up to ``--warmup-batches`` (30) inserts or
   ``--warmup-seconds`` (60), whichever ends first, run before and are only recorded; with a
   local Neo4j, the server CPU per insert too (whole JVM and Bolt worker threads).
2. Build a graph of ``--entities`` / ``--relations`` (random, undirected), batched, within
   ``--build-budget`` seconds per store; a store that runs out of time is measured at the size it
   reached, and the table says so.
3. Neighbours at depth 2 (p50/p95) and shortest path (p50/p95) from random entities.

Prints a table and writes ``bench/results/graph.json`` with machine information.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from machine import describe

from kglab_graph.domain import (
    ChunkRef,
    Entity,
    Mention,
    RelationCandidate,
    entity_id,
)
from kglab_graph.store.neo4j import Neo4jGraphStore, document_params
from kglab_graph.store.sqlite import SqliteGraphStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.graph_owners import delete_owner

RESULTS = Path(__file__).parent / "results" / "graph.json"
BATCH = 10_000


@dataclass
class Timings:
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict[str, Any]:
        if not self.samples_ms:
            return {"n": 0, "failures": self.failures}
        ordered = sorted(self.samples_ms)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return {
            "n": len(ordered),
            "median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(ordered[-1], 2),
            "failures": self.failures,
        }


async def timed(timings: Timings, call: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    try:
        result = await call()
    except Exception:
        timings.failures += 1
        return None
    timings.samples_ms.append((time.perf_counter() - started) * 1000)
    return result


def machine() -> dict[str, Any]:
    info = describe()
    # The issue asks for nproc by that name; the load average tells whether others shared the CPUs.
    return {"nproc": info["cpus"], "load_average_1_5_15": os.getloadavg(), **info}


# --- the one-batch insert ---------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    entities: list[Entity]
    mentions: list[Mention]
    relations: list[RelationCandidate]
    chunks: list[ChunkRef]


def make_batch(owner: str, document_id: str, n: int, rng: random.Random) -> Batch:
    """``n`` entities named across ``n/10`` chunks and ``n`` distinct co-occurrence relations."""
    keys = [f"entity {i:05d}" for i in range(n)]
    entities = [Entity(entity_id(owner, k), k.title(), "ENTITY", k) for k in keys]
    chunks = [ChunkRef(f"{document_id}-c{i}", i) for i in range(max(1, n // 10))]
    mentions = [Mention(chunks[i % len(chunks)].id, k, 1) for i, k in enumerate(keys)]
    pairs: set[tuple[str, str]] = set()
    while len(pairs) < n:
        a, b = rng.sample(keys, 2)
        pairs.add((a, b) if a < b else (b, a))
    relations = [
        RelationCandidate(a, b, (f"{document_id}:{chunks[0].id}:{i}",))
        for i, (a, b) in enumerate(sorted(pairs))
    ]
    return Batch(entities, mentions, relations, chunks)


#: The Neo4j launcher of deploy/local/servers.sh writes its pid here.
LOCAL_NEO4J_PID = Path(__file__).resolve().parents[1] / ".kglab" / "servers" / "neo4j" / "neo4j.pid"


class ServerCpu:
    """CPU time a local server process has used, from ``/proc/<pid>/task/*/schedstat`` (ns on
    CPU per thread): all threads, and the threads whose name starts with ``worker_prefix`` (for
    Neo4j the Bolt workers, which run the statement and its commit; the rest is JIT, GC and
    background index work, which may fall into the next insert's window)."""

    def __init__(self, pid: int, worker_prefix: str = "neo4j.BoltWorke") -> None:
        self.pid = pid
        self.worker_prefix = worker_prefix

    @classmethod
    def find(cls, pid: int | None) -> ServerCpu | None:
        if pid is None:
            try:
                pid = int(LOCAL_NEO4J_PID.read_text().strip())
            except (OSError, ValueError):
                return None
        return cls(pid) if Path(f"/proc/{pid}/task").is_dir() else None

    def read_ns(self) -> tuple[int, int]:
        total = workers = 0
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return 0, 0
        for task in tasks:
            try:
                ns = int(Path(f"/proc/{self.pid}/task/{task}/schedstat").read_text().split()[0])
                name = Path(f"/proc/{self.pid}/task/{task}/comm").read_text()
            except (OSError, ValueError, IndexError):
                continue  # the thread ended meanwhile
            total += ns
            if name.startswith(self.worker_prefix):
                workers += ns
        return total, workers


@dataclass
class InsertRun:
    """The one-batch insert, measured on a warm server: a bounded warm-up first (not counted),
    then ``runs`` measured inserts; each a fresh owner, as in the issue's benchmark."""

    timings: Timings = field(default_factory=Timings)
    warmup_ms: list[float] = field(default_factory=list)
    warmup_s: float = 0.0
    server_cpu_ms: list[float] = field(default_factory=list)
    worker_cpu_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out = self.timings.summary()
        out["warmup"] = {
            "batches": len(self.warmup_ms),
            "seconds": round(self.warmup_s, 1),
            "first_ms": round(self.warmup_ms[0], 1) if self.warmup_ms else None,
            "last_ms": round(self.warmup_ms[-1], 1) if self.warmup_ms else None,
            "samples_ms": [round(x, 1) for x in self.warmup_ms],
        }
        if self.server_cpu_ms:
            out["server_cpu_ms_median"] = round(statistics.median(self.server_cpu_ms), 1)
            out["bolt_worker_cpu_ms_median"] = round(statistics.median(self.worker_cpu_ms), 1)
            out["server_cpu_note"] = (
                "per measured insert, from /proc/<pid>/task/*/schedstat: the whole JVM, and the "
                "Bolt worker threads alone (statement and commit)"
            )
        return out


async def adapter_batch_insert(
    store: Neo4jGraphStore | SqliteGraphStore,
    runs: int,
    size: int,
    cleanup: bool,
    *,
    warmup_batches: int = 30,
    warmup_seconds: float = 60.0,
    server: ServerCpu | None = None,
) -> InsertRun:
    """A fresh JVM measured twice as slow as a warm one (its C2 compiler keeps compiling for
    minutes on 2 cores, adr/0006), so up to ``warmup_batches`` inserts or ``warmup_seconds``,
    whichever comes first, run before the ``runs`` that are counted."""
    result = InsertRun()
    rng = random.Random(7)
    owners = []

    async def insert() -> float:
        owner = f"bench_{uuid.uuid4().hex[:10]}"
        owners.append(owner)
        batch = make_batch(owner, f"doc-{owner}", size, rng)
        started = time.perf_counter()
        await store.apply_document(
            owner,
            f"doc-{owner}",
            "Bench",
            batch.chunks,
            batch.entities,
            batch.mentions,
            batch.relations,
        )
        return (time.perf_counter() - started) * 1000

    try:
        warm_started = time.perf_counter()
        while len(result.warmup_ms) < max(1, warmup_batches) and (
            not result.warmup_ms or time.perf_counter() - warm_started < warmup_seconds
        ):
            result.warmup_ms.append(await insert())
        result.warmup_s = time.perf_counter() - warm_started
        for _ in range(runs):
            before = server.read_ns() if server else (0, 0)
            result.timings.samples_ms.append(await insert())
            if server:
                after = server.read_ns()
                result.server_cpu_ms.append((after[0] - before[0]) / 1e6)
                result.worker_cpu_ms.append((after[1] - before[1]) / 1e6)
    finally:
        if cleanup and isinstance(store, Neo4jGraphStore):
            for owner in owners:
                await delete_owner(store.driver, owner, timeout_s=60)
    return result


# --- the insert, part by part (Neo4j) -----------------------------------------------------

# The parts of the adapter's one write statement (kglab_graph.store.neo4j._APPLY_DOCUMENT), each
# as its own statement in one transaction, so each can be timed and PROFILEd. Parts that the
# single statement passes as variables (the document, chunk and entity nodes) are matched again
# here, which adds index seeks the real statement does not do: the sum is an upper bound.
_PARTS: list[tuple[str, str]] = [
    (
        "strip",
        "MATCH (d0:Document {owner: $owner, id: $document_id}) "
        "USING INDEX d0:Document(owner, id) "
        "MATCH (d0)<-[:PART_OF]-(c:Chunk)-[m:MENTIONS]->(e:Entity) "
        "WITH collect(DISTINCT e) AS entities, collect(m) AS mentions "
        "FOREACH (m IN mentions | DELETE m) "
        "WITH entities UNWIND entities AS e "
        "OPTIONAL MATCH (e)-[r:RELATED_TO]->(:Entity) "
        "WHERE any(x IN r.evidence WHERE x STARTS WITH $prefix) "
        "WITH r, [x IN r.evidence WHERE NOT x STARTS WITH $prefix] AS kept "
        "FOREACH (_ IN CASE WHEN r IS NOT NULL AND size(kept) = 0 THEN [1] ELSE [] END | "
        "  DELETE r) "
        "FOREACH (_ IN CASE WHEN r IS NOT NULL AND size(kept) > 0 THEN [1] ELSE [] END | "
        "  SET r.evidence = kept, r.weight = size(kept))",
    ),
    (
        "old chunks",
        "MATCH (c:Chunk {document_id: $document_id}) USING INDEX c:Chunk(document_id) "
        "WHERE c.owner = $owner AND NOT c.id IN $chunk_ids DETACH DELETE c",
    ),
    ("document", "MERGE (d:Document {owner: $owner, id: $document_id}) SET d.title = $title"),
    (
        "chunks",
        "MATCH (d:Document {owner: $owner, id: $document_id}) "
        "UNWIND range(0, size($chunk_ids) - 1) AS i "
        "MERGE (c:Chunk {owner: $owner, id: $chunk_ids[i]}) "
        "ON CREATE SET c.document_id = $document_id "
        "SET c.position = $chunk_positions[i], c.heading = $chunk_headings[i] "
        "MERGE (c)-[:PART_OF]->(d)",
    ),
    (
        "entities",
        "UNWIND range(0, size($entity_ids) - 1) AS i "
        "MERGE (e:Entity {id: $entity_ids[i]}) "
        "ON CREATE SET e.owner = $owner, e.key = $entity_keys[i], e.name = $entity_names[i], "
        "  e.type = $entity_types[i]",
    ),
    (
        "mentions",
        "UNWIND range(0, size($mention_counts) - 1) AS i "
        "MATCH (c:Chunk {owner: $owner, id: $chunk_ids[$mention_chunks[i]]}) "
        "MATCH (e:Entity {id: $entity_ids[$mention_entities[i]]}) "
        "CREATE (c)-[:MENTIONS {count: $mention_counts[i]}]->(e)",
    ),
    (
        "relations",
        "UNWIND range(0, size($relation_evidence) - 1) AS i "
        "MATCH (a:Entity {id: $entity_ids[$relation_sources[i]]}) "
        "MATCH (b:Entity {id: $entity_ids[$relation_targets[i]]}) "
        "WITH a, b, $relation_evidence[i] AS evidence "
        "MERGE (a)-[r:RELATED_TO]->(b) "
        "ON CREATE SET r.evidence = evidence, r.weight = size(evidence) "
        "ON MATCH SET r.evidence = r.evidence + [x IN evidence WHERE NOT x IN r.evidence], "
        "  r.weight = size(r.evidence) + size([x IN evidence WHERE NOT x IN r.evidence])",
    ),
]


def _db_hits(plan: dict[str, Any]) -> int:
    return int(plan.get("dbHits", 0)) + sum(_db_hits(c) for c in plan.get("children", []))


async def insert_breakdown(store: Neo4jGraphStore, runs: int, size: int) -> dict[str, Any]:
    """Median ms of each part of a document write (and of the commit), plus each part's
    database hits from PROFILE, on fresh owners as in ``adapter_batch_insert``."""
    rng = random.Random(7)
    samples: dict[str, list[float]] = {name: [] for name, _ in _PARTS}
    samples["commit"] = []
    samples["total"] = []
    db_hits: dict[str, int] = {}
    owners = []
    try:
        for run in range(runs + 2):  # run 0 warms up; the last one is PROFILEd, not timed
            owner = f"bench_{uuid.uuid4().hex[:10]}"
            owners.append(owner)
            document_id = f"doc-{owner}"
            b = make_batch(owner, document_id, size, rng)
            params = document_params(
                owner, document_id, "Bench", b.chunks, b.entities, b.mentions, b.relations
            )
            profile = run == runs + 1
            async with store.driver.session(database="neo4j") as session:
                started = time.perf_counter()
                tx = await session.begin_transaction()
                for name, query in _PARTS:
                    t = time.perf_counter()
                    summary = await (
                        await tx.run(("PROFILE " if profile else "") + query, params)
                    ).consume()
                    if profile and summary.profile:
                        db_hits[name] = _db_hits(summary.profile)
                    elif run > 0:
                        samples[name].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await tx.commit()
                if 0 < run <= runs:
                    samples["commit"].append((time.perf_counter() - t) * 1000)
                    samples["total"].append((time.perf_counter() - started) * 1000)
    finally:
        for owner in owners:
            await delete_owner(store.driver, owner, timeout_s=60)
    return {
        "median_ms": {k: round(statistics.median(v), 2) for k, v in samples.items() if v},
        "db_hits": db_hits,
        "note": "each part as its own statement in one transaction; the adapter sends them "
        "as one statement, so the total here is an upper bound",
    }


# --- the large graph --------------------------------------------------------------------------


def random_edges(n_entities: int, n_relations: int, seed: int = 11) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = set()
    while len(edges) < n_relations:
        a, b = rng.randrange(n_entities), rng.randrange(n_entities)
        if a != b:
            edges.add((a, b) if a < b else (b, a))
    return list(edges)


def ent(owner: str, i: int) -> str:
    return entity_id(owner, f"node {i}")


@dataclass
class Built:
    entities: int
    relations: int
    seconds: float
    complete: bool


async def build_neo4j(
    store: Neo4jGraphStore, owner: str, n: int, edges: list[tuple[int, int]], budget_s: float
) -> Built:
    driver, db = store.driver, "neo4j"
    started = time.perf_counter()
    deadline = started + budget_s
    for lo in range(0, n, BATCH):
        rows = [
            {"id": ent(owner, i), "key": f"node {i}", "name": f"Node {i}"}
            for i in range(lo, min(n, lo + BATCH))
        ]
        await driver.execute_query(
            "UNWIND $rows AS row CREATE (:Entity {id: row.id, key: row.key, name: row.name, "
            "type: 'ENTITY', owner: $owner})",
            {"rows": rows, "owner": owner},
            database_=db,
        )
    done = 0
    for lo in range(0, len(edges), BATCH):
        if time.perf_counter() > deadline:
            break
        rows = [
            {"a": ent(owner, a), "b": ent(owner, b), "w": 1 + (a + b) % 5}
            for a, b in edges[lo : lo + BATCH]
        ]
        await driver.execute_query(
            "UNWIND $rows AS row MATCH (a:Entity {id: row.a}) MATCH (b:Entity {id: row.b}) "
            "CREATE (a)-[:RELATED_TO {weight: row.w, evidence: []}]->(b)",
            {"rows": rows},
            database_=db,
        )
        done += len(rows)
    return Built(n, done, time.perf_counter() - started, done == len(edges))


PG_SCHEMA = """
CREATE TABLE entities (id text PRIMARY KEY, owner text NOT NULL, key text NOT NULL,
                       name text NOT NULL, type text NOT NULL, UNIQUE (owner, key));
CREATE TABLE edges (source_id text NOT NULL, target_id text NOT NULL, owner text NOT NULL,
                    weight int NOT NULL, PRIMARY KEY (source_id, target_id));
CREATE INDEX edges_target ON edges (target_id);
"""

PG_NEIGHBOURS = """
WITH RECURSIVE walk(id, depth) AS (
    SELECT $1::text, 0
    UNION
    SELECT e.target_id, w.depth + 1 FROM walk w JOIN edges e ON e.source_id = w.id
    WHERE w.depth < $2 AND e.weight >= $3 AND e.owner = $4
)
SELECT en.id, en.name, min(w.depth) AS distance FROM walk w JOIN entities en ON en.id = w.id
WHERE en.id <> $1 GROUP BY en.id, en.name ORDER BY distance, en.name LIMIT $5
"""

PG_SHORTEST = """
WITH RECURSIVE walk(id, depth, path) AS (
    SELECT $1::text, 0, ARRAY[$1::text]
    UNION ALL
    SELECT e.target_id, w.depth + 1, w.path || e.target_id FROM walk w
    JOIN edges e ON e.source_id = w.id
    WHERE w.depth < $3 AND e.owner = $4 AND NOT e.target_id = ANY(w.path)
      AND w.id <> $2
)
SELECT path FROM walk WHERE id = $2 ORDER BY depth LIMIT 1
"""


PG_NEXT_LEVEL = "SELECT source_id, target_id FROM edges WHERE owner = $1 AND source_id = ANY($2)"


async def pg_shortest_bfs(
    conn: asyncpg.Connection, source: str, target: str, owner: str, max_depth: int
) -> list[str] | None:
    """Bidirectional breadth-first search, one indexed query per level (the SQLite adapter's
    approach): PostgreSQL as a plain edge store, with the walk in the application."""
    if source == target:
        return [source]
    parents = ({source: ""}, {target: ""})
    frontiers = ([source], [target])
    for _ in range(max_depth):
        side = 0 if len(frontiers[0]) <= len(frontiers[1]) else 1
        seen, other = parents[side], parents[1 - side]
        rows = await conn.fetch(PG_NEXT_LEVEL, owner, frontiers[side])
        nxt = []
        for row in rows:
            node = row["target_id"]
            if node in seen:
                continue
            seen[node] = row["source_id"]
            nxt.append(node)
            if node in other:
                # parents[0] leads back to the source, parents[1] on to the target.
                path = [node]
                while parents[0][path[0]]:
                    path.insert(0, parents[0][path[0]])
                while parents[1][path[-1]]:
                    path.append(parents[1][path[-1]])
                return path
        if not nxt:
            return None
        frontiers = (nxt, frontiers[1]) if side == 0 else (frontiers[0], nxt)
    return None


async def pg_insert_batch(conn: asyncpg.Connection, batch: Batch, owner: str) -> None:
    ids = {e.key: e.id for e in batch.entities}
    sources, targets = [], []
    for r in batch.relations:
        a, b = ids[r.source_key], ids[r.target_key]
        sources += [a, b]
        targets += [b, a]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO entities (id, owner, key, name, type) "
            "SELECT i, $1, k, n, 'ENTITY' FROM unnest($2::text[], $3::text[], $4::text[]) "
            "AS t(i, k, n) ON CONFLICT DO NOTHING",
            owner,
            [e.id for e in batch.entities],
            [e.key for e in batch.entities],
            [e.name for e in batch.entities],
        )
        await conn.execute(
            "INSERT INTO edges (source_id, target_id, owner, weight) "
            "SELECT s, t, $1, 1 FROM unnest($2::text[], $3::text[]) AS x(s, t) "
            "ON CONFLICT (source_id, target_id) DO UPDATE SET weight = edges.weight + 1",
            owner,
            sources,
            targets,
        )


async def build_postgres(
    conn: asyncpg.Connection, owner: str, n: int, edges: list[tuple[int, int]], budget_s: float
) -> Built:
    started = time.perf_counter()
    deadline = started + budget_s
    await conn.copy_records_to_table(
        "entities",
        records=[(ent(owner, i), owner, f"node {i}", f"Node {i}", "ENTITY") for i in range(n)],
        columns=["id", "owner", "key", "name", "type"],
    )
    done = 0
    for lo in range(0, len(edges), BATCH * 5):
        if time.perf_counter() > deadline:
            break
        chunk = edges[lo : lo + BATCH * 5]
        records = []
        for a, b in chunk:
            w = 1 + (a + b) % 5
            records += [
                (ent(owner, a), ent(owner, b), owner, w),
                (ent(owner, b), ent(owner, a), owner, w),
            ]
        await conn.copy_records_to_table(
            "edges", records=records, columns=["source_id", "target_id", "owner", "weight"]
        )
        done += len(chunk)
    await conn.execute("ANALYZE")
    return Built(n, done, time.perf_counter() - started, done == len(edges))


def build_sqlite(
    path: Path, owner: str, n: int, edges: list[tuple[int, int]], budget_s: float
) -> Built:
    started = time.perf_counter()
    deadline = started + budget_s
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO entities (id, owner, key, name, type) VALUES (?, ?, ?, ?, 'ENTITY')",
            ((ent(owner, i), owner, f"node {i}", f"Node {i}") for i in range(n)),
        )
    done = 0
    for lo in range(0, len(edges), BATCH * 5):
        if time.perf_counter() > deadline:
            break
        chunk = edges[lo : lo + BATCH * 5]
        with db:
            db.executemany(
                "INSERT INTO edges (source_id, target_id, owner, weight) VALUES (?, ?, ?, ?)",
                (
                    row
                    for a, b in chunk
                    for row in (
                        (ent(owner, a), ent(owner, b), owner, 1 + (a + b) % 5),
                        (ent(owner, b), ent(owner, a), owner, 1 + (a + b) % 5),
                    )
                ),
            )
        done += len(chunk)
    db.execute("ANALYZE")
    db.close()
    return Built(n, done, time.perf_counter() - started, done == len(edges))


def query_plan(n: int, queries: int, seed: int = 5) -> tuple[list[int], list[tuple[int, int]]]:
    rng = random.Random(seed)
    starts = [rng.randrange(n) for _ in range(queries)]
    pairs = [(rng.randrange(n), rng.randrange(n)) for _ in range(queries)]
    return starts, pairs


# --- the run ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "parameters": {
            "batch_entities": args.batch,
            "batch_relations": args.batch,
            "batch_runs": args.runs,
            "batch_warmup_max_batches": args.warmup_batches,
            "batch_warmup_max_seconds": args.warmup_seconds,
            "target_entities": args.entities,
            "target_relations": args.relations,
            "build_budget_s": args.build_budget,
            "queries": args.queries,
            "neighbour_limit": 200,
            "path_max_depth": 6,
        },
        "stores": {},
    }
    print(f"generating {args.relations:,} random relations over {args.entities:,} entities ...")
    edges = random_edges(args.entities, args.relations)
    starts, pairs = query_plan(args.entities, args.queries)

    neo4j_url = os.environ.get("KGLAB_NEO4J_URL")
    if neo4j_url and "neo4j" in args.stores:
        print("neo4j ...")
        store = Neo4jGraphStore(neo4j_url, max_pool_size=4)
        await store.start()
        owner = f"bench_big_{uuid.uuid4().hex[:8]}"
        try:
            record: dict[str, Any] = {}
            records, _, _ = await store.driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition "
                "RETURN name, versions[0] AS version, edition"
            )
            record["server"] = records[0].data() if records else None
            server = ServerCpu.find(args.neo4j_pid)
            record["insert_1000_1000"] = (
                await adapter_batch_insert(
                    store,
                    args.runs,
                    args.batch,
                    cleanup=True,
                    warmup_batches=args.warmup_batches,
                    warmup_seconds=args.warmup_seconds,
                    server=server,
                )
            ).summary()
            if server is None:
                record["insert_1000_1000"]["server_cpu_note"] = (
                    "not measured: no local Neo4j process (--neo4j-pid)"
                )
            print(f"  insert batch: {record['insert_1000_1000']}")
            if args.breakdown:
                record["insert_breakdown"] = await insert_breakdown(store, args.runs, args.batch)
                print(f"  insert breakdown: {record['insert_breakdown']}")
            built = await build_neo4j(store, owner, args.entities, edges, args.build_budget)
            record["graph"] = built.__dict__
            print(f"  built {built}")
            record.update(await measure_adapter(store, owner, starts, pairs))
        finally:
            if not args.keep:
                await delete_owner(store.driver, owner, timeout_s=600)
            await store.close()
        results["stores"]["neo4j"] = record
    elif "neo4j" in args.stores:
        results["stores"]["neo4j"] = {"skipped": "KGLAB_NEO4J_URL is not set"}

    postgres_url = os.environ.get("KGLAB_POSTGRES_URL")
    if postgres_url and "postgres" in args.stores:
        print("postgres ...")
        results["stores"]["postgres"] = await bench_postgres(
            postgres_url, args, edges, starts, pairs
        )
    elif "postgres" in args.stores:
        results["stores"]["postgres"] = {"skipped": "KGLAB_POSTGRES_URL is not set"}

    if "sqlite" in args.stores:
        print("sqlite ...")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "graph.sqlite3"
            sqlite_store = SqliteGraphStore(path)
            await sqlite_store.start()
            record = {"server": {"name": "SQLite", "version": sqlite3.sqlite_version}}
            try:
                record["insert_1000_1000"] = (
                    await adapter_batch_insert(
                        sqlite_store,
                        args.runs,
                        args.batch,
                        cleanup=False,
                        warmup_batches=min(args.warmup_batches, 5),
                        warmup_seconds=args.warmup_seconds,
                    )
                ).summary()
                owner = "bench_big"
                built = await asyncio.to_thread(
                    build_sqlite, path, owner, args.entities, edges, args.build_budget
                )
                record["graph"] = built.__dict__
                record.update(await measure_adapter(sqlite_store, owner, starts, pairs))
            finally:
                await sqlite_store.close()
            results["stores"]["sqlite"] = record
    return results


async def measure_adapter(
    store: Neo4jGraphStore | SqliteGraphStore,
    owner: str,
    starts: list[int],
    pairs: list[tuple[int, int]],
) -> dict[str, Any]:
    for i in starts[:10]:  # warm-up, not counted
        await store.neighbors(owner, ent(owner, i), depth=2, limit=200)
    neighbours = Timings()
    sizes = []
    for i in starts:
        subgraph = await timed(
            neighbours, lambda i=i: store.neighbors(owner, ent(owner, i), depth=2, limit=200)
        )
        if subgraph is not None:
            sizes.append(len(subgraph.entities) - 1)
    paths = Timings()
    lengths = []
    for a, b in pairs:
        path = await timed(
            paths,
            lambda a=a, b=b: store.shortest_path(owner, ent(owner, a), ent(owner, b), max_depth=6),
        )
        if path is not None:
            lengths.append(path.length)
    return {
        "neighbours_depth2": {
            **neighbours.summary(),
            "mean_neighbours": round(statistics.mean(sizes), 1) if sizes else 0,
        },
        "shortest_path": {
            **paths.summary(),
            "mean_length": round(statistics.mean(lengths), 2) if lengths else None,
        },
    }


async def bench_postgres(
    url: str,
    args: argparse.Namespace,
    edges: list[tuple[int, int]],
    starts: list[int],
    pairs: list[tuple[int, int]],
) -> dict[str, Any]:
    schema = f"bench_graph_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url)
    version = conn.get_server_version()
    record: dict[str, Any] = {"server": {"name": "PostgreSQL", "version": version.major}}
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(PG_SCHEMA)
        rng = random.Random(7)
        inserts = Timings()
        warmup = min(args.warmup_batches, 5)  # no JIT to wait for: caches and plans only
        for run in range(warmup + args.runs):
            owner = f"bench_{uuid.uuid4().hex[:10]}"
            batch = make_batch(owner, f"doc-{owner}", args.batch, rng)
            started = time.perf_counter()
            await pg_insert_batch(conn, batch, owner)
            if run >= warmup:
                inserts.samples_ms.append((time.perf_counter() - started) * 1000)
        record["insert_1000_1000"] = {**inserts.summary(), "warmup": {"batches": warmup}}
        print(f"  insert batch: {record['insert_1000_1000']}")
        owner = "bench_big"
        built = await build_postgres(conn, owner, args.entities, edges, args.build_budget)
        record["graph"] = built.__dict__
        print(f"  built {built}")
        await conn.execute(f"SET statement_timeout = {int(args.pg_timeout * 1000)}")
        for i in starts[:10]:
            await conn.fetch(PG_NEIGHBOURS, ent(owner, i), 2, 1, owner, 200)
        neighbours = Timings()
        for i in starts:
            await timed(
                neighbours,
                lambda i=i: conn.fetch(PG_NEIGHBOURS, ent(owner, i), 2, 1, owner, 200),
            )
        paths = Timings()
        lengths = []
        for a, b in pairs[: args.pg_path_queries]:
            rows = await timed(
                paths,
                lambda a=a, b=b: conn.fetch(PG_SHORTEST, ent(owner, a), ent(owner, b), 6, owner),
            )
            if rows:
                lengths.append(len(rows[0]["path"]) - 1)
        bfs = Timings()
        bfs_lengths = []
        for a, b in pairs:
            found = await timed(
                bfs, lambda a=a, b=b: pg_shortest_bfs(conn, ent(owner, a), ent(owner, b), owner, 6)
            )
            if found:
                bfs_lengths.append(len(found) - 1)
        record["neighbours_depth2"] = neighbours.summary()
        record["shortest_path"] = {
            **paths.summary(),
            "mean_length": round(statistics.mean(lengths), 2) if lengths else None,
            "statement_timeout_s": args.pg_timeout,
            "note": "one recursive CTE enumerating paths; failures are statement_timeout cancels",
        }
        record["shortest_path_bfs"] = {
            **bfs.summary(),
            "mean_length": round(statistics.mean(bfs_lengths), 2) if bfs_lengths else None,
            "note": "bidirectional BFS in the application, one indexed query per level",
        }
    finally:
        await conn.execute("RESET statement_timeout")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    return record


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'store':<9} {'graph (entities/relations)':<28} {'insert 1k+1k med':>17} "
        f"{'nbrs d2 p50':>12} {'nbrs d2 p95':>12} {'path p50':>10} {'path p95':>10} "
        f"{'path fail':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, r in results["stores"].items():
        if "skipped" in r:
            print(f"{name:<9} skipped: {r['skipped']}")
            continue
        if "shortest_path_bfs" in r:
            b = r["shortest_path_bfs"]
            print(
                f"{'':<9} (postgres, BFS in the application: path p50 {b.get('median_ms', '-')} ms,"
                f" p95 {b.get('p95_ms', '-')} ms, failures {b.get('failures', 0)})"
            )
        g = r["graph"]
        size = f"{g['entities']:,}/{g['relations']:,}" + ("" if g["complete"] else " (partial)")
        n, p = r["neighbours_depth2"], r["shortest_path"]
        print(
            f"{name:<9} {size:<28} {r['insert_1000_1000'].get('median_ms', '-'):>14} ms "
            f"{n.get('median_ms', '-'):>9} ms {n.get('p95_ms', '-'):>9} ms "
            f"{p.get('median_ms', '-'):>7} ms {p.get('p95_ms', '-'):>7} ms "
            f"{p.get('failures', 0):>9}"
        )
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} CPUs, {m['cpu_model']}, {m['memory_gib']} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--relations", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=15, help="measured one-batch inserts")
    parser.add_argument(
        "--warmup-batches",
        type=int,
        default=30,
        help="inserts before the measured ones, at most (Neo4j; SQLite and PostgreSQL: 5)",
    )
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="warm-up time, at most")
    parser.add_argument(
        "--neo4j-pid",
        type=int,
        default=None,
        help="the local Neo4j process, for server CPU per insert "
        "(default: the pid file of deploy/local/servers.sh)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pg-path-queries", type=int, default=50)
    parser.add_argument("--pg-timeout", type=float, default=5.0)
    parser.add_argument("--build-budget", type=float, default=180.0)
    parser.add_argument("--stores", default="neo4j,postgres,sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the Neo4j bench graph")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each part of the Neo4j insert as its own statement (with PROFILE hits)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
