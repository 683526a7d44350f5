"""The ports the ingestion service stores through, in domain terms; SQL and Mongo stay inside
the adapters.

Jobs: every read a user triggers is scoped to an owner (another user's job does not exist).
Writes a worker makes are conditional on the lease it holds, so a worker whose lease expired
(it was presumed dead and the job was taken up again) cannot overwrite the new owner's work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kglab_ingestion.domain import (
    ChangeCursor,
    IngestionJob,
    JobCursor,
    JobStatus,
    ProgressUpdate,
)
from kglab_shared.events import EventEnvelope
from kglab_shared.pages import Page


class DuplicateJobError(Exception):
    """The owner already has a live job for these bytes; ``existing`` is that job."""

    def __init__(self, existing: IngestionJob) -> None:
        super().__init__(f"duplicate of job {existing.id}")
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Completion:
    """What a finished job records, together with its ``document.extracted`` event."""

    document_id: str
    title: str
    chunk_count: int
    content_type: str
    processor_version: str
    minhash: list[int] | None
    near_duplicate_of: str | None
    near_duplicate_similarity: float | None
    #: Units the document had: the last one is not saved separately (it completes the job).
    units_total: int | None = None
    #: Whether earlier units were saved (a multi-unit document): only then is there
    #: anything to drop.
    has_saved_units: bool = True
    #: Something the owner should know although nothing failed (e.g. the text's encoding).
    notice: str | None = None
    #: The chunks, kept until the document service reads them with the claim (adr/0020).
    chunks: Sequence[dict[str, Any]] = ()
    claim_digest: str = ""


@dataclass(frozen=True, slots=True)
class PartRecorded:
    """A part of a job's document reported: the job after it, whether it changed anything
    (False for a repeat), and whether the job's partial document is now to be removed."""

    job: IngestionJob
    changed: bool
    discarded: bool


@dataclass(frozen=True, slots=True)
class LiveJobStats:
    count: int
    oldest_created_at: datetime
    oldest_updated_at: datetime


