"""Webhook delivery throughput (adr/0028): changes turned into deliveries, then sent, signed,
to a receiver on 127.0.0.1 that answers 204 at once.

For each store (SQLite as ``make dev`` runs it; PostgreSQL when ``KGLAB_POSTGRES_URL`` is set)
and each sender concurrency (1 and 8 deliveries in flight), side by side in one run: N
completed jobs of one owner with one subscribed endpoint; the time to dispatch them (one
transaction per 200 changes) and to send them all (claim, sign, POST, record the attempt).
Three rounds each, medians reported. Bounded: N=200, every phase under a 120 s deadline.
The machine is shared and loaded: ``os.getloadavg()`` is recorded, and absolute numbers are
inflated; the ratios are what to read. Writes ``bench/results/webhooks.json``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("KGLAB_ENVIRONMENT", "test")

from aiohttp import web

from bench.machine import save
from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.domain import IngestionJob, JobStatus, SourceKind, new_job_id, utc_now
from kglab_ingestion.store.sql import SqlJobStore, create_engine, sqlite_url
from kglab_ingestion.webhooks.domain import WebhookEndpoint
from kglab_ingestion.webhooks.schemas import render_event
from kglab_ingestion.webhooks.sender import WebhookSender
from kglab_ingestion.webhooks.signing import SecretBox, new_secret
from kglab_ingestion.webhooks.store_sql import SqlWebhookStore

N = 200
ROUNDS = 3
DEADLINE_S = 120.0


class Receiver:
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        return web.Response(status=204)


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield target, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield sqlite_url(Path(folder) / "jobs.sqlite3")
        return
    from tests.isolation import fresh_postgres_database

    async with fresh_postgres_database(
        os.environ["KGLAB_POSTGRES_URL"], prefix="kglab_bench"
    ) as url:
        yield url


async def one_round(kind: str, concurrency: int) -> dict[str, float]:
    settings = IngestionSettings(
        allowed_networks="127.0.0.1/32",  # type: ignore[arg-type]
        webhook_concurrency=concurrency,
        webhook_timeout_s=10,
    )
    async with database(kind) as db, receiver() as (target, hook):
        jobs = SqlJobStore(create_engine(db))
        await jobs.migrate()
        store = SqlWebhookStore(jobs.engine)
        box = SecretBox("bench-sealing-key-0123456789")
        created = utc_now() - timedelta(minutes=5)
        endpoint = WebhookEndpoint(
            id=new_job_id(),
            owner_id="owner",
            url=hook,
            description=None,
            events=("job.completed",),
            enabled=True,
            created_at=created,
            updated_at=created,
        )
        await store.create_endpoint(endpoint, box.seal(new_secret(), endpoint.id), limit=10)
        moment = utc_now() - timedelta(seconds=10)
        for _ in range(N):
            await jobs.create(
                IngestionJob(
                    id=new_job_id(),
                    owner_id="owner",
                    source_kind=SourceKind.URL,
                    source_name="https://example.org/",
                    url="https://example.org/",
                    status=JobStatus.COMPLETED,
                    progress=100,
                    created_at=moment,
                    updated_at=moment,
                ),
                None,
            )
        sender = WebhookSender(settings=settings, store=store, box=box, render=render_event)
        try:
            async with asyncio.timeout(DEADLINE_S):
                started = time.perf_counter()
                made = await sender.dispatch()
                dispatched = time.perf_counter()
                while await sender.send_due():
                    pass
                sent = time.perf_counter()
        finally:
            await sender.stop()
            await jobs.close()
        assert made == N, made
        assert target.count == N, target.count
    return {
        "dispatch_s": dispatched - started,
        "send_s": sent - dispatched,
        "deliveries_per_s": N / (sent - dispatched),
    }


async def main() -> int:
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("KGLAB_POSTGRES_URL") else [])
    results: list[dict[str, Any]] = []
    for kind in kinds:
        for concurrency in (1, 8):
            rounds = [await one_round(kind, concurrency) for _ in range(ROUNDS)]
            row = {
                "store": kind,
                "concurrency": concurrency,
                "deliveries": N,
                "median_dispatch_s": round(statistics.median(r["dispatch_s"] for r in rounds), 3),
                "median_send_s": round(statistics.median(r["send_s"] for r in rounds), 3),
                "median_deliveries_per_s": round(
                    statistics.median(r["deliveries_per_s"] for r in rounds), 1
                ),
            }
            results.append(row)
            print(
                f"{kind:9} concurrency {concurrency}: dispatch {row['median_dispatch_s']:.3f} s, "
                f"send {row['median_send_s']:.3f} s, {row['median_deliveries_per_s']:.0f}/s",
                flush=True,
            )
    ratios = {}
    for kind in kinds:
        one, eight = (
            next(r for r in results if r["store"] == kind and r["concurrency"] == c) for c in (1, 8)
        )
        ratios[kind] = round(eight["median_deliveries_per_s"] / one["median_deliveries_per_s"], 2)
        print(f"{kind}: concurrency 8 sends {ratios[kind]}x as fast as 1")
    path = save(
        "webhooks",
        {
            "loadavg": list(os.getloadavg()),
            "note": "shared 2-core machine under load; absolute times inflated, read the ratios",
            "rounds": ROUNDS,
            "results": results,
            "speedup_concurrency_8_over_1": ratios,
        },
    )
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
