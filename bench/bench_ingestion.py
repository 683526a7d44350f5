"""End to end ingestion throughput: N small files uploaded through the gateway until every job
is completed, on real RabbitMQ and PostgreSQL (jobs), GridFS (blobs) and Redis (progress).

The system runs as ``make dev`` composes it (``deploy/dev/run.py``, one uvicorn process on
loopback) but with the real bus and the ingestion service's real stores; the other services stay
embedded. A share of the files (``--flaky``) fails its first attempt with a retryable error
(the fault-injection setting ``KGLAB_INGESTION_DEBUG_FAIL_MARKER``), so the retry path (release,
bus redelivery with backoff, second claim) is part of the measurement. Everything is bounded:
``--files`` uploads, ``--timeout`` seconds in all.

    .venv/bin/python bench/bench_ingestion.py [--files 1000] [--concurrency 16] [--flaky 0.05]

Needs ``make servers`` (``KGLAB_POSTGRES_URL``, ``KGLAB_RABBITMQ_URL``, ``KGLAB_MONGO_URL``,
``KGLAB_REDIS_URL``). Target on 2 cores: at least 1,000 jobs/minute (the brief asks 50).
Writes ``bench/results/ingestion.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
from machine import describe
from pymongo import AsyncMongoClient
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "ingestion.json"
TARGET_JOBS_PER_MINUTE = 1000.0
PASSWORD = "bench passphrase long enough"
FLAKY_MARKER = "flaky"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run `make servers` and export its KGLAB_*_URL lines.")
    return value


@contextlib.asynccontextmanager
async def fresh_backends() -> AsyncIterator[dict[str, str]]:
    """A PostgreSQL database, a RabbitMQ virtual host and a Mongo database of the run's own."""
    name = f"kglab_bench_{uuid.uuid4().hex[:10]}"
    pg = make_url(need("KGLAB_POSTGRES_URL"))
    admin_dsn = pg.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    amqp = need("KGLAB_RABBITMQ_URL")
    parts = urlsplit(amqp)
    management = os.environ.get(
        "KGLAB_RABBITMQ_MANAGEMENT_URL",
        f"http://{parts.netloc.rsplit('@', 1)[0]}@{parts.hostname}:15672",
    )
    mparts = httpx.URL(management)
    rabbit = httpx.AsyncClient(
        base_url=f"{mparts.scheme}://{mparts.host}:{mparts.port or 15672}",
        auth=(mparts.username or "guest", mparts.password or "guest"),
    )
    (await rabbit.put(f"/api/vhosts/{quote(name, safe='')}")).raise_for_status()
    mongo_url = need("KGLAB_MONGO_URL")
    try:
        yield {
            "KGLAB_POSTGRES_URL": pg.set(database=name).render_as_string(hide_password=False),
            "KGLAB_RABBITMQ_URL": urlunsplit((parts.scheme, parts.netloc, "/" + name, "", "")),
            "KGLAB_MONGO_URL": mongo_url,
            "KGLAB_REDIS_URL": need("KGLAB_REDIS_URL"),
            "KGLAB_INGESTION_MONGO_DATABASE": name,
            "KGLAB_INGESTION_PROGRESS_CHANNEL_PREFIX": f"{name}:",
        }
    finally:
        await rabbit.delete(f"/api/vhosts/{quote(name, safe='')}")
        await rabbit.aclose()
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        await client.drop_database(name)
        await client.close()


