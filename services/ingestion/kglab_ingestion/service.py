"""The ingestion service layer: what a request asks, in domain terms.

Accepting a file: size (checked while streaming, before this layer), real type, virus scan,
duplicate check, blob store, then the job row and its ``ingestion.job.requested`` event in one
transaction. Processing lives in :mod:`kglab_ingestion.worker`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.domain import (
    MAX_PAGE_SIZE,
    PART_STAGES,
    ChangeCursor,
    EmptyFileError,
    FileTooLargeError,
    InfectedFileError,
    IngestionJob,
    InvalidQueryError,
    InvalidUrlError,
    JobCursor,
    JobNotFoundError,
    JobStatus,
    NewFileJob,
    ProgressUpdate,
    ReceivedFile,
    SourceKind,
    UnsupportedFileTypeError,
    hash_file,
    new_job_id,
    sanitise_file_name,
    utc_now,
)
from kglab_ingestion.extraction import PROCESSOR_VERSION, UnsupportedFileError, sniff_media_type
from kglab_ingestion.fetching import UnsafeUrlError, validate_public_url
from kglab_ingestion.scanning.port import ScanResult, VirusScanner
from kglab_ingestion.store.port import (
    BlobStore,
    DuplicateJobError,
    JobStore,
    PartRecorded,
    ProgressChannel,
)
from kglab_shared.events import (
    DocumentIndexed,
    EventEnvelope,
    IngestionJobFailed,
    IngestionJobRequested,
)
from kglab_shared.logging import get_logger
from kglab_shared.metrics import (
    INGESTION_JOBS,
    INGESTION_JOBS_FINISHED,
    INGESTION_OLDEST_PENDING,
    INGESTION_OLDEST_UNCHANGED,
    INGESTION_STAGE_DURATION,
)
from kglab_shared.pages import Page

_log = get_logger(__name__)
#: How old a change must be before the event feed serves it (see ``changes``).
FEED_SETTLE_S = 1.0
Clock = Callable[[], datetime]
MAX_URL_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Submission:
    """The answer to an upload: a new job (202), or the owner's existing one (200)."""

    job: IngestionJob
    duplicate: bool = False


def job_requested_event(job: IngestionJob, *, source: str, fresh: bool = False) -> EventEnvelope:
    """The first request of a job has an id derived from it; a re-request gets a new one."""
    data = IngestionJobRequested(
        job_id=job.id,
        owner_id=job.owner_id,
        blob_key=job.sha256 if job.source_kind is SourceKind.FILE else None,
        url=job.url,
    )
    # Outbox event ids are at most 64 characters.
    event_id = uuid.uuid4().hex if fresh else f"{data.event_type}:{job.id}"
    return data.envelope(source=source, subject=job.id, event_id=event_id)


def job_failed_event(job: IngestionJob, *, source: str) -> EventEnvelope:
    """Asks the document service to remove what exists of a failed job's document."""
    assert job.document_id is not None
    data = IngestionJobFailed(job_id=job.id, owner_id=job.owner_id, document_id=job.document_id)
    return data.envelope(source=source, subject=job.id, event_id=f"{data.event_type}:{job.id}")


