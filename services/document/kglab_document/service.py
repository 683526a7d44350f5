"""The document service layer: what a request or an event asks, in domain terms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from kglab_document.domain import (
    REMOVABLE_PARTS,
    Chunk,
    ChunkCursor,
    DeletionStatus,
    Document,
    DocumentCursor,
    DocumentFilters,
    DocumentNotFoundError,
    DocumentStatus,
    Page,
    SaveResult,
    SortOrder,
    check_limit,
    deletion_status,
    utc_millis,
)
from kglab_document.messaging.publish import DocumentEventPublisher
from kglab_document.store.port import DocumentStore
from kglab_shared.events import DocumentExtracted, DocumentPartsRemoved
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def document_from_event(event: DocumentExtracted) -> tuple[Document, list[Chunk]]:
    document = Document(
        id=event.document_id,
        owner_id=event.owner_id,
        job_id=event.job_id,
        title=event.title,
        media_type=event.media_type,
        source=event.provenance.source_name,
        created_at=utc_millis(event.provenance.uploaded_at),
        chunk_count=len(event.chunks),
        metadata=dict(event.metadata),
        provenance=event.provenance.model_dump(mode="json"),
    )
    chunks = [
        Chunk(
            document_id=event.document_id,
            owner_id=event.owner_id,
            chunk_id=chunk.chunk_id,
            position=chunk.position,
            text=chunk.text,
            heading=chunk.heading,
        )
        for chunk in event.chunks
    ]
    return document, chunks


class DocumentService:
    def __init__(
        self, store: DocumentStore, events: DocumentEventPublisher, clock: Clock = _now
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock

    async def record_extracted(self, event: DocumentExtracted) -> SaveResult:
        """Store the document once, then announce it until the bus has confirmed it once."""
        document, chunks = document_from_event(event)
        result = await self._store.save_extracted(document, chunks)
        stored = result.document
        # Outbox on the document itself: a crash between save and publish leaves the flag
        # False, so the redelivered event publishes again (same event id, consumers dedupe).
        if stored.status is DocumentStatus.STORED and not (
            await self._store.is_stored_event_published(stored.owner_id, stored.id)
        ):
            await self._events.stored(stored, chunks)
            await self._store.mark_stored_event_published(stored.owner_id, stored.id)
        _log.info(
            "document_extracted_recorded",
            document_id=document.id,
            created=result.created,
            chunks=len(chunks),
        )
        return result

    async def record_part_removed(self, event: DocumentPartsRemoved) -> None:
        if event.part not in REMOVABLE_PARTS:
            # Retrying cannot fix an unknown part name; acknowledge it and say so in the logs.
            _log.warning("unknown_document_part", part=event.part, document_id=event.document_id)
            return
        found = await self._store.mark_part_removed(
            event.owner_id, event.document_id, event.part, at=self._clock()
        )
        if not found:
            _log.warning(
                "part_removed_for_unknown_document",
                part=event.part,
                document_id=event.document_id,
            )

    async def list_documents(
        self,
        owner_id: str,
        *,
        filters: DocumentFilters,
        sort: SortOrder,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Document]:
        after = DocumentCursor.decode(cursor, sort) if cursor else None
        return await self._store.list_documents(
            owner_id, filters=filters, sort=sort, limit=check_limit(limit), after=after
        )

    async def get(self, owner_id: str, document_id: str) -> Document:
        document = await self._store.get(owner_id, document_id)
        if document is None or not document.is_visible:
            raise DocumentNotFoundError(document_id)
        return document

    async def chunks(
        self, owner_id: str, document_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[Chunk]:
        await self.get(owner_id, document_id)  # another owner's document: 404 before 422
        after = ChunkCursor.decode(cursor) if cursor else None
        return await self._store.chunks(
            owner_id, document_id, limit=check_limit(limit), after=after
        )

    async def delete(self, owner_id: str, document_id: str) -> Document:
        """Hide the document and drop its chunks, then ask the other services to follow.

        Repeating the request republishes ``document.deleted``, so a publish that failed after
        the write is recovered by the client retrying.
        """
        document = await self._store.delete(owner_id, document_id, at=self._clock())
        if document is None:
            raise DocumentNotFoundError(document_id)
        await self._events.deleted(document)
        return document

    async def deletion(self, owner_id: str, document_id: str) -> DeletionStatus:
        document = await self._store.get(owner_id, document_id)
        if document is None:
            raise DocumentNotFoundError(document_id)
        return deletion_status(document)
