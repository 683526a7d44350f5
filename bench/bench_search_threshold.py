"""Calibrates search's "nothing relevant" threshold on the retrieval set (adr/0024).

    .venv/bin/python bench/bench_search_threshold.py

Indexes tests/data/retrieval (800 chunks) into Qdrant's local mode with the real ONNX model,
then takes, for each of its 90 queries (every one has a relevant chunk) and for the off-topic
queries of tests/data/retrieval/off_topic.jsonl (none has), the best dense (cosine) score of a
dense-only search. The threshold chosen is the highest that keeps every on-topic query whose
relevant chunk hybrid search finds in its top ten (so recall@10 is unchanged), with a margin
below it; the table shows, for thresholds around it and with the service's whole rule (below
the threshold a query is still answered when a chunk has every one of its words), the share of
off-topic queries answered with nothing and of on-topic queries lost, recall@10 and MRR of the
answers, and how many hits they hold; each threshold twice, as the service runs it (the
threshold is also each chunk's floor into the fusion: a chunk enters by meaning only when that
close, else by its words) and as it ran before (the threshold only gates, fusion fills the
limit). Writes bench/results/search_threshold.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import save  # noqa: E402
from qdrant_client import AsyncQdrantClient  # noqa: E402

from kglab_vector.cache.memory import InMemorySearchCache  # noqa: E402
from kglab_vector.domain import (  # noqa: E402
    IndexedChunk,
    SearchFilters,
    SearchHit,
    SearchQuery,
)
from kglab_vector.embedding.onnx import OnnxEmbedder  # noqa: E402
from kglab_vector.embedding.sparse import Bm25SparseEncoder  # noqa: E402
from kglab_vector.service import Indexer, VectorService  # noqa: E402
from kglab_vector.store.qdrant import QdrantVectorStore  # noqa: E402
from tests.integration.vector.test_retrieval_quality import (  # noqa: E402
    DATA,
    OWNER,
    load_queries,
    load_records,
)

#: Below the lowest on-topic score by this much, so a slightly different wording still passes.
MARGIN = 0.05


def load_off_topic() -> list[str]:
    lines = (DATA / "off_topic.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["query"] for line in lines if line]


async def top_scores(
    store: QdrantVectorStore, indexer: Indexer, texts: list[str]
) -> tuple[list[float], list[list[str]]]:
    scores, hybrid_ids = [], []
    for text in texts:
        dense = await indexer.embed_query(text)
        best = await store.search(OWNER, dense=dense, sparse=None, limit=1, filters=SearchFilters())
        scores.append(best[0].score if best else 0.0)
        hits = await store.search(
            OWNER,
            dense=dense,
            sparse=indexer.sparse.encode_query(text),
            limit=10,
            filters=SearchFilters(),
        )
        hybrid_ids.append([h.chunk_id for h in hits])
    return scores, hybrid_ids


def _kind(chunk_id: str) -> str:
    return chunk_id.split("-", 1)[0]


async def _floored(service: VectorService, text: str, owner: str = OWNER) -> list[SearchHit]:
    return await service._search(SearchQuery(owner_id=owner, text=text, limit=10))


async def _unfloored(service: VectorService, text: str, owner: str = OWNER) -> list[SearchHit]:
    """The service before adr/0024's per-chunk floor: the threshold gates, fusion fills."""
    query = SearchQuery(owner_id=owner, text=text, limit=10)
    dense = await service.indexer.embed_query(text)
    sparse = service.indexer.sparse.encode_query(text)
    if not await service._anything_relevant(query, dense, sparse):
        return []
    return await service.store.search(
        owner, dense=dense, sparse=sparse, limit=10, filters=SearchFilters()
    )


async def small_libraries(
    store: QdrantVectorStore,
    service: VectorService,
    indexed: list[IndexedChunk],
    queries: list[dict[str, object]],
) -> dict[str, Any]:
    """The review's case: a user with a few documents, one about the query. Per query, a library
    of the relevant document and four documents of other kinds (seeded draw), searched as the
    service does with and without the per-chunk floor."""
    by_document: dict[str, list[IndexedChunk]] = {}
    for chunk in indexed:
        by_document.setdefault(chunk.record.document_id, []).append(chunk)
    rng = random.Random(7)
    rows: dict[str, dict[str, list[int]]] = {
        name: {"found": [], "other": []} for name in ("floor", "no_floor")
    }
    for n, query in enumerate(queries):
        relevant = set(query["relevant"])  # type: ignore[call-overload]
        kinds = {_kind(c) for c in relevant}
        own = {c.record.document_id for c in indexed if c.record.chunk_id in relevant}
        others = sorted(d for d in by_document if _kind(d) not in kinds)
        owner = f"library-{n}"
        library = [*own, *rng.sample(others, 4)]
        await store.upsert(
            [
                replace(chunk, record=replace(chunk.record, owner_id=owner))
                for document in library
                for chunk in by_document[document]
            ]
        )
        for name, answer_of in (("floor", _floored), ("no_floor", _unfloored)):
            ids = [h.chunk_id for h in await answer_of(service, str(query["query"]), owner)]
            rows[name]["found"].append(bool(set(ids) & relevant))
            rows[name]["other"].append(sum(_kind(c) not in kinds for c in ids))
    return {
        "libraries": len(queries),
        "documents_each": 5,
        "threshold": service.min_relevance,
        **{
            name: {
                "relevant_found": round(statistics.mean(row["found"]), 3),
                "other_kind_hits_mean": round(statistics.mean(row["other"]), 2),
                "answers_with_other_kind": sum(o > 0 for o in row["other"]),
            }
            for name, row in rows.items()
        },
    }


