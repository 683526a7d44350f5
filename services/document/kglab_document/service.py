"""The document service layer: what a request or an event asks, in domain terms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
    SaveResult,
    SortOrder,
    check_limit,
    deletion_status,
    utc_millis,
)
from kglab_document.messaging.publish import DocumentEventPublisher
from kglab_document.store.port import DocumentStore
from kglab_shared.claims import claim_digest, claim_matches
from kglab_shared.events import (
    DocumentExtracted,
    DocumentPartsRemoved,
    ExtractedChunk,
    IngestionJobFailed,
)
from kglab_shared.logging import get_logger
from kglab_shared.metrics import CHUNKS_STORED, DOCUMENTS_DELETED, DOCUMENTS_STORED
from kglab_shared.pages import Page

_log = get_logger(__name__)
Clock = Callable[[], datetime]
#: Reads an extracted document's chunks from ingestion with the event's claim; None when
#: ingestion no longer holds them (its job failed, or they were stored and dropped).
ExtractedChunks = Callable[[DocumentExtracted], Awaitable[list[ExtractedChunk] | None]]


def _now() -> datetime:
    return datetime.now(UTC)


def document_from_event(
    event: DocumentExtracted, extracted: Sequence[ExtractedChunk]
) -> tuple[Document, list[Chunk]]:
    document = Document(
        id=event.document_id,
        owner_id=event.owner_id,
        job_id=event.job_id,
        title=event.title,
        media_type=event.media_type,
        source=event.provenance.source_name,
        created_at=utc_millis(event.provenance.uploaded_at),
        chunk_count=len(extracted),
        metadata=dict(event.metadata),
        provenance=event.provenance.model_dump(mode="json"),
        claim_digest=claim_digest(event.claim),
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
        for chunk in extracted
    ]
    return document, chunks


class DocumentService:
    def __init__(
        self,
        store: DocumentStore,
        events: DocumentEventPublisher,
        extracted_chunks: ExtractedChunks,
        clock: Clock = _now,
        *,
        on_unannounced: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._extracted_chunks = extracted_chunks
        self._clock = clock
        #: Wakes the deletion relay when a publish failed (the deletion relay's ``notify``).
        self._on_unannounced = on_unannounced

    async def record_extracted(self, event: DocumentExtracted) -> SaveResult | None:
        """Read the chunks from ingestion (once: a redelivery finds the document stored), store
        the document, then announce it until the bus has confirmed it once."""
        if await self._store.get(event.owner_id, event.document_id) is None:
            chunks = await self._extracted_chunks(event)
            if chunks is None:
                _log.info("extraction_gone", document_id=event.document_id, job_id=event.job_id)
                return None
        else:
            chunks = []  # stored already (or deleted): save_extracted keeps what exists
        return await self.store_extracted(event, chunks)

    async def store_extracted(
        self, event: DocumentExtracted, extracted: Sequence[ExtractedChunk]
    ) -> SaveResult:
        document, chunks = document_from_event(event, extracted)
        result = await self._store.save_extracted(document, chunks)
        stored = result.document
        # Outbox on the document itself: a crash between save and publish leaves the flag
        # False, so the redelivered event publishes again (same event id, consumers dedupe).
        if stored.status is DocumentStatus.STORED and not (
            await self._store.is_stored_event_published(stored.owner_id, stored.id)
        ):
            await self._events.stored(stored, event.claim)
            await self._store.mark_stored_event_published(stored.owner_id, stored.id)
        if result.created:
            DOCUMENTS_STORED.inc()
            CHUNKS_STORED.inc(len(chunks))
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

    async def claimed_chunks(
        self,
        owner_id: str,
        document_id: str,
        claim: str | None,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Chunk]:
        """The chunks for another service holding the document's claim (adr/0020); a wrong
        claim reads as no such document."""
        document = await self._store.get(owner_id, document_id)
        if document is None or not document.is_visible:
            raise DocumentNotFoundError(document_id)
        if not claim_matches(document.claim_digest, claim):
            raise DocumentNotFoundError(document_id)
        after = ChunkCursor.decode(cursor) if cursor else None
        return await self._store.chunks(
            owner_id, document_id, limit=check_limit(limit), after=after
        )

    async def delete(self, owner_id: str, document_id: str) -> Document:
        """Hide the document and drop its chunks, then ask the other services to follow.

        The store records the announcement as owed with the deletion (its outbox); a publish
        that fails leaves it owed and the deletion relay publishes it again until the
        bus confirms it. Repeating the request announces it again too.
        """
        document = await self._store.delete(owner_id, document_id, at=self._clock())
        if document is None:
            raise DocumentNotFoundError(document_id)
        DOCUMENTS_DELETED.inc()
        await self._announce_deletion(document)
        return document

    async def discard(self, event: IngestionJobFailed) -> None:
        """A job failed after its document was announced: remove whatever of it exists (the
        deletion cascades to the vector and graph services like a user's deletion)."""
        document = await self._store.delete(event.owner_id, event.document_id, at=self._clock())
        if document is None:
            _log.info("failed_job_left_no_document", document_id=event.document_id)
            return
        DOCUMENTS_DELETED.inc()
        _log.info("failed_job_document_discarded", document_id=event.document_id)
        await self._announce_deletion(document)

    async def _announce_deletion(self, document: Document) -> bool:
        try:
            await self._events.deleted(document)
        except Exception as exc:
            _log.warning(
                "document_deleted_publish_failed",
                document_id=document.id,
                error=str(exc),
                retried_by="deletion relay",
            )
            if self._on_unannounced is not None:
                self._on_unannounced()
            return False
        await self._store.mark_deletion_announced(document.owner_id, document.id)
        return True

    async def announce_pending_deletions(self, limit: int = 100) -> int:
        """Publish every owed ``document.deleted`` (oldest first); raise at the first the bus
        refuses (the relay backs off). How many were announced."""
        pending = await self._store.unannounced_deletions(limit)
        for document in pending:
            await self._events.deleted(document)
            await self._store.mark_deletion_announced(document.owner_id, document.id)
        return len(pending)

    async def deletion(self, owner_id: str, document_id: str) -> DeletionStatus:
        document = await self._store.get(owner_id, document_id)
        if document is None:
            raise DocumentNotFoundError(document_id)
        return deletion_status(document)
