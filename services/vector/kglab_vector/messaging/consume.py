"""Thin consumers: parse the event, call the service layer, let errors reach the bus (retry).

Each indexed document is acknowledged with ``document.indexed`` (part ``embedded``; see
``kglab_shared.indexing``), a failure on the last attempt too. Handled event ids are
remembered (``kglab_shared.bus.idempotency``), so a redelivered ``document.stored`` arriving
after the document's deletion cannot bring its vectors back.
"""

from __future__ import annotations

from kglab_shared.bus.idempotency import ProcessedEvents, idempotent
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.events import (
    DOCUMENT_DELETED,
    DOCUMENT_STORED,
    PART_EMBEDDED,
    DocumentDeleted,
    DocumentStored,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.indexing import IndexedPartPublisher, report_part
from kglab_shared.logging import get_logger
from kglab_vector.service import VectorService

GROUP = "vector"
PATTERNS = (DOCUMENT_STORED, DOCUMENT_DELETED)
_log = get_logger(__name__)


def document_events_handler(
    service: VectorService, indexed: IndexedPartPublisher, documents: ClaimedChunkReader
) -> EventHandler:
    async def index(event: DocumentStored) -> int:
        chunks = await documents.read_stored(event)
        if chunks is None:  # deleted before it was read: nothing to index
            _log.info("vector_document_gone", document_id=event.document_id)
            return 0
        return await service.index_document(event, chunks)

    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentStored):
            await report_part(indexed, data.owner_id, data.document_id, index(data))
        elif isinstance(data, DocumentDeleted):
            await service.remove_document(data)
        else:
            _log.warning("event_ignored", type=envelope.type, event_id=envelope.id)

    return handle


async def subscribe(
    bus: EventBus,
    service: VectorService,
    processed: ProcessedEvents,
    documents: ClaimedChunkReader,
    *,
    source: str,
) -> None:
    indexed = IndexedPartPublisher(bus, part=PART_EMBEDDED, source=source)
    handler = idempotent(document_events_handler(service, indexed, documents), processed, GROUP)
    await bus.subscribe(GROUP, list(PATTERNS), handler)
