"""Event contracts: the CloudEvents-style envelope and every event type, versioned, in one place.

Routing: every event goes to the durable topic exchange :data:`EXCHANGE` with its ``type`` as the
routing key. A consumer group binds patterns such as ``document.*``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from kglab_shared.correlation import get_correlation_id

EXCHANGE = "kglab.events"

# Event types (routing keys).
INGESTION_JOB_REQUESTED = "ingestion.job.requested"
DOCUMENT_EXTRACTED = "document.extracted"
DOCUMENT_STORED = "document.stored"
DOCUMENT_DELETED = "document.deleted"
DOCUMENT_PARTS_REMOVED = "document.parts_removed"
#: A service finished (or failed for good) its part of indexing a document.
DOCUMENT_INDEXED = "document.indexed"
#: A job failed after its document was announced: the document service removes what exists.
INGESTION_JOB_FAILED = "ingestion.job.failed"

#: The parts of indexing a document, each acknowledged by the service that does it.
PART_STORED = "stored"
PART_EMBEDDED = "embedded"
PART_GRAPHED = "graphed"
INDEXING_PARTS = (PART_STORED, PART_EMBEDDED, PART_GRAPHED)


class EventEnvelope(BaseModel):
    """What travels on the bus. ``data`` is the payload of the model named by ``type``."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    correlation_id: str | None = None
    schema_version: int = 1
    data: dict[str, Any] = Field(default_factory=dict)
    #: W3C trace context (``traceparent``/``tracestate``) carried across the broker.
    trace: dict[str, str] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return cls.model_validate_json(raw)


class EventData(BaseModel):
    """Base of every event payload. Subclasses set ``event_type`` and ``schema_version``."""

    model_config = ConfigDict(extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def envelope(
        self,
        *,
        source: str,
        subject: str | None = None,
        correlation_id: str | None = None,
        event_id: str | None = None,
    ) -> EventEnvelope:
        from kglab_shared.tracing import current_trace_headers

        return EventEnvelope(
            id=event_id or uuid.uuid4().hex,
            type=self.event_type,
            source=source,
            subject=subject,
            correlation_id=correlation_id or get_correlation_id(),
            schema_version=self.schema_version,
            data=self.model_dump(mode="json"),
            trace=current_trace_headers(),
        )


class Provenance(BaseModel):
    source_name: str = Field(description="Original file name or URL.")
    uploader_id: str
    uploaded_at: datetime
    size_bytes: int
    content_type: str
    sha256: str
    processor_version: str


class IngestionJobRequested(EventData):
    event_type: ClassVar[str] = INGESTION_JOB_REQUESTED
    job_id: str
    owner_id: str
    blob_key: str | None = None
    url: str | None = None


class ExtractedChunk(BaseModel):
    chunk_id: str
    position: int
    text: str
    heading: str | None = None


class DocumentExtracted(EventData):
    """Ids only: the chunks stay with ingestion until the document service reads them with
    ``claim`` (``kglab_shared.claims``, adr/0020)."""

    event_type: ClassVar[str] = DOCUMENT_EXTRACTED
    schema_version: ClassVar[int] = 2
    document_id: str
    job_id: str
    owner_id: str
    title: str
    media_type: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    provenance: Provenance
    chunk_count: int
    claim: str = Field(description="Opens the extracted chunks at ingestion (adr/0020).")


class DocumentStored(EventData):
    """Ids only: consumers read the chunks from the document service with ``claim``."""

    event_type: ClassVar[str] = DOCUMENT_STORED
    schema_version: ClassVar[int] = 2
    document_id: str
    owner_id: str
    title: str
    media_type: str
    chunk_count: int
    claim: str = Field(description="Opens the stored chunks at the document service.")


class DocumentDeleted(EventData):
    event_type: ClassVar[str] = DOCUMENT_DELETED
    document_id: str
    owner_id: str


class DocumentPartsRemoved(EventData):
    event_type: ClassVar[str] = DOCUMENT_PARTS_REMOVED
    document_id: str
    owner_id: str
    part: str = Field(description="Which service removed its part: 'vector' or 'graph'.")


class DocumentIndexed(EventData):
    """One part of a document's indexing is done (``ok``) or failed for good (after the
    consumer's last attempt). Ids only: the failure's cause stays in the producer's logs."""

    event_type: ClassVar[str] = DOCUMENT_INDEXED
    document_id: str
    owner_id: str
    part: str = Field(description="'stored' (document), 'embedded' (vector), 'graphed' (graph).")
    ok: bool = True


class IngestionJobFailed(EventData):
    """A job failed after its document was announced; its partial document is to be removed."""

    event_type: ClassVar[str] = INGESTION_JOB_FAILED
    job_id: str
    owner_id: str
    document_id: str


EVENT_MODELS: dict[tuple[str, int], type[EventData]] = {
    (model.event_type, model.schema_version): model
    for model in (
        IngestionJobRequested,
        DocumentExtracted,
        DocumentStored,
        DocumentDeleted,
        DocumentPartsRemoved,
        DocumentIndexed,
        IngestionJobFailed,
    )
}


class UnknownEventError(ValueError):
    pass


def parse_event_data(envelope: EventEnvelope) -> EventData:
    """Validate an envelope's payload against the model of its type and schema version."""
    model = EVENT_MODELS.get((envelope.type, envelope.schema_version))
    if model is None:
        raise UnknownEventError(
            f"No model for event type {envelope.type!r} version {envelope.schema_version}."
        )
    return model.model_validate(envelope.data)
