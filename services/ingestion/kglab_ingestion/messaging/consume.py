"""Thin entrypoint: ``ingestion.job.requested`` handed to the worker."""

from __future__ import annotations

from kglab_ingestion.worker import JobWorker
from kglab_shared.bus.port import EventBus, EventHandler, RetryPolicy
from kglab_shared.events import (
    INGESTION_JOB_REQUESTED,
    EventEnvelope,
    IngestionJobRequested,
    parse_event_data,
)
from kglab_shared.logging import get_logger

CONSUMER_GROUP = "ingestion"
_log = get_logger(__name__)


def event_handler(worker: JobWorker) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if not isinstance(data, IngestionJobRequested):
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)
            return
        await worker.process(data.job_id)

    return handle


async def subscribe_worker(
    bus: EventBus, worker: JobWorker, *, concurrency: int, retry: RetryPolicy | None = None
) -> None:
    await bus.subscribe(
        CONSUMER_GROUP,
        [INGESTION_JOB_REQUESTED],
        event_handler(worker),
        retry=retry,
        prefetch=concurrency,
    )
