"""Events the graph service publishes."""

from __future__ import annotations

from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentPartsRemoved

PART = "graph"


class PartsRemovedPublisher:
    def __init__(self, bus: EventBus, source: str = "kglab/graph") -> None:
        self._bus = bus
        self._source = source

    async def parts_removed(self, owner_id: str, document_id: str) -> None:
        event = DocumentPartsRemoved(document_id=document_id, owner_id=owner_id, part=PART)
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document_id,
                # Derived, so a repeat after a crash carries the same id and is deduplicated.
                event_id=f"{event.event_type}:{PART}:{document_id}",
            )
        )
