"""Thin entrypoints: the events the document service consumes, handed to the service layer."""

from __future__ import annotations

from kglab_document.service import DocumentService
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.events import (
    DOCUMENT_EXTRACTED,
    DOCUMENT_PARTS_REMOVED,
    INGESTION_JOB_FAILED,
    PART_STORED,
    DocumentExtracted,
    DocumentPartsRemoved,
    EventEnvelope,
    IngestionJobFailed,
    parse_event_data,
)
from kglab_shared.indexing import IndexedPartPublisher, report_part
from kglab_shared.logging import get_logger

CONSUMER_GROUP = "document"
_log = get_logger(__name__)


def event_handler(
    service: DocumentService, indexed: IndexedPartPublisher | None = None
) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentExtracted):
            if indexed is None:
                await service.record_extracted(data)
            else:
                # Acknowledged after document.stored is confirmed (adr/0010, 2026-12-06).
                await report_part(
                    indexed, data.owner_id, data.document_id, service.record_extracted(data)
                )
        elif isinstance(data, IngestionJobFailed):
            await service.discard(data)
        elif isinstance(data, DocumentPartsRemoved):
            await service.record_part_removed(data)
        else:
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)

    return handle


async def subscribe_consumers(
    bus: EventBus, service: DocumentService, *, source: str = "kglab/document"
) -> None:
    indexed = IndexedPartPublisher(bus, part=PART_STORED, source=source)
    await bus.subscribe(
        CONSUMER_GROUP,
        [DOCUMENT_EXTRACTED, DOCUMENT_PARTS_REMOVED, INGESTION_JOB_FAILED],
        event_handler(service, indexed),
    )