class IngestionService:
    def __init__(
        self,
        *,
        settings: IngestionSettings,
        jobs: JobStore,
        blobs: BlobStore,
        scanner: VirusScanner,
        source: str = "kglab/ingestion",
        clock: Clock = utc_now,
        validate_url: Callable[[str], str] = validate_public_url,
        progress: ProgressChannel | None = None,
    ) -> None:
        self._settings = settings
        self._progress = progress
        self._validate_url = validate_url
        self._jobs = jobs
        self._blobs = blobs
        self._scanner = scanner
        self._source = source
        self._clock = clock

    @property
    def spool_dir(self) -> Path:
        return self._settings.data_dir / "ingestion" / "spool"

    async def submit_file(self, owner_id: str, received: ReceivedFile) -> Submission:
        """Validate, scan, de-duplicate and store an uploaded file; queue a job for it.

        The local file is removed whatever happens.
        """
        try:
            return await self._submit_file(owner_id, received)
        finally:
            received.discard()

    async def submit_stored_file(
        self, owner_id: str, path: Path, file_name: str | None, *, limit: int
    ) -> Submission:
        """Like :meth:`submit_file` for a file already on disk (a finished resumable upload)."""
        sha256, size, head = await hash_file(path)
        if size > limit:
            raise FileTooLargeError(size, limit)
        received = ReceivedFile(path=path, file_name=file_name, size=size, sha256=sha256, head=head)
        return await self._submit_file(owner_id, received)

    async def _submit_file(self, owner_id: str, received: ReceivedFile) -> Submission:
        name = sanitise_file_name(received.file_name)
        if received.size == 0:
            raise EmptyFileError()
        try:
            media_type = sniff_media_type(received.head, name)
        except UnsupportedFileError as exc:
            raise UnsupportedFileTypeError(exc.detail) from exc

        # The duplicate check and the scan (then, for clean bytes, the blob write) run side by
        # side: storing bytes that turn out to be a duplicate's is harmless (same hash, same
        # bytes, already stored for the live job), and an upload waits for the slower of the
        # two instead of their sum.
        found, scanned = await asyncio.gather(
            self._jobs.find_live_by_sha256(owner_id, received.sha256),
            self._scan_and_store(received),
            return_exceptions=True,
        )
        if isinstance(found, BaseException):
            raise found
        if found is not None:
            return Submission(job=found, duplicate=True)
        if isinstance(scanned, BaseException):
            raise scanned
        verdict = scanned
        now = self._clock()
        new = NewFileJob(
            owner_id=owner_id,
            source_name=name,
            sha256=received.sha256,
            size_bytes=received.size,
            content_type=media_type,
        )
        if not verdict.clean:
            refused = await self._jobs.create(
                self._file_job(new, now, refused_with=verdict.signature), None
            )
            _log.warning(
                "upload_infected",
                job_id=refused.id,
                owner_id=owner_id,
                signature=verdict.signature,
                sha256=received.sha256,
            )
            raise InfectedFileError(name, verdict.signature, refused.id)

        job = self._file_job(new, now)
        try:
            created = await self._jobs.create(job, job_requested_event(job, source=self._source))
        except DuplicateJobError as exc:
            # A concurrent upload of the same bytes won the race; point at its job.
            return Submission(job=exc.existing, duplicate=True)
        if not await self._blobs.exists(received.sha256):
            # A deleted document's bytes were removed between our store and our job row
            # (the remover saw no live job yet): store them again, the job now holds them.
            await self._blobs.put_file(received.sha256, received.path)
        _log.info("job_accepted", job_id=created.id, owner_id=owner_id, media_type=media_type)
        return Submission(job=created)

    async def _scan_and_store(self, received: ReceivedFile) -> ScanResult:
        """Scan the bytes; store them only when clean."""
        verdict = await self._scanner.scan_file(received.path)
        if verdict.clean:
            await self._blobs.put_file(received.sha256, received.path)
        return verdict

    def _file_job(
        self, new: NewFileJob, now: datetime, *, refused_with: str | None = None
    ) -> IngestionJob:
        job = IngestionJob(
            id=new_job_id(),
            owner_id=new.owner_id,
            source_kind=SourceKind.FILE,
            source_name=new.source_name,
            created_at=now,
            updated_at=now,
            sha256=new.sha256,
            size_bytes=new.size_bytes,
            content_type=new.content_type,
            processor_version=PROCESSOR_VERSION,
        )
        if refused_with is None:
            return job
        found = f" ({refused_with})" if refused_with else ""
        return replace(
            job,
            status=JobStatus.FAILED,
            error=f"The file contains malware{found} and was refused.",
            finished_at=now,
        )

    async def submit_url(self, owner_id: str, url: str) -> IngestionJob:
        """Check that the URL is public and fetchable in principle; queue a job to fetch it."""
        url = url.strip()
        if len(url) > MAX_URL_CHARS:
            raise InvalidUrlError(f"The URL is longer than {MAX_URL_CHARS} characters.")
        try:
            checked = self._validate_url(url)
        except UnsafeUrlError as exc:
            raise InvalidUrlError(exc.detail) from exc
        now = self._clock()
        job = IngestionJob(
            id=new_job_id(),
            owner_id=owner_id,
            source_kind=SourceKind.URL,
            source_name=checked,
            url=checked,
            created_at=now,
            updated_at=now,
            processor_version=PROCESSOR_VERSION,
        )
        created = await self._jobs.create(job, job_requested_event(job, source=self._source))
        _log.info("job_accepted", job_id=created.id, owner_id=owner_id, url=checked)
        return created

    async def record_part(self, event: DocumentIndexed) -> PartRecorded | None:
        """A service finished (or failed) its part of a job's document: move the job on
        (adr/0010, 2026-12-06) and tell its followers. A repeat changes nothing."""
        recorded = await self._jobs.record_part(
            event.owner_id,
            event.document_id,
            event.part,
            ok=event.ok,
            now=self._clock(),
            discard=lambda job: job_failed_event(job, source=self._source),
        )
        if recorded is None:
            # A document no job of ours announced (or another owner's): nothing to move.
            _log.warning("part_for_unknown_job", document_id=event.document_id, part=event.part)
            return None
        job = recorded.job
        if not recorded.changed:
            return recorded
        _count_part(job, event.part, ok=event.ok, now=self._clock())
        _log.info(
            "job_part_recorded",
            job_id=job.id,
            part=event.part,
            ok=event.ok,
            status=job.status.value,
            stage=job.current_stage.value,
            discarded=recorded.discarded,
        )
        if self._progress is not None:
            try:
                await self._progress.publish(ProgressUpdate.of(job))
            except Exception as exc:  # progress is a courtesy; the job row is the truth
                _log.warning("progress_publish_failed", job_id=job.id, error=str(exc))
        return recorded

    async def document_deleted(self, owner_id: str, document_id: str) -> list[IngestionJob]:
        """Follow a deleted document: its job stops counting as a duplicate (the same file may
        be uploaded again as a new job), and its raw bytes go once no live job needs them.

        Safe to repeat: the mark keeps its first moment and removing bytes twice is harmless.
        """
        marked = await self._jobs.mark_document_deleted(owner_id, document_id, at=self._clock())
        for sha256 in sorted({job.sha256 for job in marked if job.sha256 is not None}):
            # Decided and removed under the store's lock on these bytes: a re-upload of them
            # commits its job before (and keeps them) or after (and stores them again).
            async with self._jobs.bytes_unneeded(sha256) as unneeded:
                if unneeded:
                    await self._blobs.delete(sha256)
                    _log.info("blob_deleted", sha256=sha256, document_id=document_id)
        if marked:
            _log.info(
                "document_deleted_followed",
                document_id=document_id,
                job_ids=[job.id for job in marked],
            )
        return marked

    async def get_job(self, owner_id: str, job_id: str) -> IngestionJob:
        job = await self._jobs.get(owner_id, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def changes(self, owner_id: str, *, after: str | None, limit: int) -> list[IngestionJob]:
        """The owner's job changes after the cursor ``after`` (the event feed). Changes younger
        than ``FEED_SETTLE_S`` wait for the next read: a transaction that started earlier but
        commits later must not slip in behind a cursor already handed out."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}.")
        cursor = ChangeCursor.decode(after) if after else None
        settled = utc_now() - timedelta(seconds=FEED_SETTLE_S)
        return await self._jobs.changes(owner_id, after=cursor, settled_before=settled, limit=limit)

    async def extraction(self, job_id: str, claim: str | None) -> list[dict[str, Any]]:
        """A completed job's chunks, for the document service holding its claim (adr/0020)."""
        chunks = await self._jobs.extraction(job_id, claim)
        if chunks is None:
            raise JobNotFoundError(job_id)
        return chunks

    async def list_jobs(
        self, owner_id: str, *, status: JobStatus | None, limit: int, cursor: str | None
    ) -> Page[IngestionJob]:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}.")
        after = JobCursor.decode(cursor) if cursor else None
        return await self._jobs.list_jobs(owner_id, status=status, limit=limit, after=after)


