"""API frameworks side by side (issue 16): the same five endpoints in FastAPI, Flask and Django
REST Framework, each in one server process, loaded by bench/loadgen at 50 users. The study
itself is ``research/api/``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import save

from research.api.study import run

RATE = int(os.environ.get("KGLAB_BENCH_FRAMEWORK_RATE", "200"))
SECONDS = int(os.environ.get("KGLAB_BENCH_FRAMEWORK_SECONDS", "10"))


def main() -> int:
    load_start = os.getloadavg()[0]
    results = run(rate=RATE, seconds=SECONDS)
    print(f"{'framework':<24} {'LOC':>4} {'steps':>5} {'list p95':>9} {'search p95':>11}")
    for r in results["results"]:
        listing, search = r.get("load_list", {}), r.get("load_search", {})
        print(
            f"{r['framework']:<24} {r['lines_of_code']:>4} {r['openapi_manual_steps']:>5} "
            f"{listing.get('p95_ms', float('nan')):>8.1f} "
            f"{search.get('p95_ms', float('nan')):>10.1f}"
        )
    path = save(
        "frameworks",
        {
            "benchmark": "API frameworks side by side",
            "load_1m_at_start": round(load_start, 2),
            "load_1m_at_end": round(os.getloadavg()[0], 2),
            **results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
