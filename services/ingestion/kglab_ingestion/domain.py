"""The ingestion service's domain: jobs, their life cycle, provenance and domain errors."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from kglab_ingestion.extraction.sniff import SNIFF_BYTES
from kglab_shared.errors import (
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)

MAX_PAGE_SIZE = 100
#: Names documents derived from jobs, so a redelivered job yields the same document id.
_DOCUMENT_NAMESPACE = uuid.UUID("6f1d4c52-3a8e-4f0b-9a57-2d2b9e0c7a11")
_MAX_NAME_CHARS = 255


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


class JobStage(StrEnum):
    """Where a job is. ``extracting`` is the worker's; the rest wait for the services that
    store, embed and graph the document (``document.indexed``): the first part not yet done
    names the stage, and the job completes when all three are done (adr/0010, 2026-12-06)."""

    QUEUED = "queued"
    EXTRACTING = "extracting"
    STORING = "storing"
    EMBEDDING = "embedding"
    GRAPHING = "graphing"
    DONE = "done"


#: Each part of indexing, and the stage that waits for it, in the order they are named.
PART_STAGES: tuple[tuple[str, JobStage], ...] = (
    ("stored", JobStage.STORING),
    ("embedded", JobStage.EMBEDDING),
    ("graphed", JobStage.GRAPHING),
)
ALL_PARTS = frozenset(part for part, _ in PART_STAGES)
#: Progress once the text is extracted, and what each acknowledged part adds up to 100.
#: Extraction covers 5-65; the announcement 70; each part 10 more: every tenth is reported.
EXTRACTED_PROGRESS = 70
_PART_PROGRESS = {"stored": 10, "embedded": 10, "graphed": 10}

_PART_FAILURES = {
    "stored": "The document could not be stored",
    "embedded": "The document could not be indexed for search",
    "graphed": "The document's entities could not be added to the knowledge graph",
}


def stage_for(parts_done: frozenset[str]) -> JobStage:
    """The stage of a job whose text is extracted and whose document has ``parts_done``."""
    for part, stage in PART_STAGES:
        if part not in parts_done:
            return stage
    return JobStage.DONE


def progress_for(parts_done: frozenset[str]) -> int:
    return EXTRACTED_PROGRESS + sum(_PART_PROGRESS.get(part, 0) for part in parts_done)


def parts_awaited(parts_done: frozenset[str], parts_failed: frozenset[str]) -> frozenset[str]:
    """Parts still to report. Nothing follows a document that could not be stored."""
    if "stored" in parts_failed:
        return frozenset()
    return ALL_PARTS - parts_done - parts_failed


def part_failure_message(part: str) -> str:
    """The sentence a person reads when a part of their document failed for good."""
    what = _PART_FAILURES.get(part, "The document could not be indexed")
    return f"{what}; nothing of it was kept. Try the upload again later."


def indexing_timeout_message(timeout_s: float) -> str:
    minutes = max(1, round(timeout_s / 60))
    return (
        f"Indexing the document did not finish within {minutes} minute"
        f"{'' if minutes == 1 else 's'}; nothing of it was kept. Try the upload again later."
    )


def encode_parts(parts: frozenset[str]) -> str | None:
    return ",".join(sorted(parts)) or None


def decode_parts(raw: str | None) -> frozenset[str]:
    return frozenset(p for p in (raw or "").split(",") if p)


class SourceKind(StrEnum):
    FILE = "file"
    URL = "url"


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def document_id_for(job_id: str) -> str:
    """The document a job produces; derived, so reprocessing the job cannot make a second one."""
    return uuid.uuid5(_DOCUMENT_NAMESPACE, job_id).hex


def new_job_id() -> str:
    return uuid.uuid4().hex


def megabytes(size: int) -> str:
    """``14.2 MB`` (one decimal, trailing .0 dropped): how sizes appear in messages."""
    text = f"{size / 1_048_576:.1f}"
    return f"{text.removesuffix('.0')} MB"


_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')


def sanitise_file_name(raw: str | None) -> str:
    """A display name safe anywhere: no directories, no control characters, bounded length.

    ``../../etc/passwd`` becomes ``passwd``; a name with nothing left becomes ``upload``.
    The name is only ever shown and used to check the extension: files are stored by hash.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("", name).strip().lstrip(".").strip()
    if len(name) > _MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: _MAX_NAME_CHARS - len(extension) - 1] + "." + extension
        else:
            name = name[:_MAX_NAME_CHARS]
    return name or "upload"


