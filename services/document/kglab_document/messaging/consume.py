"""Thin entrypoints: the events the document service consumes, handed to the service layer."""

from __future__ import annotations

from kglab_document.service import DocumentService
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.events import (
    DOCUMENT_EXTRACTED,
    DOCUMENT_PARTS_REMOVED,
    DocumentExtracted,
    DocumentPartsRemoved,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.logging import get_logger

CONSUMER_GROUP = "document"
_log = get_logger(__name__)


def event_handler(service: DocumentService) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentExtracted):
            await service.record_extracted(data)
        elif isinstance(data, DocumentPartsRemoved):
            await service.record_part_removed(data)
        else:
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)

    return handle


async def subscribe_consumers(bus: EventBus, service: DocumentService) -> None:
    await bus.subscribe(
        CONSUMER_GROUP, [DOCUMENT_EXTRACTED, DOCUMENT_PARTS_REMOVED], event_handler(service)
    )
