"""Job queues side by side (issue 16): RabbitMQ, Redis Streams and a PostgreSQL table with
SKIP LOCKED, on the servers of ``make servers``. The study itself is ``research/queues.py``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import save

from research.queues import RETRIES, server_urls, study


def main() -> int:
    urls = server_urls()
    if urls is None:
        print("queues: needs the RabbitMQ, Redis and PostgreSQL URLs of make servers")
        return 0 if not os.environ.get("KGLAB_REQUIRE_BACKENDS") else 1
    load_start = os.getloadavg()[0]
    results = asyncio.run(study(urls))
    print(f"{'queue':<24} {'100 jobs':>9} {'correct':>8} {'jobs/s':>8} {'p95 ms':>8} {'crash':>22}")
    for r in results:
        crash = r["crash"]
        crash_text = (
            f"redone after {crash['seconds_after_the_crash']} s" if not crash["lost"] else "LOST"
        )
        print(
            f"{r['queue']:<24} {r['failures']['seconds']:>8.2f}s {r['failures']['correct']!s:>8} "
            f"{r['load']['jobs_per_s']:>8.0f} {r['load']['backlog_latency_p95_ms']:>8.0f} "
            f"{crash_text:>22}"
        )
    path = save(
        "queues",
        {
            "benchmark": "job queues side by side",
            "retries": RETRIES,
            "load_1m_at_start": round(load_start, 2),
            "load_1m_at_end": round(os.getloadavg()[0], 2),
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0 if all(r["failures"]["correct"] and not r["crash"]["lost"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
