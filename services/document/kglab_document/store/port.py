"""The ``DocumentStore`` port, in domain terms; Mongo queries and SQL stay in the adapters.

Every read and write is scoped to an owner: a document another user owns does not exist here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from kglab_document.domain import (
    Chunk,
    ChunkCursor,
    Document,
    DocumentCursor,
    DocumentFilters,
    Rebuild,
    SaveResult,
    SortOrder,
)
from kglab_shared.pages import Page


class DocumentStore(Protocol):
    async def save_extracted(self, document: Document, chunks: Sequence[Chunk]) -> SaveResult:
        """Store a document and its chunks once; a repeat changes nothing (``created`` False).

        A document already stored (or being deleted) keeps its state: the result carries it.
        """

    async def mark_stored_event_published(self, owner_id: str, document_id: str) -> None:
        """Record that the bus confirmed ``document.stored`` for this document."""

    async def set_claim(self, owner_id: str, document_id: str, digest: str) -> None:
        """Replace the digest of the claim that opens the document's chunks (a rebuild
        announces the document anew with a claim of its own)."""

    async def is_stored_event_published(self, owner_id: str, document_id: str) -> bool:
        """Whether ``mark_stored_event_published`` was recorded for this document."""

    async def list_documents(
        self,
        owner_id: str,
        *,
        filters: DocumentFilters,
        sort: SortOrder,
        limit: int,
        after: DocumentCursor | None = None,
    ) -> Page[Document]:
        """The owner's stored documents after ``after`` in ``sort`` order (ties broken by id)."""

    async def get(self, owner_id: str, document_id: str) -> Document | None:
        """The owner's document in any status, or None."""

    async def chunks(
        self,
        owner_id: str,
        document_id: str,
        *,
        limit: int,
        after: ChunkCursor | None = None,
    ) -> Page[Chunk]:
        """The document's chunks in position order."""

    async def delete(self, owner_id: str, document_id: str, *, at: datetime) -> Document | None:
        """Mark the document deleting (first request's time kept), remove its chunks and record
        that ``document.deleted`` is still to be announced (an outbox entry: see
        :meth:`unannounced_deletions`). A repeat records it again."""

    async def unannounced_deletions(self, limit: int) -> list[Document]:
        """Deleted documents whose ``document.deleted`` the bus has not confirmed yet, oldest
        request first."""

    async def mark_deletion_announced(self, owner_id: str, document_id: str) -> None:
        """Record that the bus confirmed ``document.deleted`` for this document."""

    async def mark_part_removed(
        self, owner_id: str, document_id: str, part: str, *, at: datetime
    ) -> bool:
        """Record that another service removed its part; False when there is no such document."""

    async def stored_documents(
        self, *, owner_id: str | None, after: str | None, limit: int
    ) -> list[Document]:
        """Stored documents of every owner (or of ``owner_id``) in id order after ``after``:
        the walk of a rebuild, across owners (an administrator's operation)."""

    async def count_stored(self, owner_id: str | None) -> int:
        """How many documents are stored (of ``owner_id``, or of everyone)."""

    async def save_rebuild(self, rebuild: Rebuild) -> None:
        """Insert or replace a rebuild's record (its progress and checkpoint)."""

    async def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        """A rebuild's record, or None."""

    async def running_rebuilds(self) -> list[Rebuild]:
        """Rebuilds recorded as running: to resume after a restart."""

    async def ping(self) -> None:
        """Raise if the store cannot answer (for /ready)."""