#: The stage a part's acknowledgement ends.
_PART_STAGES = {part: stage.value for part, stage in PART_STAGES}


def _count_part(job: IngestionJob, part: str, *, ok: bool, now: datetime) -> None:
    """Metrics of a recorded part: its stage's time from the end of extraction (parts run in
    parallel, so each is measured from there), and the job's end if this part ended it."""
    stage = _PART_STAGES.get(part)
    if ok and stage is not None and job.extracted_at is not None:
        INGESTION_STAGE_DURATION.labels(stage).observe(
            max(0.0, (now - job.extracted_at).total_seconds())
        )
    if job.status.is_final:
        INGESTION_JOBS_FINISHED.labels(job.status.value).inc()


async def report_job_gauges(jobs: JobStore, now: datetime) -> None:
    """Set the gauges of unfinished jobs from the jobs table: how many per status, the oldest
    waiting for a worker, the longest a processing job has gone unchanged (the stuck-job
    alerts watch the last two). Every replica reports the same table: aggregate with max."""
    stats = await jobs.live_job_stats()
    for status in (JobStatus.PENDING, JobStatus.PROCESSING):
        INGESTION_JOBS.labels(status.value).set(stats[status].count if status in stats else 0)
    pending = stats.get(JobStatus.PENDING)
    processing = stats.get(JobStatus.PROCESSING)
    INGESTION_OLDEST_PENDING.set(
        max(0.0, (now - pending.oldest_created_at).total_seconds()) if pending else 0.0
    )
    INGESTION_OLDEST_UNCHANGED.set(
        max(0.0, (now - processing.oldest_updated_at).total_seconds()) if processing else 0.0
    )


async def report_job_gauges_every(jobs: JobStore, interval_s: float) -> None:
    """:func:`report_job_gauges` now and every ``interval_s`` until cancelled."""
    while True:
        try:
            await report_job_gauges(jobs, utc_now())
        except Exception as exc:  # the database's own alert says why; keep reporting
            _log.warning("job_gauges_unavailable", error=str(exc))
        await asyncio.sleep(interval_s)
