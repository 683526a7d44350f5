"""The worker: takes a job from the bus, extracts it unit by unit, announces the document.

Reliability, in the order things can go wrong:

* A job is *claimed* with a lease (a conditional UPDATE), so two deliveries of one job never
  run it twice at once; the lease is renewed while the worker works.
* Every extracted unit (PDF page) is saved with the resume point, so a retry starts after the
  last saved unit instead of from the beginning.
* The end of extraction, its ``document.extracted`` event (document id derived from the job
  id) and the removal of saved units commit in one transaction, only while the lease is held:
  a document is announced exactly once even if a presumed-dead worker wakes up. The job then
  waits (stage ``storing``) for the document, vector and graph services to acknowledge their
  parts (``document.indexed``, recorded by the service layer): only then is it completed.
* A retryable failure puts the job back to pending and raises, so the bus redelivers with its
  backoff; the last attempt, or a failure retrying cannot fix, fails the job with a sentence a
  person understands.
* The :class:`LeaseSweeper` re-publishes jobs whose worker vanished (lease expired) and pending
  jobs whose message was lost (a broker or process restart), and fails jobs whose document's
  parts did not all report within ``indexing_timeout_s`` (removing the document), so no job is
  ever stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.domain import (
    EXTRACTED_PROGRESS,
    IngestionJob,
    JobStage,
    JobStatus,
    ProgressUpdate,
    SourceKind,
    document_id_for,
    indexing_timeout_message,
    utc_now,
)
from kglab_ingestion.extraction import (
    PROCESSOR_VERSION,
    ExtractionError,
    ExtractionUnit,
    OpenDocument,
    Section,
    UnsupportedFileError,
    chunk_sections,
    minhash_signature,
    open_document,
    sniff_media_type,
)
from kglab_ingestion.extraction.model import PDF
from kglab_ingestion.fetching import FetchError, PageFetcher, UnsafeUrlError
from kglab_ingestion.service import job_failed_event, job_requested_event
from kglab_ingestion.store.port import (
    BlobNotFoundError,
    BlobStore,
    Completion,
    JobStore,
    ProgressChannel,
)
from kglab_shared.bus import RetryLater
from kglab_shared.claims import claim_digest, new_claim
from kglab_shared.events import DocumentExtracted, ExtractedChunk, Provenance
from kglab_shared.logging import get_logger
from kglab_shared.metrics import (
    INGESTION_JOBS_FINISHED,
    INGESTION_JOBS_REQUEUED,
    INGESTION_JOBS_TIMED_OUT,
    INGESTION_STAGE_DURATION,
)

_log = get_logger(__name__)
Clock = Callable[[], datetime]

#: Progress after the source is in hand, and before chunking and the event.
_STARTED_PROGRESS = 5
#: Extraction ends below EXTRACTED_PROGRESS: the announcement and the document's parts follow.
_EXTRACTED_PROGRESS = EXTRACTED_PROGRESS - 5
_UNEXPECTED = "Processing failed unexpectedly on our side."


class RetryLaterError(RetryLater):
    """Raised to the bus so it redelivers the job after its backoff, logged as one line."""


class JobFailure(Exception):
    """A failure with a sentence for people; ``retryable`` when trying again may help."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class LeaseLostError(Exception):
    """Another worker took the job over (our lease expired); stop without writing."""


def sections_to_rows(sections: list[Section]) -> list[dict[str, Any]]:
    return [asdict(section) for section in sections]


def sections_from_rows(rows: list[dict[str, Any]]) -> list[Section]:
    return [Section(**row) for row in rows]


def extraction_seconds_left(elapsed_s: float, units_done: int, units_left: int) -> float | None:
    """Time left to extract the rest at this attempt's pace so far (units per second); None
    before a unit is done. Only extraction: storing, embedding and graphing are not estimated."""
    if units_done <= 0:
        return None
    return round(elapsed_s / units_done * units_left, 1)


def _percent(done: int, total: int) -> int:
    span = _EXTRACTED_PROGRESS - _STARTED_PROGRESS
    return _STARTED_PROGRESS + (span * done) // max(total, 1)


class SignatureCache(LRUCache[str, "npt.NDArray[np.uint64]"]):
    """Completed jobs' MinHash signatures by job id (immutable once written), least recently
    used dropped first."""

    def put(self, job_id: str, signature: Sequence[int]) -> None:
        self[job_id] = np.asarray(signature, dtype=np.uint64)


