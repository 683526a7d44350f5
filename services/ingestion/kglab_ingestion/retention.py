"""The retention sweep for raw files kept in PostgreSQL (adr/0012): bytes whose every job is
done with them go after ``blob_retention_days``.

A raw file is needed while a job may still read it: pending and processing jobs, and a retry
of either. Once every job on those bytes completed (or failed, or its document was deleted)
more than the retention period ago, nothing reads them again: a later upload of the same
file by its owner is a duplicate of the completed job, and anyone else's upload stores the
bytes anew. Each removal is decided under the job store's lock on those bytes
(:meth:`~kglab_ingestion.store.sql.SqlJobStore.bytes_unneeded`), so an upload of the same
file in flight either keeps them or stores them again. Off by default (0 days).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from kglab_ingestion.domain import utc_now
from kglab_ingestion.store.port import BlobStore
from kglab_ingestion.store.sql import SqlJobStore
from kglab_shared.logging import get_logger

_log = get_logger(__name__)


class BlobRetention:
    """Removes expired raw files, ``batch`` at a time, every ``interval_s`` seconds."""

    def __init__(
        self,
        *,
        jobs: SqlJobStore,
        blobs: BlobStore,
        keep: timedelta,
        interval_s: float,
        batch: int = 200,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._jobs = jobs
        self._blobs = blobs
        self._keep = keep
        self._interval_s = interval_s
        self._batch = batch
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, *, now: datetime | None = None) -> list[str]:
        """Remove every expired raw file (in batches); returns their SHA-256."""
        cutoff = (now or self._clock()) - self._keep
        removed: list[str] = []
        while True:
            candidates = await self._jobs.expired_blobs(cutoff, limit=self._batch)
            kept = 0
            for sha256 in candidates:
                async with self._jobs.bytes_unneeded(sha256, finished_before=cutoff) as unneeded:
                    if unneeded:
                        await self._blobs.delete(sha256)
                        removed.append(sha256)
                    else:
                        kept += 1  # a job on these bytes arrived since the listing
            if len(candidates) < self._batch or kept == len(candidates):
                break
        if removed:
            _log.info("blobs_expired", count=len(removed), before=cutoff.isoformat())
        return removed

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kglab-blob-retention")

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                _log.warning("blob_retention_failed", error=str(exc))
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
