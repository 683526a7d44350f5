"""Databases at 10,000 records side by side (issue 16): PostgreSQL, the MongoDB-wire server
(SecantusDB in ``make servers``), Neo4j and Redis, on the servers of ``make servers``; the
common queries and one complex query each, p50/p95, interleaved so that every store runs under
the same load. The study itself is ``research/databases.py``.

    eval "$(bash deploy/local/servers.sh env)"
    .venv/bin/python bench/bench_databases.py [--samples 300] [--complex-samples 15] [--budget 90]

Writes ``bench/results/databases.json`` with the machine and its load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import save

from research.databases import COMPLEX_QUERY, OWNERS, PAGE, RECORDS, Budget, server_urls, study

COLUMNS = ("get", "page", "update", "delete", "complex")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="per common query and store")
    parser.add_argument("--complex-samples", type=int, default=15)
    parser.add_argument("--budget", type=float, default=90.0, help="seconds per phase, at most")
    args = parser.parse_args()
    urls = server_urls()
    if urls is None:
        print("databases: needs the PostgreSQL, MongoDB, Neo4j and Redis URLs of make servers")
        return 0 if not os.environ.get("KGLAB_REQUIRE_BACKENDS") else 1
    budget = Budget(args.samples, args.complex_samples, args.budget)
    load_start = os.getloadavg()
    results = asyncio.run(study(urls, budget))
    print(f"{'store':<48} {'insert ms':>10}" + "".join(f" {c + ' p50/p95':>20}" for c in COLUMNS))
    for row in results:
        ops = row["operations"]
        cells = "".join(
            f" {ops[c]['p50_ms']:>9.1f}/{ops[c]['p95_ms']:<9.1f}"
            + ("" if ops[c]["correct"] else "!")
            for c in COLUMNS
        )
        print(f"{row['store']:<48} {ops['insert_10000']['median_ms']:>10.0f}{cells}")
    path = save(
        "databases",
        {
            "benchmark": "databases at 10,000 records, side by side",
            "records": RECORDS,
            "owners": OWNERS,
            "page_size": PAGE,
            "complex_query": COMPLEX_QUERY,
            "samples": budget.samples,
            "complex_samples": budget.complex_samples,
            "seconds_per_phase": budget.seconds_per_phase,
            "loadavg_at_start": [round(x, 2) for x in load_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "results": results,
        },
    )
    print(f"wrote {path}")
    ok = all(op.get("correct", True) for row in results for op in row["operations"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