async def run() -> dict[str, Any]:
    indexer = Indexer(OnnxEmbedder(threads=2, batch_size=32), Bm25SparseEncoder())
    store = QdrantVectorStore(AsyncQdrantClient(location=":memory:"), "calibrate", local=True)
    await store.open(indexer.space)
    indexed = await indexer.index(load_records())
    await store.upsert(indexed)
    queries = load_queries()
    on_scores, on_hits = await top_scores(store, indexer, [str(q["query"]) for q in queries])
    off_queries = load_off_topic()
    off_scores, _ = await top_scores(store, indexer, off_queries)
    found = [
        score
        for score, hits, query in zip(on_scores, on_hits, queries, strict=True)
        if set(hits) & set(query["relevant"])  # type: ignore[call-overload]
    ]
    threshold = round(min(found) - MARGIN, 3)
    # The service's whole rule (dense threshold, or a chunk with every word of the query), per
    # threshold: off-topic queries answered with nothing, on-topic hits lost.
    table = []
    for candidate in sorted({threshold, 0.2, 0.25, 0.3, 0.35, 0.4}):
        service = VectorService(store, indexer, InMemorySearchCache(), min_relevance=candidate)
        # Each threshold twice, side by side: as the service runs it (the threshold is also
        # each chunk's floor into the fusion) and as it ran before (the threshold only decides
        # whether anything is returned, then fusion fills the limit).
        for floored in (True, False):
            answer_of = _floored if floored else _unfloored
            empty, off_hits = 0, []
            for text in off_queries:
                answer = await answer_of(service, text)
                empty += not answer
                off_hits.append(len(answer))
            lost, ranks, on_answer_hits, other_kind = 0, [], [], []
            for query, hits in zip(queries, on_hits, strict=True):
                relevant = set(query["relevant"])  # type: ignore[call-overload]
                answer_ids = [h.chunk_id for h in await answer_of(service, str(query["query"]))]
                on_answer_hits.append(len(answer_ids))
                # The set's documents are of five kinds (town, river, festival, beetle,
                # inventor): a hit of another kind than the relevant chunk's is a weak one.
                kinds = {_kind(c) for c in relevant}
                other_kind.append(sum(_kind(c) not in kinds for c in answer_ids))
                rank = next((i for i, c in enumerate(answer_ids, 1) if c in relevant), None)
                ranks.append(rank)
                if set(hits) & relevant:
                    lost += rank is None
            table.append(
                {
                    "threshold": candidate,
                    "floor_per_chunk": floored,
                    "off_topic_rejected": round(empty / len(off_queries), 3),
                    "on_topic_found_lost": round(lost / len(found), 3),
                    "recall_at_10": round(sum(r is not None for r in ranks) / len(ranks), 3),
                    "mrr": round(sum(1 / r for r in ranks if r is not None) / len(ranks), 3),
                    "on_topic_hits_mean": round(statistics.mean(on_answer_hits), 2),
                    "on_topic_answers_under_10": sum(n < 10 for n in on_answer_hits),
                    "on_topic_other_kind_hits_mean": round(statistics.mean(other_kind), 2),
                    "off_topic_hits_mean": round(statistics.mean(off_hits), 2),
                }
            )
    libraries = await small_libraries(
        store,
        VectorService(store, indexer, InMemorySearchCache(), min_relevance=threshold),
        indexed,
        queries,
    )
    await store.close()
    return {
        "small_libraries": libraries,
        "model": "onnx MiniLM (the service's embedder), dense cosine of the best chunk",
        "on_topic_queries": len(queries),
        "on_topic_found_by_hybrid_top10": len(found),
        "off_topic_queries": len(off_queries),
        "on_topic_score": {
            "min": round(min(found), 4),
            "median": round(statistics.median(found), 4),
        },
        "off_topic_score": {
            "max": round(max(off_scores), 4),
            "median": round(statistics.median(off_scores), 4),
        },
        "margin": MARGIN,
        "threshold": threshold,
        "table": table,
        "off_topic_above_threshold": [
            {"query": q, "score": round(s, 4)}
            for q, s in zip(off_queries, off_scores, strict=True)
            if s >= threshold
        ],
    }


def main() -> int:
    load = os.getloadavg()
    result = asyncio.run(run())
    print(
        f"on-topic best-chunk cosine: min {result['on_topic_score']['min']}, median "
        f"{result['on_topic_score']['median']}; off-topic: max {result['off_topic_score']['max']}, "
        f"median {result['off_topic_score']['median']}"
    )
    print(
        f"{'threshold':>10}{'floor':>7}{'off-topic rejected':>20}{'on-topic lost':>15}"
        f"{'R@10':>7}{'MRR':>7}{'hits on':>9}{'<10':>5}{'other kind':>12}{'hits off':>10}"
    )
    for row in result["table"]:
        print(
            f"{row['threshold']:>10.3f}{'yes' if row['floor_per_chunk'] else 'no':>7}"
            f"{row['off_topic_rejected']:>20.3f}{row['on_topic_found_lost']:>15.3f}"
            f"{row['recall_at_10']:>7.3f}{row['mrr']:>7.3f}{row['on_topic_hits_mean']:>9.2f}"
            f"{row['on_topic_answers_under_10']:>5}{row['on_topic_other_kind_hits_mean']:>12.2f}"
            f"{row['off_topic_hits_mean']:>10.2f}"
        )
    print(f"chosen threshold: {result['threshold']}")
    lib = result["small_libraries"]
    for name in ("no_floor", "floor"):
        print(
            f"small libraries ({lib['libraries']} of {lib['documents_each']} documents), {name}: "
            f"relevant found {lib[name]['relevant_found']}, other-kind hits per answer "
            f"{lib[name]['other_kind_hits_mean']}, answers with any "
            f"{lib[name]['answers_with_other_kind']}"
        )
    path = save("search_threshold", {"loadavg": load, **result})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
