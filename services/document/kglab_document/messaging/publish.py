"""What the document service tells the others: ``document.stored`` and ``document.deleted``.

Event ids are derived from the document id, so a republish after a crash carries the same id
and consumers that remember handled ids (``kglab_shared.bus.idempotency``) skip the repeat.
"""

from __future__ import annotations

from collections.abc import Sequence

from kglab_document.domain import Chunk, Document
from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentDeleted, DocumentStored, ExtractedChunk


class DocumentEventPublisher:
    def __init__(self, bus: EventBus, source: str) -> None:
        self._bus = bus
        self._source = source

    async def stored(self, document: Document, chunks: Sequence[Chunk]) -> None:
        event = DocumentStored(
            document_id=document.id,
            owner_id=document.owner_id,
            title=document.title,
            media_type=document.media_type,
            chunks=[
                ExtractedChunk(
                    chunk_id=c.chunk_id, position=c.position, text=c.text, heading=c.heading
                )
                for c in sorted(chunks, key=lambda c: c.position)
            ],
        )
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document.id,
                event_id=f"{event.event_type}:{document.id}",
            )
        )

    async def deleted(self, document: Document) -> None:
        event = DocumentDeleted(document_id=document.id, owner_id=document.owner_id)
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document.id,
                event_id=f"{event.event_type}:{document.id}",
            )
        )
