"""The document service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kglab_document.domain import (
    Chunk,
    DeletionState,
    DeletionStatus,
    Document,
    DocumentStatus,
    Page,
)


class DocumentOut(BaseModel):
    id: str
    title: str
    media_type: str = Field(examples=["application/pdf"])
    source: str = Field(description="The uploaded file's name or the fetched URL.")
    created_at: datetime = Field(description="When it was submitted (UTC).")
    chunk_count: int
    status: DocumentStatus
    job_id: str
    metadata: dict[str, Any]
    provenance: dict[str, Any]

    @classmethod
    def of(cls, document: Document) -> DocumentOut:
        return cls(
            id=document.id,
            title=document.title,
            media_type=document.media_type,
            source=document.source,
            created_at=document.created_at,
            chunk_count=document.chunk_count,
            status=document.status,
            job_id=document.job_id,
            metadata=document.metadata,
            provenance=document.provenance,
        )


class DocumentPageOut(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page (same filters and sort); null at the end."
    )

    @classmethod
    def of(cls, page: Page[Document]) -> DocumentPageOut:
        return cls(items=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor)


class ChunkOut(BaseModel):
    chunk_id: str
    document_id: str
    position: int
    text: str
    heading: str | None

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkOut:
        return cls(
            chunk_id=chunk.chunk_id,
            document_id=chunk.document_id,
            position=chunk.position,
            text=chunk.text,
            heading=chunk.heading,
        )


class ChunkPageOut(BaseModel):
    items: list[ChunkOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Chunk]) -> ChunkPageOut:
        return cls(items=[ChunkOut.of(c) for c in page.items], next_cursor=page.next_cursor)


class DeletionAcceptedOut(BaseModel):
    document_id: str
    status: DocumentStatus
    deletion_url: str = Field(description="Where to follow the removal of every part.")


class DeletionStatusOut(BaseModel):
    document_id: str
    state: DeletionState
    requested_at: datetime | None
    parts: dict[str, bool] = Field(
        description="Each part and whether it is gone: document, vector, graph.",
        examples=[{"document": True, "vector": True, "graph": False}],
    )

    @classmethod
    def of(cls, status: DeletionStatus) -> DeletionStatusOut:
        return cls(
            document_id=status.document_id,
            state=status.state,
            requested_at=status.requested_at,
            parts=status.parts,
        )
