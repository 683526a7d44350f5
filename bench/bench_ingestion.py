"""End to end ingestion throughput: N small files uploaded through the gateway until every
ingestion job is ``completed``, on real RabbitMQ, PostgreSQL (jobs), GridFS (blobs) and Redis
(progress).

What runs (``--topology processes``, the default): the topology of docker-compose.yml on one
machine, each service in a process of its own started as its container starts it (uvicorn on
``kglab_<service>.main:create_app``): the gateway, which reaches the services over HTTP on
loopback, auth, ingestion (its API and its worker in one process, as in compose, or the
worker in ``--worker-processes`` processes of its own beside the API), and the downstream
consumers of ``document.extracted``: document, vector (ONNX embeddings) and graph (spaCy
NER). Ingestion uses its real stores; the others keep their embedded stores (the bus is the
real RabbitMQ for all). ``--topology dev`` is the one-process shape of ``make dev``
(``deploy/dev/run.py``) on the same backends, for comparison.

Two passes by default (``--downstream both``): first without the downstream services (the
processes a job passes through: gateway, auth, ingestion), whose jobs/minute is the issue's
target (at least 1,000 on 2 cores) and the report's ``result``; then the whole compose
topology, the downstream services sharing the cores with ingestion as on a 2-core compose
host (``with_downstream``: expect fewer jobs/minute, since embedding and NER take about as
much CPU per document as ingestion does). ``--downstream off|on`` runs one of them.

What is measured: the clock starts once every process answers ``/ready`` (models loaded)
and stops when the last ingestion job is ``completed``: that is jobs/minute. Since 2026-12-06
(adr/0010) a job completes only once the downstream services stored, embedded and graphed its
document; in the pass without them a job counts as done once it left ``extracting`` (its
document announced), which is ingestion's own part. Their queue backlog when the last job
completed is reported, and (``--drain``, the default) the time until every queue is empty.
CPU seconds per process (each service, the benchmark's client, each backing server, and
everything else on the machine, i.e. other users of the cores) are reported for the upload
phase, until done and until drained: compare CPU per job across runs on a shared machine,
where wall-clock rates swing with the neighbours' load.

A share of the files (``--flaky``) fails its first attempt with a retryable error (the
ingestion processes run ``tests.faults.ingestion_app``, whose extraction fails so; in the
``dev`` topology nothing fails), so the retry path (release, bus redelivery with backoff,
second claim) is part of the measurement. Everything is bounded:
``--files`` uploads, ``--timeout`` seconds in all.

    .venv/bin/python bench/bench_ingestion.py [--files 1000] [--concurrency 16] [--flaky 0.05]
    .venv/bin/python bench/bench_ingestion.py --stages 100   # each stage timed, one at a time,
                                                             # then the service alone, at once

Needs ``make servers`` (``KGLAB_POSTGRES_URL``, ``KGLAB_RABBITMQ_URL``, ``KGLAB_MONGO_URL``,
``KGLAB_REDIS_URL``). Writes ``bench/results/ingestion.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import httpx
from machine import describe
from pymongo import AsyncMongoClient
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "ingestion.json"
STAGES = Path(__file__).parent / "results" / "ingestion_stages.json"
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


def rabbit_management() -> httpx.AsyncClient:
    """A client of RabbitMQ's management API (beside ``KGLAB_RABBITMQ_URL``)."""
    parts = urlsplit(need("KGLAB_RABBITMQ_URL"))
    management = os.environ.get(
        "KGLAB_RABBITMQ_MANAGEMENT_URL",
        f"http://{parts.netloc.rsplit('@', 1)[0]}@{parts.hostname}:15672",
    )
    mparts = httpx.URL(management)
    return httpx.AsyncClient(
        base_url=f"{mparts.scheme}://{mparts.host}:{mparts.port or 15672}",
        auth=(mparts.username or "guest", mparts.password or "guest"),
    )


async def backlog(vhost_url: str) -> dict[str, int]:
    """Messages per queue in the run's virtual host: those waiting, counted now (a passive
    declare each), plus those consumers hold unacknowledged (their prefetch) as the
    management API last sampled them (every few seconds)."""
    vhost = urlsplit(vhost_url).path.lstrip("/")
    async with rabbit_management() as rabbit:
        response = await rabbit.get(f"/api/queues/{quote(vhost, safe='')}")
        response.raise_for_status()
        held = {q["name"]: int(q.get("messages_unacknowledged") or 0) for q in response.json()}
    names = sorted(held)
    connection = await aio_pika.connect(vhost_url)
    try:
        channel = await connection.channel()
        counts = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = int(queue.declaration_result.message_count or 0) + held[name]
        return counts
    finally:
        await connection.close()


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
    rabbit = rabbit_management()
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


