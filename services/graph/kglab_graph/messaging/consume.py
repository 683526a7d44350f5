"""Thin consumers: parse the event, call the service layer, let errors reach the bus (retry).

Each document's graph is acknowledged with ``document.indexed`` (part ``graphed``; see
``kglab_shared.indexing``), a failure on the last attempt too.
"""

from __future__ import annotations

from kglab_graph.service import GraphService
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.events import (
    DOCUMENT_DELETED,
    DOCUMENT_STORED,
    PART_GRAPHED,
    DocumentDeleted,
    DocumentStored,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.indexing import IndexedPartPublisher, report_part
from kglab_shared.logging import get_logger

GROUP = "graph"
PATTERNS = (DOCUMENT_STORED, DOCUMENT_DELETED)
_log = get_logger(__name__)


def document_events_handler(
    service: GraphService, indexed: IndexedPartPublisher, documents: ClaimedChunkReader
) -> EventHandler:
    async def ingest(event: DocumentStored) -> None:
        chunks = await documents.read_stored(event)
        if chunks is None:  # deleted before it was read: nothing to add
            _log.info("graph_document_gone", document_id=event.document_id)
            return
        await service.ingest_document(event, chunks)

    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentStored):
            await report_part(indexed, data.owner_id, data.document_id, ingest(data))
        elif isinstance(data, DocumentDeleted):
            await service.remove_document(data)

    return handle


async def subscribe(
    bus: EventBus, service: GraphService, documents: ClaimedChunkReader, *, source: str
) -> None:
    indexed = IndexedPartPublisher(bus, part=PART_GRAPHED, source=source)
    handler = document_events_handler(service, indexed, documents)
    await bus.subscribe(GROUP, list(PATTERNS), handler)
