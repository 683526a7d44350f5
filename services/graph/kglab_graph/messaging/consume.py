"""Thin consumers: parse the event, call the service layer, let errors reach the bus (retry).

Each document's graph is acknowledged with ``document.indexed`` (part ``graphed``; see
``kglab_shared.indexing``), a failure on the last attempt too.
"""

from __future__ import annotations

from kglab_graph.service import GraphService
from kglab_shared.bus.port import EventBus, EventHandler
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

GROUP = "graph"
PATTERNS = (DOCUMENT_STORED, DOCUMENT_DELETED)


def document_events_handler(
    service: GraphService, indexed: IndexedPartPublisher | None = None
) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentStored):
            if indexed is None:
                await service.ingest_document(data)
            else:
                await report_part(
                    indexed, data.owner_id, data.document_id, service.ingest_document(data)
                )
        elif isinstance(data, DocumentDeleted):
            await service.remove_document(data)

    return handle


async def subscribe(bus: EventBus, service: GraphService, *, source: str) -> None:
    indexed = IndexedPartPublisher(bus, part=PART_GRAPHED, source=source)
    await bus.subscribe(GROUP, list(PATTERNS), document_events_handler(service, indexed))
