"""Document list and get latency on 10,000 documents, for each ``DocumentStore`` adapter.

One run compares the stores side by side on the same documents: the embedded SQLite adapter,
always, and the Mongo adapter on every ``--mongo-url`` given, or else on ``KGLAB_MONGO_URL``
(SecantusDB from ``make servers``, adr/0015; MongoDB where it runs). Each adapter gets a fresh
store (a temp file, or a database of its own dropped afterwards). For a Mongo adapter the report
also keeps, per operation, the plan the server says it uses (``explain``: the winning plan's
stages and index). Target: p95 under 10 ms for list and get.

    uv run python bench/bench_documents.py [--documents 10000] [--samples 500] \
        [--mongo-url URL ...] [--output FILE]

Writes ``bench/results/documents.json`` (``--output`` for smoke runs).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from machine import describe

from kglab_document.domain import (
    Chunk,
    Document,
    DocumentCursor,
    DocumentFilters,
    SortOrder,
)
from kglab_document.store.file import SqliteDocumentStore
from kglab_document.store.port import DocumentStore

RESULTS = Path(__file__).parent / "results" / "documents.json"
REPO = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 10.0
OWNER = "bench-owner"
MEDIA_TYPES = ("application/pdf", "text/plain", "text/html", "text/markdown")
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def make_documents(count: int, rng: random.Random) -> list[tuple[Document, list[Chunk]]]:
    documents = []
    for i in range(count):
        # Every tenth document belongs to someone else, so owner filtering is exercised too.
        owner = OWNER if i % 10 else f"other-{i % 7}"
        doc_id = f"doc-{i:06d}-{uuid.uuid4().hex[:8]}"
        document = Document(
            id=doc_id,
            owner_id=owner,
            job_id=f"job-{i}",
            title=f"Report {rng.randrange(100_000):05d}",
            media_type=MEDIA_TYPES[i % len(MEDIA_TYPES)],
            source=f"file-{i % 50}.pdf",
            created_at=BASE + timedelta(seconds=rng.randrange(86_400 * 300)),
            chunk_count=2,
            metadata={"pages": rng.randrange(1, 40)},
            provenance={"source_name": f"file-{i % 50}.pdf", "sha256": "ab" * 32},
        )
        chunks = [
            Chunk(doc_id, owner, f"{doc_id}-{p}", p, f"Paragraph {p} of document {i}.")
            for p in range(2)
        ]
        documents.append((document, chunks))
    return documents


Seeder = Callable[[DocumentStore, list[tuple[Document, list[Chunk]]]], Awaitable[None]]


async def seed(store: DocumentStore, documents: list[tuple[Document, list[Chunk]]]) -> None:
    """Through the port, as the consumer stores them."""
    gate = asyncio.Semaphore(32)

    async def one(document: Document, chunks: list[Chunk]) -> None:
        async with gate:
            await store.save_extracted(document, chunks)

    for offset in range(0, len(documents), 1000):
        await asyncio.gather(*(one(d, c) for d, c in documents[offset : offset + 1000]))


@dataclass(frozen=True)
class Budget:
    """How much each measured operation may take: up to ``samples`` calls, stopping once
    ``seconds`` are spent and at least ``min_samples`` were taken (a slow adapter still
    finishes; the sample count actually taken is reported)."""

    samples: int
    seconds: float = 30.0
    min_samples: int = 20


async def measure(call: Callable[[], Awaitable[Any]], budget: Budget) -> dict[str, float]:
    # Warm-up: up to 10 calls, cut short after 2 s so a multi-second operation costs one or two.
    warm_until = time.perf_counter() + 2.0
    for _ in range(min(10, budget.samples)):
        await call()
        if time.perf_counter() > warm_until:
            break
    timings: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    for _ in range(budget.samples):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
        if started > deadline and len(timings) >= budget.min_samples:
            break
    timings.sort()
    return {
        "samples": len(timings),
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 3),
        "p99_ms": round(timings[int(0.99 * (len(timings) - 1))], 3),
        "max_ms": round(timings[-1], 3),
    }


@dataclass(frozen=True)
class Shape:
    """One measured operation as the store sees it: a listing (filters, sort, cursor) or a get."""

    filters: DocumentFilters | None = None
    sort: SortOrder = SortOrder.NEWEST
    deep: bool = False


OPERATIONS: dict[str, Shape] = {
    "list_first_page": Shape(DocumentFilters()),
    "list_deep_page": Shape(DocumentFilters(), deep=True),
    "list_filtered_type": Shape(DocumentFilters(media_type="text/plain")),
    "list_sorted_title": Shape(DocumentFilters(), sort=SortOrder.TITLE),
    "get": Shape(),
}
PAGE = 20

# (operation, query shape, a cursor or a document id) -> the plan the server says it uses
Explainer = Callable[[str, Shape, Any], Awaitable[dict[str, Any]]]


@dataclass
class Adapter:
    store: DocumentStore
    seeder: Seeder
    labels: dict[str, Any]
    explain: Explainer | None = None


async def bench_store(
    adapter: Adapter, documents: list[tuple[Document, list[Chunk]]], budget: Budget
) -> dict[str, Any]:
    store = adapter.store
    rng = random.Random(11)
    started = time.perf_counter()
    await adapter.seeder(store, documents)
    seed_s = time.perf_counter() - started
    mine = [d for d, _ in documents if d.owner_id == OWNER]

    # Cursors from all over the listing, so deep pages are measured, not only the first.
    by_time = sorted(mine, key=lambda d: (d.created_at, d.id), reverse=True)
    cursors = [
        DocumentCursor.after(SortOrder.NEWEST, d)
        for d in rng.sample(by_time, min(100, len(by_time)))
    ]

    def call(shape: Shape) -> Callable[[], Awaitable[None]]:
        if shape.filters is None:

            async def get_one() -> None:
                assert await store.get(OWNER, rng.choice(mine).id) is not None

            return get_one
        filters = shape.filters

        async def list_page() -> None:
            page = await store.list_documents(
                OWNER,
                filters=filters,
                sort=shape.sort,
                limit=PAGE,
                after=rng.choice(cursors) if shape.deep else None,
            )
            assert shape.deep or len(page.items) == PAGE

        return list_page

    result: dict[str, Any] = {
        "documents": len(documents),
        "owner_documents": len(mine),
        "seed_s": round(seed_s, 2),
    }
    for name, shape in OPERATIONS.items():
        result[name] = await measure(call(shape), budget)
    if adapter.explain is not None:
        result["plans"] = {
            name: await adapter.explain(
                name, shape, mine[0].id if shape.filters is None else cursors[0]
            )
            for name, shape in OPERATIONS.items()
        }
    return result


@asynccontextmanager
async def file_store() -> AsyncIterator[Adapter]:
    with tempfile.TemporaryDirectory(prefix="kglab-bench-") as folder:
        store = await SqliteDocumentStore.open(Path(folder) / "documents.sqlite3")
        try:
            yield Adapter(
                store, seed, {"adapter": "file (SQLite via aiosqlite)", "seeded_by": "port"}
            )
        finally:
            await store.close()


def _plan_head(planner: Any) -> str:
    """The winning plan's stages, outermost first, with the index each scan reads."""
    stages = []
    winning = planner.get("winningPlan") if isinstance(planner, dict) else None
    while isinstance(winning, dict):
        index = winning.get("indexName")
        stages.append(f"{winning.get('stage')}" + (f" {index}" if index else ""))
        inputs = winning.get("inputStages") or [winning.get("inputStage")]
        winning = inputs[0]  # the first branch of an OR, if any
    return " <- ".join(stages) or str(planner)[:200]