@contextlib.asynccontextmanager
async def system(backends: dict[str, str], data_dir: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGLAB_")}
    env.update(backends)
    env.update(
        {
            "KGLAB_PORT": str(port),
            "KGLAB_DATA_DIR": str(data_dir),
            "KGLAB_ENVIRONMENT": "development",
            "KGLAB_LOG_LEVEL": "WARNING",
            "KGLAB_BUS": "rabbitmq",
            "KGLAB_STORES": "embedded",
            "KGLAB_INGESTION_STORES": "real",
            "KGLAB_INGESTION_DEBUG_FAIL_MARKER": FLAKY_MARKER,
            "KGLAB_INGESTION_DEBUG_FAIL_ATTEMPTS": "1",
            "KGLAB_GATEWAY_RATE_LIMIT_ENABLED": "false",
        }
    )
    log = (data_dir / "system.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy" / "dev" / "run.py")],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        break
                if process.poll() is not None:
                    sys.exit(f"the system exited early; see {data_dir / 'system.log'}")
                await asyncio.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def small_file(number: int, run: str) -> bytes:
    return (
        f"# Note {number} of run {run}\n\n"
        f"Item {number} mentions Alice Example and the city of Lisbon. "
        f"It records measurement {number * 7919 % 10007} for batch {number // 50}.\n\n"
        "## Details\n\nA short paragraph so every file has two sections and a heading.\n"
    ).encode()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="kglab-bench-ingestion-") as scratch:
        async with fresh_backends() as backends, system(backends, Path(scratch)) as base:
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                email = f"bench-{run_id}@example.com"
                await client.post(
                    "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                )
                login = await client.post(
                    "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
                )
                login.raise_for_status()
                auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
                every = max(1, round(1 / args.flaky)) if args.flaky > 0 else 0
                deadline = time.monotonic() + args.timeout
                queue: asyncio.Queue[int] = asyncio.Queue()
                for number in range(args.files):
                    queue.put_nowait(number)
                job_ids: list[str] = []
                refused: list[str] = []

                async def uploader() -> None:
                    while not queue.empty() and time.monotonic() < deadline:
                        number = queue.get_nowait()
                        flaky = every and number % every == 0
                        name = f"{FLAKY_MARKER if flaky else 'note'}-{number}.md"
                        response = await client.post(
                            "/api/v1/files",
                            files={"file": (name, small_file(number, run_id), "text/markdown")},
                            headers=auth,
                        )
                        if response.status_code == 202:
                            job_ids.append(response.json()["job_id"])
                        else:
                            refused.append(f"{response.status_code} {response.text[:200]}")

                started = time.monotonic()
                await asyncio.gather(*[uploader() for _ in range(args.concurrency)])
                uploaded_s = time.monotonic() - started

                remaining = set(job_ids)
                failed: dict[str, str] = {}
                attempts: dict[str, int] = {}
                while remaining and time.monotonic() < deadline:
                    cursor: str | None = None
                    while True:
                        params: dict[str, Any] = {"limit": 100}
                        if cursor:
                            params["cursor"] = cursor
                        page = (
                            await client.get("/api/v1/jobs", params=params, headers=auth)
                        ).json()
                        for job in page["items"]:
                            if job["status"] in ("completed", "failed"):
                                if job["job_id"] in remaining:
                                    remaining.discard(job["job_id"])
                                    attempts[job["job_id"]] = job["attempts"]
                                    if job["status"] == "failed":
                                        failed[job["job_id"]] = job["error"]
                        cursor = page["next_cursor"]
                        if not cursor:
                            break
                    if remaining:
                        await asyncio.sleep(0.25)
                finished_s = time.monotonic() - started

    completed = len(job_ids) - len(remaining) - len(failed)
    retried = sum(1 for n in attempts.values() if n > 1)
    return {
        "files": args.files,
        "concurrency": args.concurrency,
        "accepted": len(job_ids),
        "refused": len(refused),
        "refusals": refused[:5],
        "completed": completed,
        "failed": len(failed),
        "failures": list(failed.values())[:5],
        "unfinished": len(remaining),
        "retried_jobs": retried,
        "upload_s": round(uploaded_s, 2),
        "all_done_s": round(finished_s, 2),
        "uploads_per_s": round(len(job_ids) / uploaded_s, 1) if uploaded_s else None,
        "jobs_per_minute": round(completed / finished_s * 60, 1) if finished_s else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flaky", type=float, default=0.05, help="share failing once")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, in all")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    ok = (
        result["unfinished"] == 0
        and result["failed"] == 0
        and result["refused"] == 0
        and (args.flaky == 0 or result["retried_jobs"] > 0)
    )
    report = {
        "benchmark": "ingestion_end_to_end",
        "machine": describe(),
        "target_jobs_per_minute": TARGET_JOBS_PER_MINUTE,
        "result": result,
        "passed": ok,
    }
    print(f"{'metric':<22} value")
    for key in (
        "accepted",
        "completed",
        "failed",
        "unfinished",
        "retried_jobs",
        "upload_s",
        "all_done_s",
        "uploads_per_s",
        "jobs_per_minute",
    ):
        print(f"{key:<22} {result[key]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{result['jobs_per_minute']} jobs/minute (target >= {TARGET_JOBS_PER_MINUTE:g}); "
        f"every job finished: {ok}; wrote {RESULTS}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
