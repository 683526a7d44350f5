"""Calibrates search's "nothing relevant" threshold on the retrieval set (adr/0024).

    .venv/bin/python bench/bench_search_threshold.py

Indexes tests/data/retrieval (800 chunks) into Qdrant's local mode with the real ONNX model,
then takes, for each of its 90 queries (every one has a relevant chunk) and for the off-topic
queries of tests/data/retrieval/off_topic.jsonl (none has), the best dense (cosine) score of a
dense-only search. The threshold chosen is the highest that keeps every on-topic query whose
relevant chunk hybrid search finds in its top ten (so recall@10 is unchanged), with a margin
below it; the table shows, for thresholds around it and with the service's whole rule (below
the threshold a query is still answered when a chunk has every one of its words), the share of
off-topic queries answered with nothing and of on-topic queries lost. Writes
bench/results/search_threshold.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import save  # noqa: E402
from qdrant_client import AsyncQdrantClient  # noqa: E402

from kglab_vector.cache.memory import InMemorySearchCache  # noqa: E402
from kglab_vector.domain import SearchFilters, SearchQuery  # noqa: E402
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


async def run() -> dict[str, Any]:
    indexer = Indexer(OnnxEmbedder(threads=2, batch_size=32), Bm25SparseEncoder())
    store = QdrantVectorStore(AsyncQdrantClient(location=":memory:"), "calibrate", local=True)
    await store.open(indexer.space)
    await store.upsert(await indexer.index(load_records()))
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
        empty = 0
        for text in off_queries:
            empty += not await service._search(SearchQuery(owner_id=OWNER, text=text, limit=10))
        lost = 0
        for query, hits in zip(queries, on_hits, strict=True):
            relevant = set(query["relevant"])  # type: ignore[call-overload]
            if not set(hits) & relevant:
                continue
            answer = await service._search(
                SearchQuery(owner_id=OWNER, text=str(query["query"]), limit=10)
            )
            lost += not {h.chunk_id for h in answer} & relevant
        table.append(
            {
                "threshold": candidate,
                "off_topic_rejected": round(empty / len(off_queries), 3),
                "on_topic_found_lost": round(lost / len(found), 3),
            }
        )
    await store.close()
    return {
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
    print(f"{'threshold':>10}{'off-topic rejected':>20}{'on-topic lost':>15}")
    for row in result["table"]:
        print(
            f"{row['threshold']:>10.3f}{row['off_topic_rejected']:>20.3f}"
            f"{row['on_topic_found_lost']:>15.3f}"
        )
    print(f"chosen threshold: {result['threshold']}")
    path = save("search_threshold", {"loadavg": load, **result})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