@asynccontextmanager
async def mongo_store(url: str) -> AsyncIterator[Adapter]:
    from pymongo import AsyncMongoClient

    from kglab_document.store import mongo

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = f"kglab_bench_{uuid.uuid4().hex[:8]}"
    try:
        info = await client.admin.command("buildInfo")
        database = client[name]
        store = mongo.MongoDocumentStore(database)
        await store.ensure_indexes()

        async def bulk_seed(
            _: DocumentStore, documents: list[tuple[Document, list[Chunk]]]
        ) -> None:
            # Bulk inserts of the adapter's own mapping: the same data as saves through the
            # port, in seconds.
            for offset in range(0, len(documents), 1000):
                batch = documents[offset : offset + 1000]
                await database["documents"].insert_many(
                    [{"_id": d.id, **mongo._document_to_mongo(d)} for d, _ in batch],
                    ordered=False,
                )
                await database["chunks"].insert_many(
                    [
                        {"_id": mongo._chunk_key(c), **mongo._chunk_to_mongo(c)}
                        for _, chunks in batch
                        for c in chunks
                    ],
                    ordered=False,
                )

        async def explain(_: str, shape: Shape, target: Any) -> dict[str, Any]:
            # The very query the adapter sends (list_query), or get's lookup.
            command: dict[str, Any] = {"find": "documents"}
            if shape.filters is None:
                command.update(filter={"_id": target, "owner_id": OWNER}, limit=1)
            else:
                query, order = mongo.list_query(
                    OWNER,
                    filters=shape.filters,
                    sort=shape.sort,
                    after=target if shape.deep else None,
                )
                command.update(filter=query, sort=dict(order), limit=PAGE + 1)
            answer = await database.command("explain", command)
            return {"plan": _plan_head(answer.get("queryPlanner"))}

        server = str(info.get("version", "?"))
        secantus = info.get("secantusVersion")
        label = f"SecantusDB {secantus}" if secantus else f"MongoDB {server}"
        yield Adapter(
            store,
            bulk_seed,
            {"adapter": f"mongo ({label}, wire version {server})", "seeded_by": "bulk insert"},
            explain,
        )
    finally:
        await client.drop_database(name)
        await client.close()