class JobStore(Protocol):
    async def changes(
        self,
        owner_id: str,
        *,
        after: ChangeCursor | None,
        settled_before: datetime,
        limit: int,
    ) -> list[IngestionJob]:
        """The owner's jobs changed after ``after`` and before ``settled_before``, in the order
        they changed (oldest first): the event feed. A job appears once, in its latest state."""

    async def create(self, job: IngestionJob, event: EventEnvelope | None) -> IngestionJob:
        """Insert ``job`` and stage ``event`` in the outbox in one transaction.

        Raises :class:`DuplicateJobError` when the owner has a live file job with this SHA-256.
        """

    async def find_live_by_sha256(self, owner_id: str, sha256: str) -> IngestionJob | None:
        """The owner's pending, processing or completed file job for these bytes, if any (a
        job whose document was deleted does not count)."""

    async def get(self, owner_id: str, job_id: str) -> IngestionJob | None:
        """The owner's job, or None (also for another owner's job)."""

    async def get_any(self, job_id: str) -> IngestionJob | None:
        """A job whoever owns it (for workers, never for a user's request)."""

    async def list_jobs(
        self,
        owner_id: str,
        *,
        status: JobStatus | None,
        limit: int,
        after: JobCursor | None,
    ) -> Page[IngestionJob]:
        """The owner's jobs, newest first (ties broken by id), after ``after``."""

    async def claim(
        self, job_id: str, worker_id: str, *, now: datetime, lease_until: datetime
    ) -> IngestionJob | None:
        """Take the job if it is pending or its lease has expired: it becomes ``processing``,
        leased to ``worker_id`` until ``lease_until``, with one more attempt counted.
        None when another worker holds it or it is finished."""

    async def claim_fairly(
        self, job_id: str, worker_id: str, *, now: datetime, lease_until: datetime
    ) -> IngestionJob | None:
        """Claim a job for the message of ``job_id``, fairly between owners: if an owner
        served less lately (fewer jobs started in the last minute or still being extracted)
        has one waiting, the oldest such job is claimed instead (one owner's 10,000 uploads
        do not hold up another's one). Every job has a message,
        so the message's own job is taken up by a later message. A message whose job is no
        longer open claims the fairest waiting job, if any: the number of messages never
        falls below the number of waiting jobs. A job put back for a retry waits behind the
        jobs queued before its release (when nothing else waits, the retry's redelivered
        message, after the bus's backoff, is the next turn)."""

    async def renew_lease(self, job_id: str, worker_id: str, lease_until: datetime) -> bool:
        """Extend the lease; False when the worker no longer holds it."""

    async def save_unit(
        self,
        job_id: str,
        worker_id: str,
        *,
        unit_index: int,
        units_total: int,
        sections: list[dict[str, Any]],
        progress: int,
    ) -> bool:
        """Keep what a unit yielded and advance the resume point; False without the lease."""

    async def saved_units(self, job_id: str) -> list[list[dict[str, Any]]]:
        """The sections of every saved unit, in unit order."""

    async def record_source(
        self,
        job_id: str,
        worker_id: str,
        *,
        sha256: str,
        size_bytes: int,
        content_type: str,
        store_bytes: Callable[[], Awaitable[object]],
        source_name: str | None = None,
    ) -> bool:
        """Record what a URL job fetched; ``store_bytes`` puts the bytes in the blob store,
        under the same lock as a job's creation, so a removal of the same bytes cannot slip
        between storing them and naming them on the job. False without the lease."""

    async def complete(
        self, job_id: str, worker_id: str, completion: Completion, event: EventEnvelope
    ) -> IngestionJob | None:
        """Extraction is done: record the document, stage ``event`` (``document.extracted``)
        in one transaction, drop saved units and give up the lease. The job stays
        ``processing``, stage ``storing``, until :meth:`record_part` has every part. None (and
        nothing written) when the worker no longer holds the lease. The completion's chunks
        are kept, for :meth:`extraction`, until the ``stored`` part is recorded or the job
        fails."""

    async def extraction(self, job_id: str, claim: str | None) -> list[dict[str, Any]] | None:
        """The chunks a completed job extracted, to the holder of its claim; None otherwise."""

    async def record_part(
        self,
        owner_id: str,
        document_id: str,
        part: str,
        *,
        ok: bool,
        now: datetime,
        discard: EventFactory,
    ) -> PartRecorded | None:
        """Record that ``part`` of the job's document is done (``ok``) or failed, in one
        transaction: all parts done completes the job; a failure fails it with a sentence for
        people; once a failed job's other parts have all reported, ``discard(job)`` is staged
        in the outbox (once). A part reported again changes nothing. None when no job produced
        ``document_id`` for ``owner_id``."""

    async def release_for_retry(
        self, job_id: str, worker_id: str, error: str | None
    ) -> IngestionJob | None:
        """Back to pending after a retryable failure (the bus redelivers the message)."""

    async def fail(self, job_id: str, worker_id: str | None, error: str) -> IngestionJob | None:
        """Mark the job failed for good; ``worker_id`` None fails it regardless of any lease."""

    async def fail_stalled(
        self,
        *,
        now: datetime,
        extracted_before: datetime,
        error: str,
        limit: int,
        discard: EventFactory,
    ) -> list[IngestionJob]:
        """Fail jobs still waiting for their document's parts although extracted before
        ``extracted_before``: every part not done counts as failed (a late report changes
        nothing) and ``discard(job)`` is staged for each. Returns them."""

    async def recent_completed_ids(
        self, owner_id: str, *, exclude_job_id: str, limit: int
    ) -> list[str]:
        """Ids of the owner's latest completed jobs whose document still exists and that have
        a signature (the near-duplicate window), newest first."""

    async def signatures_of(self, job_ids: Sequence[str]) -> dict[str, list[int]]:
        """The MinHash signatures of these (completed) jobs; a signature never changes once
        written, so callers may cache them by job id."""

    async def mark_document_deleted(
        self, owner_id: str, document_id: str, *, at: datetime
    ) -> list[IngestionJob]:
        """Record that the owner's document ``document_id`` was deleted on the job(s) that
        produced it (only the first time: ``document_deleted_at`` keeps the first ``at``). Such
        a job no longer counts as a duplicate. Returns every job that produced it, marked now
        or before (none for an unknown document or another owner's)."""

    async def sha256_in_use(self, sha256: str) -> bool:
        """Whether a live job of anyone (pending, processing, or completed with its document
        still there) needs the bytes stored under ``sha256``."""

    def bytes_unneeded(self, sha256: str) -> AbstractAsyncContextManager[bool]:
        """Decide whether the bytes under ``sha256`` may be removed, and hold that decision:
        yields True when no live job needs them, and while the block runs (the removal) no
        job with this SHA-256 commits (:meth:`create` waits). A job created meanwhile thus
        commits either before the decision (and keeps the bytes) or after the removal (and
        its upload, which checks after its commit, stores them again)."""

    async def requeue_abandoned(
        self,
        *,
        now: datetime,
        pending_before: datetime,
        limit: int,
        events: EventFactory,
    ) -> list[str]:
        """Jobs whose lease expired, or pending ones untouched since ``pending_before``:
        set back to pending and stage a fresh ``ingestion.job.requested`` for each (built by
        ``events``). Returns their ids."""

    async def live_job_stats(self) -> dict[JobStatus, LiveJobStats]:
        """For each unfinished status (pending, processing) that has jobs: how many, the
        oldest creation and the oldest last change (for the metrics of stuck jobs)."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot answer (for /ready)."""

    async def close(self) -> None:
        """Release connections."""


class EventFactory(Protocol):
    def __call__(self, job: IngestionJob) -> EventEnvelope: ...


class BlobNotFoundError(LookupError):
    pass


class BlobStore(Protocol):
    """Raw files, addressed by the SHA-256 of their bytes (the same bytes are stored once)."""

    async def put_file(self, sha256: str, path: Path) -> bool:
        """Store the file's bytes under ``sha256``; False when they were already stored."""

    async def exists(self, sha256: str) -> bool:
        """Whether bytes are stored under ``sha256``."""

    async def copy_to(self, sha256: str, destination: Path) -> None:
        """Write the stored bytes to ``destination``; :class:`BlobNotFoundError` if absent."""

    async def delete(self, sha256: str) -> None:
        """Remove the bytes (nothing happens when absent)."""

    async def ping(self) -> None:
        """Raise if the store cannot answer (for /ready)."""

    async def close(self) -> None:
        """Release connections."""


class ProgressChannel(Protocol):
    """Job progress fan-out: whoever serves a job's WebSocket hears every worker's updates."""

    async def publish(self, update: ProgressUpdate) -> None:
        """Send ``update`` to every current subscriber of its job (lost if there is none)."""

    def subscribe(self, job_id: str) -> AbstractAsyncContextManager[AsyncIterator[ProgressUpdate]]:
        """Updates of one job from now on, until the context exits."""

    async def ping(self) -> None:
        """Raise if updates cannot travel (for /ready)."""

    async def close(self) -> None:
        """Release connections."""


__all__: Sequence[str] = (
    "BlobNotFoundError",
    "BlobStore",
    "Completion",
    "DuplicateJobError",
    "EventFactory",
    "JobStore",
    "ProgressChannel",
)