#: Every service of docker-compose.yml, each started as its container starts it (uvicorn on
#: ``kglab_<name>.main:create_app``), in start order; the gateway last.
SERVICES = ("auth", "ingestion", "graph", "document", "vector")
DOWNSTREAM = ("graph", "document", "vector")
#: Process names of the backing servers, for the CPU account.
SERVERS = {
    "postgres": "postgresql",
    "beam.smp": "rabbitmq",
    "secantusd-rs": "secantusdb",
    "redis-server": "redis",
    "clamd": "clamd",
    "java": "neo4j",
}


@dataclass
class Composition:
    """The running system: the gateway's address, each process by role, the bus vhost."""

    base: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def base_env(backends: dict[str, str], data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGLAB_")}
    env.update(backends)
    env.update(
        {
            "KGLAB_DATA_DIR": str(data_dir),
            "KGLAB_ENVIRONMENT": "development",
            "KGLAB_LOG_LEVEL": "WARNING",
            "KGLAB_BUS": "rabbitmq",
            "KGLAB_STORES": "embedded",
            "KGLAB_INGESTION_STORES": "real",
            # Read by tests.faults.ingestion_app, which the ingestion processes run.
            "KGLAB_TEST_FAIL_MARKER": FLAKY_MARKER,
            "KGLAB_TEST_FAIL_ATTEMPTS": "1",
            "KGLAB_GATEWAY_RATE_LIMIT_ENABLED": "false",
        }
    )
    return env


async def wait_ready(
    client: httpx.AsyncClient,
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    probes: tuple[str, ...] = ("/health", "/ready"),
) -> None:
    """``/health`` then ``/ready`` (which stays 503 while a service's models load)."""
    for probe in probes:
        for _ in range(2400):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + probe, timeout=30)).status_code == 200:
                    break
            if process.poll() is not None:
                sys.exit(f"{url} exited early; see {log}")
            await asyncio.sleep(0.25)
        else:
            sys.exit(f"{url}{probe} never answered 200; see {log}")