def machine() -> dict[str, Any]:
    return {
        **describe(),
        "pymongo": version("pymongo"),
        "aiosqlite": version("aiosqlite"),
        "sqlite": __import__("sqlite3").sqlite_version,
    }


def adapters(mongo_urls: list[str]) -> list[Callable[[], Any]]:
    factories: list[Callable[[], Any]] = [file_store]
    if not mongo_urls and os.environ.get("KGLAB_MONGO_URL"):
        mongo_urls = [os.environ["KGLAB_MONGO_URL"]]
    factories.extend(functools.partial(mongo_store, url) for url in mongo_urls)
    if len(factories) == 1:
        print("no Mongo adapter to measure (run `make servers`, or give --mongo-url).")
    return factories


async def main(arguments: argparse.Namespace) -> int:
    documents = make_documents(arguments.documents, random.Random(5))
    budget = Budget(arguments.samples, arguments.budget, arguments.min_samples)
    results = []
    for factory in adapters(arguments.mongo_url or []):
        async with factory() as adapter:
            print(
                f"{adapter.labels['adapter']}: seeding {arguments.documents} documents ...",
                flush=True,
            )
            results.append({**adapter.labels, **await bench_store(adapter, documents, budget)})

    # Side by side: one block per operation, one line per adapter.
    width = max(len(r["adapter"]) for r in results)
    print(f"\n{'operation':<20} {'adapter':<{width}} {'p50 ms':>9} {'p95 ms':>9} {'n':>4}  plan")
    for op in OPERATIONS:
        for result in results:
            row = result[op]
            where = result.get("plans", {}).get(op, {}).get("plan", "")
            print(
                f"{op:<20} {result['adapter']:<{width}} {row['p50_ms']:>9.2f} "
                f"{row['p95_ms']:>9.2f} {row['samples']:>4}  {where}"
            )
    worst = max(r[op]["p95_ms"] for r in results for op in OPERATIONS)
    report = {
        "benchmark": "documents",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "target_p95_ms": TARGET_P95_MS,
        "worst_p95_ms": worst,
        "meets_target": worst < TARGET_P95_MS,
        "per_adapter_worst_p95_ms": {
            r["adapter"]: max(r[op]["p95_ms"] for op in OPERATIONS) for r in results
        },
        "budget": {
            "samples": budget.samples,
            "seconds": budget.seconds,
            "min_samples": budget.min_samples,
        },
        "machine": machine(),
        "results": results,
    }
    output = Path(arguments.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nworst p95 {worst:.2f} ms (target < {TARGET_P95_MS} ms); wrote {output}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds per operation before stopping early"
    )
    parser.add_argument(
        "--min-samples", type=int, default=20, help="samples taken even past the budget"
    )
    parser.add_argument(
        "--mongo-url", action="append", help="a running MongoDB-wire server (repeatable)"
    )
    parser.add_argument("--output", default=str(RESULTS))
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments)))
