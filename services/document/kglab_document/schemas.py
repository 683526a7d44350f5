"""The document service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kglab_document.domain import (
    Chunk,
    DeletionState,
    DeletionStatus,
    Document,
    DocumentStatus,
    Rebuild,
    RebuildStatus,
)
from kglab_shared.pages import PageOut

# One fictional upload, so every example in the document tells the same story.
_DOCUMENT_ID = "530a20c599725e8d8168319cbc3d624b"
_REBUILD_OWNER = "9c8f1f0e-80c1-4dd9-a796-973982e0ddff"
_DOCUMENT: JsonDict = {
    "id": _DOCUMENT_ID,
    "title": "Velmora: a salt town",
    "media_type": "application/pdf",
    "source": "velmora.pdf",
    "created_at": "2026-03-04T10:12:07.746000Z",
    "chunk_count": 12,
    "status": "stored",
    "job_id": "adc0851c86524f2e838e7f9bb06af6ec",
    "metadata": {"pages": 4, "author": "A. Lovelace"},
    "provenance": {
        "source_name": "velmora.pdf",
        "uploader_id": "9c8f1f0e-80c1-4dd9-a796-973982e0ddff",
        "uploaded_at": "2026-03-04T10:12:07.746846Z",
        "size_bytes": 184320,
        "content_type": "application/pdf",
        "sha256": "0f70823b0f68d7c5cd53e779de049b13558bd6d390bde86e1a1ce5249c65a5d7",
        "processor_version": "kglab-extraction/1.0",
    },
}
_CHUNK: JsonDict = {
    "chunk_id": f"{_DOCUMENT_ID}-00003",
    "document_id": _DOCUMENT_ID,
    "position": 3,
    "text": "The town's income comes mostly from salt mining. Marie Curie visited Velmora in 1911.",
    "heading": "Economy",
}
_DELETION_URL = f"/api/v1/documents/{_DOCUMENT_ID}/deletion"


class DocumentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DOCUMENT]})

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


class DocumentPageOut(PageOut[DocumentOut]):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_DOCUMENT], "next_cursor": "eyJrIjoiMjAyNi0wMy0wNFQxMDoxMiJ9"}]
        }
    )


class ChunkOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CHUNK]})

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


class ChunkPageOut(PageOut[ChunkOut]):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_CHUNK], "next_cursor": None}]}
    )


class DeletionAcceptedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"document_id": _DOCUMENT_ID, "status": "deleting", "deletion_url": _DELETION_URL}
            ]
        }
    )

    document_id: str
    status: DocumentStatus
    deletion_url: str = Field(description="Where to follow the removal of every part.")


class DeletionStatusOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "document_id": _DOCUMENT_ID,
                    "state": "in_progress",
                    "requested_at": "2026-03-06T08:00:00Z",
                    "parts": {"document": True, "vector": True, "graph": False},
                }
            ]
        }
    )

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


_REBUILD: JsonDict = {
    "id": "0b7c5a3e9d1f4a2b8c6d0e1f2a3b4c5d",
    "owner_id": None,
    "status": "running",
    "total": 10000,
    "published": 4200,
    "progress": 42,
    "checkpoint": "530a20c599725e8d8168319cbc3d624b",
    "started_at": "2026-03-05T02:00:00Z",
    "updated_at": "2026-03-05T02:03:10Z",
    "finished_at": None,
    "error": None,
}
_DEAD_LETTER: JsonDict = {
    "event_id": "4f9a2c1e7b3d4e5f8a6b0c1d2e3f4a5b",
    "type": "document.stored",
    "subject": _DOCUMENT_ID,
    "correlation_id": "req-7d1f0c2e",
    "attempts": 3,
    "error": "Qdrant did not answer within 10 s.",
    "dead_at": "2026-03-05T01:58:41Z",
}


class RebuildRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"owner_id": _REBUILD_OWNER}]}
    )
    owner_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Only this user's documents; omit for everyone's.",
    )


class RebuildOut(BaseModel):
    """A rebuild's progress: ``published`` of ``total`` documents announced to the vector and
    graph services; ``checkpoint`` is the last one, where a resumed rebuild goes on."""

    model_config = ConfigDict(json_schema_extra={"examples": [_REBUILD]})

    id: str
    owner_id: str | None
    status: RebuildStatus
    total: int
    published: int
    progress: int = Field(description="0-100: published / total.")
    checkpoint: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, rebuild: Rebuild) -> RebuildOut:
        progress = 100 if rebuild.total == 0 else min(100, rebuild.published * 100 // rebuild.total)
        if rebuild.status is not RebuildStatus.COMPLETED:
            progress = min(progress, 99)
        return cls(
            id=rebuild.id,
            owner_id=rebuild.owner_id,
            status=rebuild.status,
            total=rebuild.total,
            published=rebuild.published,
            progress=progress,
            checkpoint=rebuild.checkpoint,
            started_at=rebuild.started_at,
            updated_at=rebuild.updated_at,
            finished_at=rebuild.finished_at,
            error=rebuild.error,
        )


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DEAD_LETTER]})

    event_id: str
    type: str
    subject: str | None
    correlation_id: str | None
    attempts: int
    error: str
    dead_at: datetime


class DeadLetterPageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"group": "vector", "items": [_DEAD_LETTER]}]}
    )

    group: str
    items: list[DeadLetterOut]


class DeadLetterReplayOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"group": "vector", "replayed": 3}]})

    group: str
    replayed: int