@contextlib.asynccontextmanager
async def system(
    backends: dict[str, str], data_dir: Path, args: argparse.Namespace
) -> AsyncIterator[Composition]:
    """``processes``: every service in its own process, as compose runs each in its own
    container (the ingestion worker optionally in processes of its own beside the API);
    ``dev``: the whole system in one process (``deploy/dev/run.py``), on the same backends."""
    env = base_env(backends, data_dir)
    launched: dict[str, tuple[subprocess.Popen[bytes], str, Path]] = {}
    logs = []

    def launch(role: str, command: list[str], extra: dict[str, str]) -> None:
        log_path = data_dir / f"{role}.log"
        log = log_path.open("wb")
        logs.append(log)
        role_env = dict(env, **extra)
        role_env["KGLAB_DATA_DIR"] = str(data_dir / role)
        process = subprocess.Popen(
            command,
            env=role_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        launched[role] = (process, extra.get("url", ""), log_path)

    def uvicorn(name: str, port: int) -> list[str]:
        factory = (
            "tests.faults:ingestion_app" if name == "ingestion" else f"kglab_{name}.main:create_app"
        )
        return [
            sys.executable, "-m", "uvicorn", "--factory", factory,
            "--host", "127.0.0.1", "--port", str(port), "--no-server-header",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip

    if args.topology == "dev":
        port = free_port()
        launch(
            "system",
            [sys.executable, str(ROOT / "deploy" / "dev" / "run.py")],
            {"KGLAB_PORT": str(port), "url": f"http://127.0.0.1:{port}"},
        )
        base = f"http://127.0.0.1:{port}"
    else:
        ports = {name: free_port() for name in (*SERVICES, "gateway")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        env.update({f"KGLAB_GATEWAY_{name.upper()}_URL": urls[name] for name in SERVICES})
        env["KGLAB_VECTOR_GRAPH_URL"] = urls["graph"]
        # Where each service reads the chunks an event's claim opens (adr/0020).
        env["KGLAB_DOCUMENT_INGESTION_URL"] = urls["ingestion"]
        env["KGLAB_VECTOR_DOCUMENT_URL"] = urls["document"]
        env["KGLAB_GRAPH_DOCUMENT_URL"] = urls["document"]
        for name in SERVICES:
            if name in DOWNSTREAM and not args.downstream:
                continue
            extra = {"url": urls[name]}
            if name == "ingestion" and args.worker_processes:
                extra["KGLAB_INGESTION_RUN_WORKER"] = "false"
            launch(name, uvicorn(name, ports[name]), extra)
        for number in range(args.worker_processes):
            port = free_port()
            launch(
                f"ingestion-worker-{number + 1}",
                uvicorn("ingestion", port),
                {"url": f"http://127.0.0.1:{port}", "KGLAB_INGESTION_RUN_WORKER": "true"},
            )
        launch("gateway", uvicorn("gateway", ports["gateway"]), {"url": urls["gateway"]})
        base = urls["gateway"]
    try:
        async with httpx.AsyncClient() as client:
            for role, (process, url, log_path) in launched.items():
                # Alive is not ready: models load in the background after start (the NER
                # model takes tens of seconds on a busy machine and holds a core meanwhile).
                # The clock starts on a ready system, as a deployment's traffic would. Each
                # service's own /ready is waited for; the gateway's is itself and Redis.
                probes = ("/health",) if role == "gateway" and not args.downstream else None
                await wait_ready(client, url, process, log_path, *([probes] if probes else []))
        if args.topology == "dev":
            # One process: its /ready does not wait for the models its services load in
            # background threads. Wait until the process has settled (under a tenth of a core
            # for two seconds running), at most two minutes.
            (process, _, _), quiet = next(iter(launched.values())), 0
            for _ in range(120):
                before = cpu_seconds(process.pid)
                await asyncio.sleep(1.0)
                quiet = quiet + 1 if cpu_seconds(process.pid) - before < 0.1 else 0
                if quiet >= 2:
                    break
        yield Composition(base, {role: entry[0] for role, entry in launched.items()})
    finally:
        for process, _, _ in launched.values():
            process.terminate()
        for process, _, _ in launched.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies (``make bench`` kills it at its
    timeout), so no service outlives it. Linux only; elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuAccount:
    """CPU seconds per role over the measured window: each service process, the benchmark's
    own client, each backing server (all its processes), and everything else on the machine
    (other users of the same cores)."""

    def __init__(self, roles: dict[str, int]) -> None:
        self.roles = dict(roles, **{"bench client": os.getpid()})
        self.start: dict[str, float] = {}
        self.started = 0.0

    def _snapshot(self) -> dict[str, float]:
        out = {role: cpu_seconds(pid) for role, pid in self.roles.items()}
        ours = set(self.roles.values())
        servers: dict[str, float] = dict.fromkeys(SERVERS.values(), 0.0)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ours:
                continue
            with contextlib.suppress(OSError):
                name = (entry / "comm").read_text().strip()
                if name in SERVERS:
                    servers[SERVERS[name]] += cpu_seconds(int(entry.name))
        out.update(servers)
        with contextlib.suppress(OSError):
            # The whole machine (every core): user, nice, system, irq, softirq, steal.
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7))
            out["machine"] = busy / os.sysconf("SC_CLK_TCK")
        return out

    def begin(self) -> None:
        self.start = self._snapshot()
        self.started = time.monotonic()

    def end(self) -> dict[str, Any]:
        stop = self._snapshot()
        wall = time.monotonic() - self.started
        used = {role: round(stop[role] - self.start.get(role, 0.0), 2) for role in stop}
        known = sum(v for k, v in used.items() if k != "machine")
        used["everything else"] = round(used.get("machine", 0.0) - known, 2)
        return {
            "wall_s": round(wall, 2),
            "cpu_s": used,
            "cores_busy": round(used.get("machine", 0.0) / wall, 2) if wall else None,
        }


def small_file(number: int, run: str) -> bytes:
    return (
        f"# Note {number} of run {run}\n\n"
        f"Item {number} mentions Alice Example and the city of Lisbon. "
        f"It records measurement {number * 7919 % 10007} for batch {number // 50}.\n\n"
        "## Details\n\nA short paragraph so every file has two sections and a heading.\n"
    ).encode()


class StageClock:
    """Wall time per named stage, in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, name: str, started: float) -> None:
        self.samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    def wrap(self, target: Any, method: str, name: str) -> None:
        original = getattr(target, method)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.add(name, started)

        setattr(target, method, timed)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in sorted(self.samples.items()):
            ordered = sorted(values)
            out[name] = {
                "n": len(values),
                "median_ms": round(ordered[len(ordered) // 2], 2),
                "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
            }
        return out


async def run_stages(count: int) -> dict[str, Any]:
    """Each stage of an upload and of a job, one at a time, on the real stores (no gateway,
    no bus): the same adapters the service composes, wrapped with a clock."""
    from redis.asyncio import Redis

    from kglab_ingestion.api.upload_stream import receive_upload
    from kglab_ingestion.config import IngestionSettings
    from kglab_ingestion.scanning.settings import create_scanner
    from kglab_ingestion.service import IngestionService
    from kglab_ingestion.store.blob_gridfs import GridFsBlobStore
    from kglab_ingestion.store.progress_redis import RedisProgressChannel
    from kglab_ingestion.store.sql import SqlJobStore, create_engine
    from kglab_ingestion.worker import JobWorker
    from kglab_shared.bus.memory import InProcessBus
    from kglab_shared.outbox import OutboxRelay

    clock = StageClock()
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="kglab-bench-stages-") as scratch:
        async with fresh_backends() as backends:
            settings = IngestionSettings(KGLAB_ENVIRONMENT="development", data_dir=Path(scratch))
            engine = create_engine(backends["KGLAB_POSTGRES_URL"])
            bus = InProcessBus()
            await bus.start()
            relay = OutboxRelay(engine, bus)
            jobs = SqlJobStore(engine)
            await jobs.migrate()
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                backends["KGLAB_MONGO_URL"], tz_aware=True
            )
            blobs = GridFsBlobStore(mongo[backends["KGLAB_INGESTION_MONGO_DATABASE"]])
            await blobs.ensure_indexes()
            progress = RedisProgressChannel(
                Redis.from_url(backends["KGLAB_REDIS_URL"]),
                prefix=backends["KGLAB_INGESTION_PROGRESS_CHANNEL_PREFIX"],
            )
            scanner = create_scanner(settings.scanner_settings())
            service = IngestionService(settings=settings, jobs=jobs, blobs=blobs, scanner=scanner)
            worker = JobWorker(
                settings=settings, jobs=jobs, blobs=blobs, progress=progress, fetcher=None
            )
            for target, methods in (
                (
                    jobs,
                    (
                        "create",
                        "find_live_by_sha256",
                        "claim",
                        "saved_units",
                        "save_unit",
                        "recent_completed_ids",
                        "signatures_of",
                        "complete",
                    ),
                ),
                (blobs, ("put_file", "exists", "copy_to")),
                (progress, ("publish",)),
                (scanner, ("scan_file",)),
            ):
                for method in methods:
                    clock.wrap(target, method, f"{type(target).__name__}.{method}")
            try:
                job_ids: list[str] = []
                boundary = "kglab-bench-boundary"

                async def upload(number: int) -> None:
                    body = (
                        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                        f'filename="note-{number}.md"\r\nContent-Type: text/markdown\r\n\r\n'
                    ).encode()
                    body += small_file(number, run_id) + f"\r\n--{boundary}--\r\n".encode()

                    async def stream(payload: bytes = body) -> AsyncIterator[bytes]:
                        yield payload

                    started = time.perf_counter()
                    received = await receive_upload(
                        stream(),
                        content_type=f"multipart/form-data; boundary={boundary}",
                        content_length=len(body),
                        limit=settings.max_upload_bytes,
                        spool_dir=service.spool_dir,
                    )
                    clock.add("upload: multipart parsed to spool file + SHA-256", started)
                    submission = await service.submit_file("bench-owner", received)
                    clock.add("upload: whole (service, no gateway)", started)
                    job_ids.append(submission.job.id)

                for number in range(count):
                    await upload(number)
                started = time.perf_counter()
                relayed = await relay.run_once()
                clock.add(f"outbox relay: one batch of {relayed} events", started)
                for job_id in job_ids:
                    started = time.perf_counter()
                    await worker.process(job_id)
                    clock.add("job: whole (worker, no bus)", started)

                sequential = clock.summary()
                # The same service with requests and jobs side by side: 16 uploads at once,
                # then the worker's concurrency in flight (the bus would give it as many).
                job_ids.clear()
                pending = list(range(count, 2 * count))

                async def uploader() -> None:
                    while pending:
                        await upload(pending.pop())

                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*[uploader() for _ in range(16)])
                uploads_s = time.perf_counter() - started
                uploads_cpu = time.process_time() - cpu
                queued = list(job_ids)

                async def runner() -> None:
                    while queued:
                        await worker.process(queued.pop())

                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*[runner() for _ in range(settings.worker_concurrency)])
                jobs_s = time.perf_counter() - started
                jobs_cpu = time.process_time() - cpu
                concurrent = {
                    "uploads_per_s_16_at_once": round(count / uploads_s, 1),
                    "jobs_in_flight": settings.worker_concurrency,
                    "jobs_per_minute": round(count / jobs_s * 60, 1),
                    # The service's own CPU (this process, every thread), steadier than the
                    # rates on a machine shared with others.
                    "cpu_ms_per_upload": round(uploads_cpu / count * 1000, 2),
                    "cpu_ms_per_job": round(jobs_cpu / count * 1000, 2),
                }
            finally:
                worker.close()
                await bus.close()
                await progress.close()
                await engine.dispose()
                await mongo.close()
    return {
        "files": count,
        "service_only": concurrent,
        "stages": sequential,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="kglab-bench-ingestion-") as scratch:
        async with (
            fresh_backends() as backends,
            system(backends, Path(scratch), args) as composition,
        ):
            base = composition.base
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                email = f"bench-{run_id}@example.com"
                # Not measured, and the first requests may pay for lazy imports: wait longer.
                await client.post(
                    "/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD},
                    timeout=120,
                )
                login = await client.post(
                    "/api/v1/auth/login",
                    data={"username": email, "password": PASSWORD},
                    timeout=120,
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

                pids = {role: process.pid for role, process in composition.processes.items()}
                upload_cpu, whole_cpu = CpuAccount(pids), CpuAccount(pids)
                print("measuring", flush=True)
                upload_cpu.begin()
                whole_cpu.begin()
                started = time.monotonic()
                await asyncio.gather(*[uploader() for _ in range(args.concurrency)])
                uploaded_s = time.monotonic() - started
                upload_account = upload_cpu.end()

                remaining = set(job_ids)
                failed: dict[str, str] = {}
                attempts: dict[str, int] = {}

                # Without the downstream services no job completes (adr/0010, 2026-12-06:
                # completed waits for storing, embedding and graphing): ingestion's part ends
                # when its document is announced, i.e. once the job has left `extracting`.
                extracted_is_done = not args.downstream and args.topology != "dev"

                def finished(job: dict[str, Any]) -> bool:
                    if job["status"] in ("completed", "failed"):
                        return True
                    return extracted_is_done and job.get("stage") not in (
                        None,
                        "queued",
                        "extracting",
                    )

                async def unfinished() -> bool:
                    # Two one-row pages instead of listing every job: the poll must not be a
                    # load of its own on the system it measures.
                    states: tuple[str, ...] = (
                        ("pending",) if extracted_is_done else ("pending", "processing")
                    )
                    for state in states:
                        params: dict[str, str | int] = {"limit": 1, "status": state}
                        page = (
                            await client.get("/api/v1/jobs", params=params, headers=auth)
                        ).json()
                        if page["items"]:
                            return True
                    return False

                while remaining and time.monotonic() < deadline:
                    if await unfinished():
                        await asyncio.sleep(0.25)
                        continue
                    # Looks finished (a retried job may slip from processing back to pending
                    # between the two reads): confirm from the full listing.
                    cursor: str | None = None
                    while True:
                        params: dict[str, Any] = {"limit": 100}
                        if cursor:
                            params["cursor"] = cursor
                        page = (
                            await client.get("/api/v1/jobs", params=params, headers=auth)
                        ).json()
                        for job in page["items"]:
                            if finished(job):
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
                whole_account = whole_cpu.end()
                waiting = await backlog(backends["KGLAB_RABBITMQ_URL"])
                drained_s, drained_account = None, None
                if args.drain:
                    # Empty twice, half a second apart. The unacknowledged counts are seconds
                    # old: the drain time may be late by that much, not early.
                    empty_since: float | None = None
                    while time.monotonic() < deadline:
                        left = await backlog(backends["KGLAB_RABBITMQ_URL"])
                        if any(left.values()):
                            empty_since = None
                        elif empty_since is None:
                            empty_since = time.monotonic()
                        else:
                            drained_s = round(empty_since - started, 2)
                            drained_account = whole_cpu.end()
                            break
                        await asyncio.sleep(0.5)

    completed = len(job_ids) - len(remaining) - len(failed)
    retried = sum(1 for n in attempts.values() if n > 1)
    return {
        "files": args.files,
        "topology": args.topology,
        "processes": sorted(composition.processes),
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
        # Messages still queued or in flight per consumer group when the last job completed:
        # the downstream consumers' backlog (document, vector, graph), when they run.
        "backlog_at_done": waiting,
        "downstream_drained_s": drained_s,
        "cpu_upload_phase": upload_account,
        "cpu_until_done": whole_account,
        "cpu_until_drained": drained_account,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flaky", type=float, default=0.05, help="share failing once")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, in all")
    parser.add_argument(
        "--stages",
        type=int,
        default=0,
        metavar="N",
        help="instead: time each stage of N uploads and jobs, one at a time, on the real stores",
    )
    parser.add_argument(
        "--topology",
        choices=("processes", "dev"),
        default="processes",
        help="each service its own process (as compose), or all in one (make dev's shape)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="ingestion worker processes beside the API process (0: the API process runs it)",
    )
    parser.add_argument(
        "--downstream",
        choices=("off", "on", "both"),
        default="both",
        help="the document, vector and graph services (consumers of document.extracted): "
        "left out, running, or one run without them (the target's figure) then one with them",
    )
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the last job completes, wait for every queue to empty (the downstream "
        "consumers' backlog) and account the CPU until then",
    )
    args = parser.parse_args()
    # A plain kill stops the run as Ctrl-C does: the services stop and the run's database,
    # virtual host and Mongo database are dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.stages:
        stages = asyncio.run(run_stages(args.stages))
        for name, numbers in stages["stages"].items():
            print(f"{name:<52} n={numbers['n']:<5} median {numbers['median_ms']:>8} ms")
        print(f"service only (GridFS blobs): {stages['service_only']}")
        STAGES.write_text(
            json.dumps({"benchmark": "ingestion_stages", "machine": describe(), **stages}, indent=2)
            + "\n"
        )
        print(f"wrote {STAGES}")
        return 0
    passes = [args.downstream == "on"]
    if args.topology == "processes" and args.downstream == "both":
        passes = [False, True]
    results = []
    for downstream in passes:
        result = asyncio.run(run(argparse.Namespace(**{**vars(args), "downstream": downstream})))
        result["downstream"] = downstream or args.topology == "dev"
        result["passed"] = (
            result["unfinished"] == 0
            and result["failed"] == 0
            and result["refused"] == 0
            and (args.flaky == 0 or result["retried_jobs"] > 0)
        )
        print_result(result)
        results.append(result)
    ok = all(result["passed"] for result in results)
    report = {
        "benchmark": "ingestion_end_to_end",
        "machine": describe(),
        "target_jobs_per_minute": TARGET_JOBS_PER_MINUTE,
        # The target's figure: the processes a job passes through (gateway, auth, ingestion).
        "result": results[0],
        # The whole compose topology: the downstream consumers share the cores.
        "with_downstream": results[1] if len(results) > 1 else None,
        "passed": ok,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for result in results:
        print(
            f"{result['jobs_per_minute']} jobs/minute (target >= {TARGET_JOBS_PER_MINUTE:g}), "
            f"downstream consumers running: {result['downstream']}; "
            f"every job finished: {result['passed']}"
        )
    print(f"wrote {RESULTS}")
    return 0 if ok else 1


def print_result(result: dict[str, Any]) -> None:
    print(f"\n{result['topology']}: {', '.join(result['processes'])}")
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
        "downstream_drained_s",
    ):
        print(f"{key:<22} {result[key]}")
    waiting = {name: count for name, count in result["backlog_at_done"].items() if count}
    print(f"backlog when the last job completed: {waiting}")
    for phase in ("cpu_upload_phase", "cpu_until_done", "cpu_until_drained"):
        account = result[phase]
        if account is None:
            continue
        shares = ", ".join(
            f"{role} {seconds}" for role, seconds in account["cpu_s"].items() if seconds >= 0.1
        )
        print(f"{phase} ({account['wall_s']} s, {account['cores_busy']} cores busy): {shares}")


if __name__ == "__main__":
    sys.exit(main())
