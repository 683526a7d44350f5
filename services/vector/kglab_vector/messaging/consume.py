"""Thin consumers: parse the event, call the service layer, let errors reach the bus (retry).

Handled event ids are remembered (``kglab_shared.bus.idempotency``), so a redelivered
``document.stored`` arriving after the document's deletion cannot bring its vectors back.
"""

from __future__ import annotations

from kglab_shared.bus.idempotency import ProcessedEvents, idempotent
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.events import (
    DOCUMENT_DELETED,
    DOCUMENT_STORED,
    DocumentDeleted,
    DocumentStored,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.logging import get_logger
from kglab_vector.service import VectorService

GROUP = "vector"
PATTERNS = (DOCUMENT_STORED, DOCUMENT_DELETED)
_log = get_logger(__name__)


def document_events_handler(service: VectorService) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentStored):
            await service.index_document(data)
        elif isinstance(data, DocumentDeleted):
            await service.remove_document(data)
        else:
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)

    return handle


async def subscribe(bus: EventBus, service: VectorService, processed: ProcessedEvents) -> None:
    handler = idempotent(document_events_handler(service), processed, GROUP)
    await bus.subscribe(GROUP, list(PATTERNS), handler)