@dataclass(frozen=True, slots=True)
class IngestionJob:
    id: str
    owner_id: str
    source_kind: SourceKind
    #: The sanitised original file name, or the URL.
    source_name: str
    created_at: datetime
    updated_at: datetime
    status: JobStatus = JobStatus.PENDING
    progress: int = 0
    attempts: int = 0
    #: A sentence for people; None unless the job failed.
    error: str | None = None
    #: Whether the failure may go away if the job is tried again.
    error_retryable: bool = False
    #: SHA-256 of the raw file (the blob key); for URL jobs, set once the page is fetched.
    sha256: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    url: str | None = None
    processor_version: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    #: Units (PDF pages) already extracted and saved; a retry starts after them.
    units_done: int = 0
    units_total: int | None = None
    document_id: str | None = None
    title: str | None = None
    chunk_count: int | None = None
    #: An identical earlier job of the same owner (never set on a job that was processed).
    duplicate_of: str | None = None
    near_duplicate_of: str | None = None
    near_duplicate_similarity: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: When the document this job produced was deleted (the job then no longer counts as a
    #: duplicate of a new upload, and its document id points at nothing).
    document_deleted_at: datetime | None = None
    #: None on rows written before stages existed (read as ``queued``/``extracting``).
    stage: JobStage | None = None
    parts_done: frozenset[str] = frozenset()
    parts_failed: frozenset[str] = frozenset()
    #: When extraction ended and the document was announced (``document.extracted``).
    extracted_at: datetime | None = None
    #: A sentence for people about a job that did not fail (e.g. how its text was decoded).
    notice: str | None = None

    @property
    def current_stage(self) -> JobStage:
        if self.stage is not None:
            return self.stage
        if self.status is JobStatus.COMPLETED:
            return JobStage.DONE
        return JobStage.QUEUED if self.status is JobStatus.PENDING else JobStage.EXTRACTING

    @property
    def live_document_id(self) -> str | None:
        """The document to show: set once the job completed, gone once it was deleted."""
        if self.status is not JobStatus.COMPLETED or self.document_deleted_at is not None:
            return None
        return self.document_id

    @property
    def uploaded_at(self) -> datetime:
        return self.created_at


@dataclass(frozen=True, slots=True)
class NewFileJob:
    """What an accepted upload knows before it becomes a job row."""

    owner_id: str
    source_name: str
    sha256: str
    size_bytes: int
    content_type: str


@dataclass(frozen=True, slots=True)
class ChangeCursor:
    """Where a reader of the event feed stopped: the change time and id of the last job seen."""

    changed_at: datetime
    job_id: str

    def encode(self) -> str:
        raw = json.dumps({"c": self.changed_at.isoformat(), "id": self.job_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> ChangeCursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(changed_at=as_utc(datetime.fromisoformat(data["c"])), job_id=str(data["id"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidQueryError(
                "The cursor is not one this feed issued; start again without it (or with the "
                "last event's id)."
            ) from exc


def event_type(job: IngestionJob) -> str:
    """What a job's latest change means to its owner: ``document.deleted`` once its document
    is gone, else ``job.<status>``."""
    if job.document_deleted_at is not None:
        return "document.deleted"
    return f"job.{job.status.value}"


@dataclass(frozen=True, slots=True)
class JobCursor:
    """Where the previous page ended: the creation time and id of its last job."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "id": self.job_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> JobCursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(created_at=as_utc(datetime.fromisoformat(data["t"])), job_id=str(data["id"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidQueryError(
                "The cursor is not one this service issued; start again without it."
            ) from exc


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """One message on a job's progress channel (and on its WebSocket)."""

    job_id: str
    status: JobStatus
    progress: int
    error: str | None = None
    document_id: str | None = None
    stage: JobStage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def to_json(self) -> str:
        return json.dumps(
            {
                "job_id": self.job_id,
                "status": self.status.value,
                "progress": self.progress,
                "error": self.error,
                "document_id": self.document_id,
                "stage": None if self.stage is None else self.stage.value,
                "final": self.is_final,
                **self.extra,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ProgressUpdate:
        data = json.loads(raw)
        known = {"job_id", "status", "progress", "error", "document_id", "stage", "final"}
        stage = data.get("stage")
        return cls(
            job_id=str(data["job_id"]),
            status=JobStatus(data["status"]),
            progress=int(data["progress"]),
            error=data.get("error"),
            document_id=data.get("document_id"),
            stage=None if stage is None else JobStage(stage),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def of(cls, job: IngestionJob) -> ProgressUpdate:
        return cls(
            job_id=job.id,
            status=job.status,
            progress=job.progress,
            error=job.error,
            document_id=job.live_document_id,
            stage=job.current_stage,
        )


# Domain errors: each ``detail`` is the sentence a person reads.


class JobNotFoundError(NotFoundError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"There is no job {job_id} among yours.")


class InvalidQueryError(UnprocessableError):
    pass


class FileTooLargeError(PayloadTooLargeError):
    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        size_text = f"more than {megabytes(limit)}" if at_least else megabytes(size)
        super().__init__(
            f"The file is {size_text}; the limit is {megabytes(limit)}.",
            limit_bytes=limit,
        )


class EmptyFileError(UnprocessableError):
    def __init__(self) -> None:
        super().__init__("The file is empty; there is nothing to ingest.")


class MissingFileError(UnprocessableError):
    def __init__(self) -> None:
        super().__init__("Send the file as multipart/form-data in a field named 'file'.")


class UnsupportedFileTypeError(UnsupportedMediaTypeError):
    pass


class InfectedFileError(UnprocessableError):
    status, title, code = 422, "File refused", "infected_file"

    def __init__(self, file_name: str, signature: str | None, job_id: str) -> None:
        found = f" ({signature})" if signature else ""
        super().__init__(
            f"The file {file_name} contains malware{found} and was refused.", job_id=job_id
        )


class InvalidUrlError(UnprocessableError):
    pass


#: Bytes of an upload kept in memory for type sniffing.
HEAD_BYTES = max(SNIFF_BYTES, 64 * 1024)


@dataclass(slots=True)
class ReceivedFile:
    """An upload on local disk; the caller deletes ``path`` (see :meth:`discard`)."""

    path: Path
    file_name: str | None
    size: int
    sha256: str
    head: bytes

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def hash_file(path: Path, *, chunk_bytes: int = 1024 * 1024) -> tuple[str, int, bytes]:
    """SHA-256, size and head of a file already on disk (resumable uploads)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as source:
        while block := source.read(chunk_bytes):
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size, head
