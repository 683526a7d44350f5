"""What the document service tells the others: ``document.stored`` and ``document.deleted``.

Event ids are derived from the document id, so a republish after a crash carries the same id
and consumers that remember handled ids (``kglab_shared.bus.idempotency``) skip the repeat.

Publishing after a write: ``document.stored`` (and ``document.indexed``) answer an event, so the
incoming event is their outbox: a failed publish raises, the bus redelivers, the idempotent save
runs again and the publish is repeated. ``document.deleted`` answers a request: the store
records it as owed together with the deletion and :func:`deletion_relay` publishes what is
owed until the bus confirms it (adr/0002, 2026-12-06).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kglab_document.domain import Document
from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentDeleted, DocumentStored
from kglab_shared.outbox import RelayLoop


class DocumentEventPublisher:
    def __init__(self, bus: EventBus, source: str) -> None:
        self._bus = bus
        self._source = source

    async def stored(
        self, document: Document, claim: str, *, rebuild_id: str | None = None
    ) -> None:
        """Ids and the claim: the vector and graph services read the chunks from here. With
        ``rebuild_id``, an event id of that rebuild's own, so consumers that remember handled
        ids index the document again (``kglab_document.rebuild``)."""
        event = DocumentStored(
            document_id=document.id,
            owner_id=document.owner_id,
            title=document.title,
            media_type=document.media_type,
            chunk_count=document.chunk_count,
            claim=claim,
        )
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document.id,
                event_id=(
                    f"{event.event_type}:{document.id}"
                    if rebuild_id is None
                    else f"{event.event_type}:rebuild:{rebuild_id}:{document.id}"
                ),
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


def deletion_relay(announce: Callable[[], Awaitable[int]]) -> RelayLoop:
    """Publishes owed ``document.deleted`` events (``announce`` returns how many it sent): at
    start, when told a publish failed (``notify``), and every 5 s; backs off while the bus
    refuses. The same loop as the SQL outbox's relay; only what it sends differs."""
    return RelayLoop(announce, name="kglab-deletion-relay", poll_interval_s=5.0)
