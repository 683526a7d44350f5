"""The ingestion service's app and lifespan: the composition root that wires adapters in.

Embedded (``make dev``): SQLite jobs, files on disk for blobs, in-process progress, the
signature scanner. Real: PostgreSQL jobs, blobs in GridFS on the Mongo server (adr/0012),
Redis pub/sub progress, clamd when ``KGLAB_CLAMD_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from kglab_ingestion.api.routes import internal_router, router, ws_router
from kglab_ingestion.api.tus import TusSettings, create_tus_router, run_upload_sweeper
from kglab_ingestion.api.webhooks import router as webhooks_router
from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.extraction import OpenDocument, open_document
from kglab_ingestion.fetching import PageFetcher
from kglab_ingestion.messaging.consume import (
    subscribe_deletions,
    subscribe_indexing,
    subscribe_worker,
)
from kglab_ingestion.scanning.settings import create_scanner
from kglab_ingestion.schemas import JobOut
from kglab_ingestion.service import IngestionService, report_job_gauges_every
from kglab_ingestion.store.port import BlobStore, ProgressChannel
from kglab_ingestion.store.sql import SqlJobStore, create_engine, sqlite_url
from kglab_ingestion.store.uploads import FileUploadStore
from kglab_ingestion.webhooks.schemas import render_event
from kglab_ingestion.webhooks.sender import WebhookSender
from kglab_ingestion.webhooks.service import WebhookService
from kglab_ingestion.webhooks.signing import SecretBox
from kglab_ingestion.webhooks.store_sql import SqlWebhookStore
from kglab_ingestion.worker import JobWorker, LeaseSweeper
from kglab_shared.app import create_service_app
from kglab_shared.bus.idempotency import SqlProcessedEvents
from kglab_shared.bus.port import EventBus, RetryPolicy
from kglab_shared.health import Readiness
from kglab_shared.identity import Identity
from kglab_shared.logging import get_logger
from kglab_shared.outbox import OutboxRelay
from kglab_shared.ratelimit import rate_limiter
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import BusKind, StoreKind, load_settings

SQLITE_FILE = "ingestion.sqlite3"
_log = get_logger(__name__)


def database_url(settings: IngestionSettings) -> str:
    """PostgreSQL in real mode, a SQLite file under the data directory in embedded mode."""
    if settings.stores is StoreKind.REAL:
        return settings.secret("postgres_url")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(settings.data_dir / SQLITE_FILE)


@asynccontextmanager
async def open_blob_store(
    settings: IngestionSettings, readiness: Readiness
) -> AsyncIterator[BlobStore]:
    """The one place that chooses the blob adapter: GridFS when stores=real, else files."""
    if settings.stores is StoreKind.REAL:
        from pymongo import AsyncMongoClient

        from kglab_ingestion.store.blob_gridfs import GridFsBlobStore

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.secret("mongo_url"),
            tz_aware=True,
            serverSelectionTimeoutMS=settings.mongo_timeout_ms,
            appname=f"kglab-{settings.service_name}",
        )
        gridfs = GridFsBlobStore(client[settings.mongo_database])
        store: BlobStore = gridfs
        try:
            await gridfs.ensure_indexes()
        except BaseException:
            await gridfs.close()
            raise
    else:
        from kglab_ingestion.store.blob_file import FileBlobStore

        store = FileBlobStore(settings.data_dir / "ingestion" / "blobs")
    try:
        readiness.add("blob_store", store.ping)
        yield store
    finally:
        await store.close()


def build_progress_channel(settings: IngestionSettings) -> ProgressChannel:
    """Redis pub/sub when stores=real (any replica serves any job's socket), else in-process."""
    if settings.stores is StoreKind.REAL:
        from redis.asyncio import Redis

        from kglab_ingestion.store.progress_redis import RedisProgressChannel

        client = Redis.from_url(settings.secret("redis_url"), socket_timeout=None)
        return RedisProgressChannel(client, prefix=settings.progress_channel_prefix)
    from kglab_ingestion.store.progress_memory import InProcessProgressChannel

    return InProcessProgressChannel()


def build_fetcher(settings: IngestionSettings) -> PageFetcher:
    """The polite web page fetcher (robots.txt, per-host rate limit, SSRF guard)."""
    fetcher_settings = settings.fetcher_settings()
    if fetcher_settings.tmp_dir is None:
        spool = settings.data_dir / "ingestion" / "fetched"
        spool.mkdir(parents=True, exist_ok=True)
        fetcher_settings = fetcher_settings.model_copy(update={"tmp_dir": spool})
    # Real stores: every replica paces a host together, in Redis (under the prefix the
    # service's Redis keys already have, which each stack sets apart).
    redis_url = settings.secret("redis_url") if settings.stores is StoreKind.REAL else None
    pacing = rate_limiter(redis_url, prefix=f"{settings.progress_channel_prefix}pace")
    return PageFetcher(fetcher_settings, limiter=pacing)


def create_app(
    settings: IngestionSettings | None = None,
    *,
    bus: EventBus | None = None,
    extract: OpenDocument = open_document,
) -> FastAPI:
    """Build the ingestion service; ``bus`` is injected when several services share one process,
    ``extract`` (the extraction port) by tests and benchmarks that need it slow or failing."""
    settings = settings or load_settings(IngestionSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(service_runtime(app, settings, bus=bus))
            source = f"kglab/{settings.service_name}"
            engine = create_engine(database_url(settings))
            relay = OutboxRelay(engine, runtime.bus, poll_interval_s=0.5)
            jobs = SqlJobStore(engine, on_commit=relay.notify)
            stack.push_async_callback(jobs.close)
            await jobs.migrate()
            app.state.readiness.add("database", jobs.ping)
            blobs = await stack.enter_async_context(open_blob_store(settings, app.state.readiness))
            progress = build_progress_channel(settings)
            stack.push_async_callback(progress.close)
            if settings.stores is StoreKind.REAL:
                app.state.readiness.add("progress", progress.ping)
            scanner = create_scanner(settings.scanner_settings())
            app.state.readiness.add("scanner", scanner.ping)
            fetcher = build_fetcher(settings)
            stack.push_async_callback(fetcher.aclose)
            service = IngestionService(
                settings=settings,
                jobs=jobs,
                blobs=blobs,
                scanner=scanner,
                source=source,
                validate_url=fetcher.validate,
                progress=progress,
            )
            app.state.ingestion_service = service
            app.state.job_store = jobs
            app.state.blob_store = blobs
            app.state.progress_channel = progress
            await _start_webhooks(app, stack, settings, SqlWebhookStore(engine), fetcher.validate)
            relay.start()
            stack.push_async_callback(relay.stop)
            purge = asyncio.create_task(_purge_outbox(relay), name="kglab-outbox-purge")
            stack.push_async_callback(_cancel, purge)
            if settings.run_worker:
                worker = JobWorker(
                    settings=settings,
                    jobs=jobs,
                    blobs=blobs,
                    progress=progress,
                    fetcher=fetcher,
                    source=source,
                    extract=extract,
                )
                stack.callback(worker.close)
                app.state.worker = worker
                sweeper = LeaseSweeper(
                    settings=settings, jobs=jobs, source=source, progress=progress
                )
                app.state.sweeper = sweeper
                await subscribe_worker(
                    runtime.bus,
                    worker,
                    concurrency=settings.worker_concurrency,
                    retry=RetryPolicy(max_attempts=settings.max_attempts),
                )
                # Handled ids live beside the jobs (the migrations create the table).
                await subscribe_deletions(runtime.bus, service, SqlProcessedEvents(engine))
                await subscribe_indexing(runtime.bus, service)
                # An in-process bus forgets its messages on restart: take up every pending job.
                await sweeper.start(sweep_all_pending_now=settings.bus is BusKind.MEMORY)
                stack.push_async_callback(sweeper.stop)
            sweeper_task = asyncio.create_task(
                run_upload_sweeper(*app.state.upload_store), name="kglab-upload-sweeper"
            )
            stack.push_async_callback(_cancel, sweeper_task)
            gauges = asyncio.create_task(
                report_job_gauges_every(jobs, settings.metrics_interval_s),
                name="kglab-job-gauges",
            )
            stack.push_async_callback(_cancel, gauges)
            yield

    tus_router, upload_store = build_tus_router(lambda: app.state.ingestion_service, settings)
    app = create_service_app(
        settings,
        title="Knowledge Graph Lab: ingestion service",
        description="File and URL ingestion jobs with live progress.",
        routers=[router, webhooks_router, internal_router, tus_router, ws_router],
        lifespan=lifespan,
    )
    app.state.upload_store = upload_store
    return app


async def _start_webhooks(
    app: FastAPI,
    stack: AsyncExitStack,
    settings: IngestionSettings,
    store: SqlWebhookStore,
    validate_url: Callable[[str], str],
) -> None:
    """The webhook service, and (``run_webhooks``) the sender every replica may run."""
    box = SecretBox(settings.secret("webhook_secret_key"))
    sender: WebhookSender | None = None
    if settings.run_webhooks:
        sender = WebhookSender(settings=settings, store=store, box=box, render=render_event)
        sender.start()
        stack.push_async_callback(sender.stop)
    app.state.webhook_sender = sender
    app.state.webhook_service = WebhookService(
        store=store,
        box=box,
        validate_url=validate_url,
        max_endpoints=settings.webhook_max_endpoints,
        max_rotation_overlap_s=settings.webhook_max_rotation_overlap_s,
        on_replay=sender.notify if sender is not None else lambda: None,
    )


async def _purge_outbox(relay: OutboxRelay) -> None:
    """Published outbox rows are kept a day (for inspection), then removed, hourly."""
    while True:
        try:
            await relay.purge_published(timedelta(days=1))
        except Exception as exc:
            _log.warning("outbox_purge_failed", error=str(exc))
        await asyncio.sleep(3600)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_tus_router(
    service_of: Callable[[], IngestionService], settings: IngestionSettings
) -> tuple[APIRouter, tuple[FileUploadStore, TusSettings]]:
    """The tus 1.0 router; a finished upload becomes a job exactly as POST /files makes one.

    The upload store is a directory every replica must see (``KGLAB_INGESTION_UPLOADS_DIR``,
    a shared volume; adr/0019), by default under the data directory.
    """
    store = FileUploadStore(settings.uploads_dir or settings.data_dir / "ingestion" / "uploads")
    tus_settings = TusSettings(max_size_bytes=settings.max_resumable_bytes)

    async def on_upload_complete(
        identity: Identity, path: Path, filename: str, size: int
    ) -> dict[str, Any]:
        submission = await service_of().submit_stored_file(
            identity.user_id, path, filename, limit=settings.max_resumable_bytes
        )
        body = JobOut.of(submission.job, duplicate=submission.duplicate)
        return body.model_dump(mode="json")

    router = create_tus_router(store, tus_settings, on_upload_complete)
    return router, (store, tus_settings)
