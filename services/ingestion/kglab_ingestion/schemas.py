"""The ingestion service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kglab_ingestion.domain import IngestionJob, JobStage, JobStatus, SourceKind
from kglab_shared.pages import PageOut

_JOB_ID = "5f0c6b8e9d4a4c1fb1d1c2a3b4c5d6e7"
_UPLOADER = "3f9a2c71d4e84b0c9e5a7d12b6f08c43"
_UPLOADED_AT = "2026-03-04T10:12:05.118000Z"
_PROVENANCE: dict[str, Any] = {
    "source_name": "graph-databases.md",
    "uploader_id": _UPLOADER,
    "uploaded_at": _UPLOADED_AT,
    "size_bytes": 18244,
    "content_type": "text/markdown",
    "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
    "processor_version": "kglab-extraction/1.0",
}
#: A Markdown upload as POST /files accepts it (202): queued, nothing extracted yet.
JOB_ACCEPTED_EXAMPLE: dict[str, Any] = {
    "job_id": _JOB_ID,
    "status": "pending",
    "stage": "queued",
    "progress": 0,
    "error": None,
    "notice": None,
    "document_id": None,
    "document_deleted_at": None,
    "kind": "file",
    "source_name": "graph-databases.md",
    "url": None,
    "title": None,
    "chunk_count": None,
    "attempts": 0,
    "units_done": 0,
    "units_total": None,
    "created_at": _UPLOADED_AT,
    "updated_at": _UPLOADED_AT,
    "started_at": None,
    "finished_at": None,
    "provenance": _PROVENANCE,
    "duplicate": False,
    "duplicate_of": None,
    "near_duplicate_of": None,
    "near_duplicate_similarity": None,
    "links": {"self": f"/api/v1/jobs/{_JOB_ID}", "progress": f"/ws/jobs/{_JOB_ID}"},
}
#: The same job once processed (its document id is derived from the job id, as the worker
#: derives it).
JOB_EXAMPLE: dict[str, Any] = {
    **JOB_ACCEPTED_EXAMPLE,
    "status": "completed",
    "stage": "done",
    "progress": 100,
    "document_id": "dc15d76b0fd354c1821813cac3a7f2f6",
    "title": "Graph databases",
    "chunk_count": 4,
    "attempts": 1,
    "units_done": 1,
    "units_total": 1,
    "updated_at": "2026-03-04T10:12:06.402000Z",
    "started_at": "2026-03-04T10:12:05.230000Z",
    "finished_at": "2026-03-04T10:12:06.402000Z",
}
#: The same bytes uploaded again by the same user (200): the existing job.
JOB_DUPLICATE_EXAMPLE: dict[str, Any] = {**JOB_EXAMPLE, "duplicate": True, "duplicate_of": _JOB_ID}
_URL_JOB_ID = "a81e4c0f6b2d4e79b3c5d7e9f1a2b3c4"
_URL = "https://example.org/articles/graphs"
_URL_SUBMITTED_AT = "2026-03-04T10:15:41.907000Z"
#: A URL as POST /urls accepts it (202): the page is fetched by the worker.
URL_JOB_ACCEPTED_EXAMPLE: dict[str, Any] = {
    **JOB_ACCEPTED_EXAMPLE,
    "job_id": _URL_JOB_ID,
    "kind": "url",
    "source_name": _URL,
    "url": _URL,
    "created_at": _URL_SUBMITTED_AT,
    "updated_at": _URL_SUBMITTED_AT,
    "provenance": {
        "source_name": _URL,
        "uploader_id": _UPLOADER,
        "uploaded_at": _URL_SUBMITTED_AT,
        "size_bytes": None,
        "content_type": None,
        "sha256": None,
        "processor_version": "kglab-extraction/1.0",
    },
    "links": {"self": f"/api/v1/jobs/{_URL_JOB_ID}", "progress": f"/ws/jobs/{_URL_JOB_ID}"},
}
#: Where a page ending with JOB_EXAMPLE ends (JobCursor.encode of its creation time and id).
_NEXT_CURSOR = (
    "eyJ0IjogIjIwMjYtMDMtMDRUMTA6MTI6MDUuMTE4MDAwKzAwOjAwIiwgImlkIjogIjVmMGM2YjhlOWQ0YTRjMWZiMW"
    "QxYzJhM2I0YzVkNmU3In0"
)


class ProvenanceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PROVENANCE]})

    source_name: str = Field(description="The original file name (sanitised) or the URL.")
    uploader_id: str
    uploaded_at: datetime
    size_bytes: int | None
    content_type: str | None = Field(description="The real type, detected from the bytes.")
    sha256: str | None
    processor_version: str | None


class JobLinks(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE["links"]]})

    self: str
    progress: str = Field(description="WebSocket with live progress (pass ?token=).")


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    job_id: str
    status: JobStatus = Field(
        description="pending, processing, completed or failed. `completed` means the document "
        "and its chunks are readable, search finds it and its entities are in the graph; a "
        "job whose document could not be stored, embedded or graphed is `failed` with a "
        "readable `error`, and nothing of its document is kept."
    )
    stage: JobStage = Field(
        description="Where the job is: queued, extracting (its text), storing (the document "
        "service), embedding (search), graphing (entities), done. While processing, the first "
        "part of the document not yet done names the stage; a failed job keeps the stage it "
        "failed in."
    )
    progress: int = Field(ge=0, le=100)
    error: str | None = Field(description="Why the job failed (or why it is being retried).")
    notice: str | None = Field(
        default=None,
        description="Something to know about a job that did not fail, e.g. that its text was "
        "not valid UTF-8 and was read in a guessed encoding.",
    )
    document_id: str | None = Field(
        description="The document, once the job completed (readable, searchable, in the "
        "graph); null before and again once it was deleted."
    )
    document_deleted_at: datetime | None = Field(
        default=None,
        description="When the document this job produced was deleted. The same file may then "
        "be uploaded again: it becomes a new job.",
    )
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
            stage=job.current_stage,
            progress=job.progress,
            error=job.error,
            notice=job.notice,
            document_id=job.live_document_id,
            document_deleted_at=job.document_deleted_at,
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


class JobPageOut(PageOut[JobOut]):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [URL_JOB_ACCEPTED_EXAMPLE, JOB_EXAMPLE],
                    "next_cursor": _NEXT_CURSOR,
                }
            ]
        }
    )


class UrlIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://example.org/articles/graphs"}]},
    )

    url: str = Field(min_length=1, max_length=2048, description="An http or https URL.")


#: The event's document, documented once for the feed and the webhooks.
EVENT_DOCUMENT_DOC = (
    "The document the event is about, the one the job produced: set on `job.completed` and "
    "on `document.deleted` (where `job.document_id` is already null: the document is gone)."
)


def event_document_id(job: IngestionJob) -> str | None:
    """The document an event of ``job`` is about (kept after its deletion, unlike the job's
    own ``document_id``)."""
    return job.document_id if job.status is JobStatus.COMPLETED else None


class EventOut(BaseModel):
    """One change in the event feed: the job (and its document) in its latest state."""

    id: str = Field(description="This event's cursor: pass it as `after` to read on from here.")
    type: str = Field(
        description="`job.pending`, `job.processing`, `job.completed`, `job.failed`, or "
        "`document.deleted` once the job's document is gone.",
        examples=["job.completed"],
    )
    at: datetime = Field(description="When the change happened.")
    document_id: str | None = Field(
        default=None, description=EVENT_DOCUMENT_DOC, examples=["9b2f4c1e8a7d4e0f9c3b2a1d0e9f8a7b"]
    )
    job: JobOut


class EventPageOut(BaseModel):
    """Changes in the order they happened. Read on with `after` = the last event's `id`, or
    `next_cursor` (the same); an empty page means nothing new yet."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "id": "eyJjIjogIjIwMjYtMTItMDZUMTI6MDA6MDMrMDA6MDAiLCAiaWQiOiAiMSJ9",
                            "type": "job.completed",
                            "at": "2026-12-06T12:00:03Z",
                            "job": JOB_EXAMPLE,
                        }
                    ],
                    "next_cursor": "eyJjIjogIjIwMjYtMTItMDZUMTI6MDA6MDMrMDA6MDAiLCAiaWQiOiAiMSJ9",
                }
            ]
        }
    )

    events: list[EventOut]
    next_cursor: str | None = Field(
        description="The cursor to pass next (the last event's id; the one you passed when "
        "nothing changed)."
    )
