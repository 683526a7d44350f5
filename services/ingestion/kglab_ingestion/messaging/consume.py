"""Thin entrypoints: ``ingestion.job.requested`` handed to the worker, ``document.deleted``
to the service layer (which frees the job's duplicate slot and its raw bytes), and
``document.indexed`` to the service layer (which moves the job through its stages)."""

from __future__ import annotations

from kglab_ingestion.service import IngestionService
from kglab_ingestion.worker import JobWorker
from kglab_shared.bus.idempotency import ProcessedEvents, idempotent
from kglab_shared.bus.port import EventBus, EventHandler, RetryPolicy
from kglab_shared.events import (
    DOCUMENT_DELETED,
    DOCUMENT_INDEXED,
    INGESTION_JOB_REQUESTED,
    DocumentDeleted,
    DocumentIndexed,
    EventEnvelope,
    IngestionJobRequested,
    parse_event_data,
)
from kglab_shared.logging import get_logger

CONSUMER_GROUP = "ingestion"
#: Its own queue, so deletions neither wait behind extraction jobs nor share their prefetch.
DELETIONS_GROUP = "ingestion.deletions"
#: Its own queue too: a job's completion never waits behind extraction work.
INDEXING_GROUP = "ingestion.indexing"
_log = get_logger(__name__)


def event_handler(worker: JobWorker) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if not isinstance(data, IngestionJobRequested):
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)
            return
        await worker.process(data.job_id)

    return handle


def deletion_handler(service: IngestionService) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if not isinstance(data, DocumentDeleted):
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)
            return
        await service.document_deleted(data.owner_id, data.document_id)

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


async def subscribe_deletions(
    bus: EventBus, service: IngestionService, processed: ProcessedEvents
) -> None:
    """``document.deleted``, each event id handled once (a redelivery is acknowledged)."""
    handler = idempotent(deletion_handler(service), processed, DELETIONS_GROUP)
    await bus.subscribe(DELETIONS_GROUP, [DOCUMENT_DELETED], handler, prefetch=4)


def indexing_handler(service: IngestionService) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if not isinstance(data, DocumentIndexed):
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)
            return
        await service.record_part(data)

    return handle


#: Retries of a report ingestion could not record (its database away): 0.5 s growing threefold,
#: about 9 minutes in all, inside the 15 minutes after which a job still waiting for a part is
#: failed (``indexing_timeout_s``). A report parked too early would fail a job whose document
#: is in fact whole.
INDEXING_RETRY = RetryPolicy(max_attempts=8, base_delay_s=0.5, factor=3.0)


async def subscribe_indexing(bus: EventBus, service: IngestionService) -> None:
    """``document.indexed``: recording a part is idempotent (a repeat changes nothing)."""
    await bus.subscribe(
        INDEXING_GROUP,
        [DOCUMENT_INDEXED],
        indexing_handler(service),
        retry=INDEXING_RETRY,
        prefetch=16,
    )