def best_match(
    signature: Sequence[int], candidates: Sequence[tuple[str, npt.NDArray[np.uint64]]]
) -> tuple[str | None, float]:
    """The candidate most similar to ``signature`` (the estimated Jaccard similarity, as
    :func:`estimated_similarity` computes it) and its score; (None, 0.0) when none shares
    anything. Signatures of another length (another scheme) are skipped."""
    mine = np.asarray(signature, dtype=np.uint64)
    usable = [(job_id, other) for job_id, other in candidates if other.shape == mine.shape]
    if not usable or not len(mine):
        return None, 0.0
    matrix = np.stack([other for _, other in usable])
    scores = (matrix == mine).sum(axis=1) / len(mine)
    index = int(np.argmax(scores))
    best = float(scores[index])
    if best <= 0.0:
        return None, 0.0
    return usable[index][0], best


class JobWorker:
    def __init__(
        self,
        *,
        settings: IngestionSettings,
        jobs: JobStore,
        blobs: BlobStore,
        progress: ProgressChannel,
        fetcher: PageFetcher | None,
        worker_id: str | None = None,
        source: str = "kglab/ingestion",
        clock: Clock = utc_now,
        extract: OpenDocument = open_document,
    ) -> None:
        self._settings = settings
        self._open_document = extract
        self._jobs = jobs
        self._blobs = blobs
        self._progress = progress
        self._fetcher = fetcher
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._source = source
        self._clock = clock
        # Parsers (pdfium above all) are not thread-safe: one extraction thread per worker keeps
        # the event loop free without running two parsers at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kglab-extract")
        self._work_dir = settings.data_dir / "ingestion" / "work"
        self._stopping = False
        self._signatures = SignatureCache(max(1024, 4 * settings.near_duplicate_window))

    def close(self) -> None:
        """Stop taking jobs; one in progress is handed back (pending) at its next step."""
        self._stopping = True
        self._executor.shutdown(wait=False)

    def _lease_until(self) -> datetime:
        return self._clock() + timedelta(seconds=self._settings.lease_s)

    async def _publish(self, update: ProgressUpdate) -> None:
        # Progress is a courtesy: a Redis hiccup must not fail the job.
        try:
            await self._progress.publish(update)
        except Exception as exc:
            _log.warning("progress_publish_failed", job_id=update.job_id, error=str(exc))

    async def process(self, job_id: str) -> None:
        """Run one job if it can be claimed; raise :class:`RetryLaterError` to be redelivered."""
        if self._stopping:
            # Left pending: the sweeper of the next worker to start takes it up.
            return
        # The message is a turn, fairly shared between owners: it may run another job.
        job = await self._jobs.claim_fairly(
            job_id, self.worker_id, now=self._clock(), lease_until=self._lease_until()
        )
        if job is None:
            current = await self._jobs.get_any(job_id)
            _log.info(
                "job_not_claimed",
                job_id=job_id,
                status=current.status.value if current else None,
                lease_owner=current.lease_owner if current else None,
            )
            return
        _log.info("job_claimed", job_id=job.id, attempt=job.attempts, worker=self.worker_id)
        if job.attempts == 1:
            INGESTION_STAGE_DURATION.labels("queued").observe(
                max(0.0, (self._clock() - job.created_at).total_seconds())
            )
        if job.attempts > self._settings.max_attempts:
            # Claimed again after its workers vanished each time (a file that kills the process,
            # say): stop here rather than take the next worker down with it.
            failed = await self._jobs.fail(
                job.id,
                self.worker_id,
                f"Processing was interrupted {job.attempts - 1} times; the job was stopped.",
            )
            if failed is not None:
                INGESTION_JOBS_FINISHED.labels("failed").inc()
                await self._publish(ProgressUpdate.of(failed))
            return
        await self._publish(ProgressUpdate.of(job))
        renewal = asyncio.create_task(self._renew_lease(job.id), name=f"lease-{job.id}")
        try:
            await self._run_guarded(job)
        except LeaseLostError:
            _log.warning("job_lease_lost", job_id=job.id, worker=self.worker_id)
        except RetryLaterError:
            raise
        except Exception as exc:
            if not self._stopping:
                raise
            _log.info("job_handed_back", job_id=job.id, reason="worker stopping", error=str(exc))
            await self._jobs.release_for_retry(job.id, self.worker_id, None)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal

    async def _run_guarded(self, job: IngestionJob) -> None:
        """Run the job; turn a failure into a retry or a final failure (not while stopping)."""
        try:
            await self._run(job)
        except (LeaseLostError, RetryLaterError):
            raise
        except JobFailure as failure:
            if self._stopping:
                raise
            await self._handle_failure(job, failure)
        except Exception as exc:
            if self._stopping:
                raise
            _log.error("job_crashed", job_id=job.id, exc_info=exc)
            await self._handle_failure(
                job, JobFailure(f"{_UNEXPECTED} It will be tried again.", retryable=True)
            )

    async def _renew_lease(self, job_id: str) -> None:
        interval = max(0.05, self._settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._jobs.renew_lease(job_id, self.worker_id, self._lease_until()):
                    return
            except Exception as exc:
                _log.warning("lease_renewal_failed", job_id=job_id, error=str(exc))

    async def _handle_failure(self, job: IngestionJob, failure: JobFailure) -> None:
        last_attempt = job.attempts >= self._settings.max_attempts
        if failure.retryable and not last_attempt:
            released = await self._jobs.release_for_retry(job.id, self.worker_id, failure.detail)
            if released is not None:
                await self._publish(ProgressUpdate.of(released))
                # The bus logs it, one line with this reason and the attempt (no traceback).
                raise RetryLaterError(f"job {job.id} will be retried: {failure.detail}")
            return
        detail = failure.detail
        if failure.retryable:
            detail = detail.removesuffix(" It will be tried again.")
            detail = f"{detail} Gave up after {job.attempts} attempts."
        failed = await self._jobs.fail(job.id, self.worker_id, detail)
        if failed is not None:
            INGESTION_JOBS_FINISHED.labels("failed").inc()
            _log.info("job_failed", job_id=job.id, error=detail)
            await self._publish(ProgressUpdate.of(failed))

    async def _run(self, job: IngestionJob) -> None:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir, prefix=f"{job.id}-") as scratch:
            path = Path(scratch) / "source"
            job = await self._materialise(job, path)
            await self._extract(job, path)

    async def _materialise(self, job: IngestionJob, path: Path) -> IngestionJob:
        """Put the job's bytes at ``path``: from the blob store, or fetched from its URL."""
        if job.source_kind is SourceKind.FILE or job.sha256 is not None:
            assert job.sha256 is not None
            try:
                await self._blobs.copy_to(job.sha256, path)
            except BlobNotFoundError as exc:
                raise JobFailure(
                    "The uploaded file is no longer stored; upload it again.", retryable=False
                ) from exc
            return job
        if self._fetcher is None or job.url is None:
            raise JobFailure("This service cannot fetch web pages.", retryable=False)
        try:
            page = await self._fetcher.fetch(job.url)
        except UnsafeUrlError as exc:
            raise JobFailure(exc.detail, retryable=False) from exc
        except FetchError as exc:
            raise JobFailure(exc.detail, retryable=exc.retryable) from exc
        try:
            await asyncio.to_thread(shutil.move, page.body_path, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                page.body_path.unlink()
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while block := source.read(1024 * 1024):
                digest.update(block)
        sha256 = digest.hexdigest()
        media_type = self._media_type_of_page(page.content_type, path, job.url)
        if not await self._jobs.record_source(
            job.id,
            self.worker_id,
            sha256=sha256,
            size_bytes=page.size,
            content_type=media_type,
            store_bytes=lambda: self._blobs.put_file(sha256, path),
        ):
            raise LeaseLostError(job.id)
        return replace(job, sha256=sha256, size_bytes=page.size, content_type=media_type)

    def _media_type_of_page(self, declared: str | None, path: Path, url: str) -> str:
        with path.open("rb") as source:
            head = source.read(64 * 1024)
        base = (declared or "").split(";", 1)[0].strip().lower()
        if base in ("text/html", "application/xhtml+xml"):
            return "text/html"
        name = url.rsplit("/", 1)[-1] or "page.html"
        try:
            return sniff_media_type(head, name)
        except UnsupportedFileError:
            pass
        try:
            return sniff_media_type(head, "page.html")
        except UnsupportedFileError as exc:
            raise JobFailure(
                f"The page at {url} is {base or 'of an unknown type'}, which cannot be ingested.",
                retryable=False,
            ) from exc

    async def _extract(self, job: IngestionJob, path: Path) -> None:
        loop = asyncio.get_running_loop()
        media_type = job.content_type or "application/octet-stream"
        start = job.units_done
        # A first attempt has nothing saved: no need to ask.
        saved = await self._jobs.saved_units(job.id) if start else []
        if len(saved) < start:
            # Saved units went missing (cannot normally happen): start over rather than guess.
            start, saved = 0, []
        sections: list[Section] = []
        for rows in saved[:start]:
            sections.extend(sections_from_rows(rows))

        def open_units() -> tuple[Any, Iterator[ExtractionUnit]]:
            return self._open_document(path, media_type, source_name=job.source_name, start=start)

        units_total = job.units_total
        saved_any = start > 0
        began = time.monotonic()
        try:
            info, units = await loop.run_in_executor(self._executor, open_units)
            self._refuse_too_many_pages(info.media_type, info.metadata.get("pages"))
            last_published = job.progress
            while True:
                unit = await loop.run_in_executor(self._executor, next, units, None)
                if unit is None:
                    break
                self._refuse_too_slow(time.monotonic() - began, unit.index + 1, unit.total)
                sections.extend(unit.sections)
                units_total = unit.total
                progress = _percent(unit.index + 1, unit.total)
                last = unit.index + 1 >= unit.total
                # Every unit but the last is saved as the resume point; the last one completes
                # the job in the completion's own transaction (a retry extracts it again), so a
                # one-page file costs no unit row at all.
                if not last:
                    saved_any = True
                if not last and not await self._jobs.save_unit(
                    job.id,
                    self.worker_id,
                    unit_index=unit.index,
                    units_total=unit.total,
                    sections=sections_to_rows(unit.sections),
                    progress=progress,
                ):
                    raise LeaseLostError(job.id)
                if progress > last_published:
                    last_published = progress
                    await self._publish(
                        ProgressUpdate(
                            job_id=job.id,
                            status=JobStatus.PROCESSING,
                            progress=progress,
                            stage=JobStage.EXTRACTING,
                            extra={
                                "units_done": unit.index + 1,
                                "units_total": unit.total,
                                "extraction_seconds_left": extraction_seconds_left(
                                    time.monotonic() - began,
                                    unit.index + 1 - start,
                                    unit.total - unit.index - 1,
                                ),
                            },
                        )
                    )
        except ExtractionError as exc:
            raise JobFailure(exc.detail, retryable=exc.retryable) from exc
        except UnsupportedFileError as exc:
            raise JobFailure(exc.detail, retryable=False) from exc
        await self._finish(job, info, sections, units_total=units_total, has_saved_units=saved_any)

    def _refuse_too_many_pages(self, media_type: str, pages: object) -> None:
        limit = self._settings.max_pdf_pages
        if media_type == PDF and isinstance(pages, int) and pages > limit:
            raise JobFailure(
                f"The PDF has {pages:,} pages; the limit is {limit:,}. Split it into smaller "
                "files and upload those.",
                retryable=False,
            )

    def _refuse_too_slow(self, elapsed_s: float, done: int, total: int) -> None:
        limit = self._settings.max_extraction_s
        if elapsed_s > limit and done < total:
            raise JobFailure(
                f"Reading the file took longer than {limit:g} s and was stopped after "
                f"{done:,} of {total:,} pages. Split it into smaller files and upload those.",
                retryable=False,
            )

    async def _finish(
        self,
        job: IngestionJob,
        info: Any,
        sections: list[Section],
        *,
        units_total: int | None,
        has_saved_units: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings

        def chunk_and_sign() -> tuple[list[Any], list[int]]:
            chunks = chunk_sections(
                sections,
                max_chars=settings.chunk_max_chars,
                overlap_chars=settings.chunk_overlap_chars,
            )
            text = "\n\n".join(section.text for section in sections)
            return chunks, minhash_signature(text)

        chunks, signature = await loop.run_in_executor(self._executor, chunk_and_sign)
        if not chunks:
            raise JobFailure("The file contains no text to ingest.", retryable=False)
        near_of, near_score = await self._nearest(job, signature)
        document_id = document_id_for(job.id)
        assert job.sha256 is not None
        claim = new_claim()
        extracted = [
            ExtractedChunk(
                chunk_id=f"{document_id}-{chunk.position:05d}",
                position=chunk.position,
                text=chunk.text,
                heading=chunk.heading,
            ).model_dump()
            for chunk in chunks
        ]
        event = DocumentExtracted(
            document_id=document_id,
            job_id=job.id,
            owner_id=job.owner_id,
            title=info.title or job.source_name,
            media_type=info.media_type,
            metadata=dict(info.metadata),
            provenance=Provenance(
                source_name=job.source_name,
                uploader_id=job.owner_id,
                uploaded_at=job.created_at,
                size_bytes=job.size_bytes or 0,
                content_type=info.media_type,
                sha256=job.sha256,
                processor_version=PROCESSOR_VERSION,
            ),
            chunk_count=len(extracted),
            claim=claim,
        )
        completion = Completion(
            document_id=document_id,
            title=event.title,
            chunk_count=len(chunks),
            content_type=info.media_type,
            processor_version=PROCESSOR_VERSION,
            minhash=signature,
            near_duplicate_of=near_of,
            near_duplicate_similarity=near_score,
            units_total=units_total,
            has_saved_units=has_saved_units,
            notice=info.notice,
            chunks=extracted,
            claim_digest=claim_digest(claim),
        )
        envelope = event.envelope(
            source=self._source, subject=document_id, event_id=f"{event.event_type}:{job.id}"
        )
        done = await self._jobs.complete(job.id, self.worker_id, completion, envelope)
        if done is None:
            raise LeaseLostError(job.id)
        if done.started_at is not None and done.extracted_at is not None:
            # From this attempt's claim to the document announced (a retry's own time only).
            INGESTION_STAGE_DURATION.labels("extracting").observe(
                max(0.0, (done.extracted_at - done.started_at).total_seconds())
            )
        _log.info(
            "job_extracted",
            job_id=job.id,
            document_id=document_id,
            chunks=len(chunks),
            near_duplicate_of=near_of,
        )
        final = ProgressUpdate.of(done)
        if near_of is not None:
            final.extra["near_duplicate_of"] = near_of
        await self._publish(final)

    async def _nearest(
        self, job: IngestionJob, signature: list[int]
    ) -> tuple[str | None, float | None]:
        # The window is read as ids only; signatures never change once written, so each is
        # fetched once and then compared from memory (reading 500 JSON signatures per job made
        # near-duplicate detection the worker's largest cost, growing with the owner's jobs).
        ids = await self._jobs.recent_completed_ids(
            job.owner_id, exclude_job_id=job.id, limit=self._settings.near_duplicate_window
        )
        if not ids:
            return None, None
        missing = [job_id for job_id in ids if job_id not in self._signatures]
        if missing:
            for job_id, other in (await self._jobs.signatures_of(missing)).items():
                self._signatures.put(job_id, other)
        known = [(job_id, self._signatures.get(job_id)) for job_id in ids]
        candidates = [(job_id, other) for job_id, other in known if other is not None]
        best_id, best = best_match(signature, candidates)
        if best_id is not None and best > self._settings.near_duplicate_threshold:
            return best_id, round(best, 4)
        return None, None


class LeaseSweeper:
    """Re-publishes abandoned jobs: expired leases and pending jobs nobody took up."""

    def __init__(
        self,
        *,
        settings: IngestionSettings,
        jobs: JobStore,
        source: str = "kglab/ingestion",
        clock: Clock = utc_now,
        batch: int = 200,
        progress: ProgressChannel | None = None,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._progress = progress
        self._source = source
        self._clock = clock
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, *, pending_before: datetime | None = None) -> list[str]:
        now = self._clock()
        cutoff = pending_before or now - timedelta(seconds=self._settings.stale_pending_s)
        requeued = await self._jobs.requeue_abandoned(
            now=now,
            pending_before=cutoff,
            limit=self._batch,
            events=lambda job: job_requested_event(job, source=self._source, fresh=True),
        )
        if requeued:
            INGESTION_JOBS_REQUEUED.inc(len(requeued))
            _log.info("jobs_requeued", count=len(requeued), job_ids=requeued[:20])
        timeout_s = self._settings.indexing_timeout_s
        stalled = await self._jobs.fail_stalled(
            now=now,
            extracted_before=now - timedelta(seconds=timeout_s),
            error=indexing_timeout_message(timeout_s),
            limit=self._batch,
            discard=lambda job: job_failed_event(job, source=self._source),
        )
        if stalled:
            INGESTION_JOBS_TIMED_OUT.inc(len(stalled))
            INGESTION_JOBS_FINISHED.labels("failed").inc(len(stalled))
            _log.warning(
                "jobs_indexing_timed_out", count=len(stalled), job_ids=[j.id for j in stalled][:20]
            )
            if self._progress is not None:
                for job in stalled:
                    with contextlib.suppress(Exception):
                        await self._progress.publish(ProgressUpdate.of(job))
        return requeued

    async def start(self, *, sweep_all_pending_now: bool = False) -> None:
        """Sweep once now (every pending job when ``sweep_all_pending_now``), then periodically.

        ``sweep_all_pending_now`` is for a bus that forgets messages on restart (in-process).
        """
        if sweep_all_pending_now:
            await self.sweep(pending_before=self._clock() + timedelta(seconds=1))
        else:
            await self.sweep()
        self._task = asyncio.create_task(self._loop(), name="kglab-lease-sweeper")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception as exc:
                _log.warning("sweep_failed", error=str(exc))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
