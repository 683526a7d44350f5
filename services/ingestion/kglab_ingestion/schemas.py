"""The ingestion service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kglab_ingestion.domain import IngestionJob, JobStatus, Page, SourceKind


class ProvenanceOut(BaseModel):
    source_name: str = Field(description="The original file name (sanitised) or the URL.")
    uploader_id: str
    uploaded_at: datetime
    size_bytes: int | None
    content_type: str | None = Field(description="The real type, detected from the bytes.")
    sha256: str | None
    processor_version: str | None


class JobLinks(BaseModel):
    self: str
    progress: str = Field(description="WebSocket with live progress (pass ?token=).")


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "5f0c6b8e9d4a4c1fb1d1c2a3b4c5d6e7",
                    "status": "processing",
                    "progress": 40,
                    "error": None,
                    "document_id": None,
                    "kind": "file",
                    "attempts": 1,
                }
            ]
        }
    )

    job_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    error: str | None = Field(description="Why the job failed (or why it is being retried).")
    document_id: str | None = Field(description="The document, once the job completed.")
    kind: SourceKind
    source_name: str
    url: str | None
    title: str | None
    chunk_count: int | None
    attempts: int
    units_done: int = Field(description="Units (PDF pages) extracted so far.")
    units_total: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    provenance: ProvenanceOut
    duplicate: bool = Field(
        default=False,
        description="True when this upload's bytes were already submitted: this is that job.",
    )
    duplicate_of: str | None = Field(
        default=None, description="For a duplicate upload, the existing job's id."
    )
    near_duplicate_of: str | None = Field(
        description="An earlier job of yours whose text is almost the same (MinHash > 0.9)."
    )
    near_duplicate_similarity: float | None
    links: JobLinks

    @classmethod
    def of(cls, job: IngestionJob, *, duplicate: bool = False) -> JobOut:
        return cls(
            job_id=job.id,
            status=job.status,
            progress=job.progress,
            error=job.error,
            document_id=job.document_id if job.status is JobStatus.COMPLETED else None,
            kind=job.source_kind,
            source_name=job.source_name,
            url=job.url,
            title=job.title,
            chunk_count=job.chunk_count,
            attempts=job.attempts,
            units_done=job.units_done,
            units_total=job.units_total,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            provenance=ProvenanceOut(
                source_name=job.source_name,
                uploader_id=job.owner_id,
                uploaded_at=job.uploaded_at,
                size_bytes=job.size_bytes,
                content_type=job.content_type,
                sha256=job.sha256,
                processor_version=job.processor_version,
            ),
            duplicate=duplicate,
            duplicate_of=job.id if duplicate else None,
            near_duplicate_of=job.near_duplicate_of,
            near_duplicate_similarity=job.near_duplicate_similarity,
            links=JobLinks(self=f"/api/v1/jobs/{job.id}", progress=f"/ws/jobs/{job.id}"),
        )


class JobPageOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page (same filter); null at the end."
    )

    @classmethod
    def of(cls, page: Page) -> JobPageOut:
        return cls(items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor)


class UrlIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://example.org/articles/graphs"}]},
    )

    url: str = Field(min_length=1, max_length=2048, description="An http or https URL.")
