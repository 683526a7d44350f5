"""Thin consumers: parse the event, call the service layer, let errors reach the bus (retry)."""

from __future__ import annotations

from kglab_graph.service import GraphService
from kglab_shared.bus.port import EventBus, EventHandler
from kglab_shared.events import (
    DOCUMENT_DELETED,
    DOCUMENT_STORED,
    DocumentDeleted,
    DocumentStored,
    EventEnvelope,
    parse_event_data,
)

GROUP = "graph"
PATTERNS = (DOCUMENT_STORED, DOCUMENT_DELETED)


def document_events_handler(service: GraphService) -> EventHandler:
    async def handle(envelope: EventEnvelope) -> None:
        data = parse_event_data(envelope)
        if isinstance(data, DocumentStored):
            await service.ingest_document(data)
        elif isinstance(data, DocumentDeleted):
            await service.remove_document(data)

    return handle


async def subscribe(bus: EventBus, service: GraphService) -> None:
    await bus.subscribe(GROUP, list(PATTERNS), document_events_handler(service))
