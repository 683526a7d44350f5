"""The jobs store on SQL (SQLAlchemy 2 async): PostgreSQL via asyncpg, SQLite via aiosqlite.

A job row and the event it causes commit together through the shared outbox
(:mod:`kglab_shared.outbox`); the relay publishes them after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import and_, delete, func, insert, or_, select, text, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kglab_ingestion.domain import (
    ALL_PARTS,
    EXTRACTED_PROGRESS,
    ChangeCursor,
    IngestionJob,
    JobCursor,
    JobStage,
    JobStatus,
    SourceKind,
    as_utc,
    decode_parts,
    encode_parts,
    part_failure_message,
    parts_awaited,
    progress_for,
    stage_for,
    utc_now,
)
from kglab_ingestion.store.port import (
    Completion,
    DuplicateJobError,
    EventFactory,
    LiveJobStats,
    PartRecorded,
)
from kglab_ingestion.store.tables import extractions, job_units, jobs
from kglab_shared import sql as shared_sql
from kglab_shared.claims import claim_matches
from kglab_shared.events import PART_STORED, EventEnvelope
from kglab_shared.logging import get_logger
from kglab_shared.outbox import add_to_outbox
from kglab_shared.pages import Page
from kglab_shared.sql import sqlite_url

_log = get_logger(__name__)

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "SqlJobStore",
    "create_engine",
    "run_migrations",
    "sqlite_url",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The newest migration (a test holds it equal to alembic's own head).
HEAD_REVISION = "0008"
#: As configured in migrations/env.py: its own, so it can share a database with auth.
VERSION_TABLE = "ingestion_alembic_version"
# Serialises concurrent start-ups of several replicas migrating one PostgreSQL database.
_MIGRATION_LOCK_ID = 0x6B67696E67  # "kging"
#: How far back the jobs an owner started count against their next turn (fair turns).
FAIR_SHARE_WINDOW = timedelta(seconds=60)
#: Owners with waiting jobs, found one index seek at a time (a loose index scan: neither
#: PostgreSQL nor SQLite skips through an index for DISTINCT by itself).
_WAITING_OWNERS = text(
    """
    WITH RECURSIVE waiting(owner_id, n) AS (
        SELECT (SELECT min(owner_id) FROM ingestion_jobs WHERE status = 'pending'), 1
        UNION ALL
        SELECT (
            SELECT min(owner_id) FROM ingestion_jobs
            WHERE status = 'pending' AND owner_id > waiting.owner_id
        ), n + 1
        FROM waiting WHERE waiting.owner_id IS NOT NULL AND n < :limit
    )
    SELECT owner_id FROM waiting WHERE owner_id IS NOT NULL
    """
)
_WAITING_OWNERS_LIMIT = 1000
_TIE_OWNERS = 50
#: Jobs a turn tries when others claim its choices at the same moment (bounded by the
#: workers racing it; the bound only guards against a store that keeps answering a job it
#: cannot claim).
_TURN_ATTEMPTS = 100
_LIVE_STATUSES = (JobStatus.PENDING.value, JobStatus.PROCESSING.value, JobStatus.COMPLETED.value)


def create_engine(url: str) -> AsyncEngine:
    # WAL on SQLite: readers (GET /jobs) do not wait for the worker's writes.
    # No pre-ping: on asyncpg it is three round trips (BEGIN, a query, ROLLBACK) before every
    # checkout, more than most of this store's operations cost themselves, and it was the
    # largest share of an upload's database time. After a database restart the first
    # operation on a dead connection fails instead; SQLAlchemy then discards the whole pool,
    # a request answers 503 with Retry-After (shared error handling) and a worker's message is
    # redelivered by the bus (or its job requeued by the sweeper), so nothing is lost.
    return shared_sql.create_engine(
        url, sqlite_pragmas=("journal_mode=WAL", "busy_timeout=10000"), pre_ping=False
    )


async def run_migrations(
    engine: AsyncEngine, revision: str = "head", *, down: bool = False
) -> None:
    """Apply (or with ``down`` revert) the ingestion migrations, on either dialect."""
    await shared_sql.run_migrations(
        engine,
        MIGRATIONS_DIR,
        lock_id=_MIGRATION_LOCK_ID,
        head=HEAD_REVISION,
        version_table=VERSION_TABLE,
        revision=revision,
        down=down,
    )


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _job(row: Any) -> IngestionJob:
    return IngestionJob(
        id=row.id,
        owner_id=row.owner_id,
        source_kind=SourceKind(row.source_kind),
        source_name=row.source_name,
        url=row.url,
        status=JobStatus(row.status),
        progress=row.progress,
        attempts=row.attempts,
        error=row.error,
        error_retryable=bool(row.error_retryable),
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        content_type=row.content_type,
        processor_version=row.processor_version,
        lease_owner=row.lease_owner,
        lease_expires_at=_opt_utc(row.lease_expires_at),
        units_done=row.units_done,
        units_total=row.units_total,
        document_id=row.document_id,
        title=row.title,
        chunk_count=row.chunk_count,
        duplicate_of=row.duplicate_of,
        near_duplicate_of=row.near_duplicate_of,
        near_duplicate_similarity=row.near_duplicate_similarity,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        started_at=_opt_utc(row.started_at),
        finished_at=_opt_utc(row.finished_at),
        document_deleted_at=_opt_utc(row.document_deleted_at),
        stage=None if row.stage is None else JobStage(row.stage),
        parts_done=decode_parts(row.parts_done),
        parts_failed=decode_parts(row.parts_failed),
        extracted_at=_opt_utc(row.extracted_at),
        notice=row.notice,
    )


def _job_values(job: IngestionJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "owner_id": job.owner_id,
        "source_kind": job.source_kind.value,
        "source_name": job.source_name,
        "url": job.url,
        "status": job.status.value,
        "progress": job.progress,
        "attempts": job.attempts,
        "error": job.error,
        "error_retryable": job.error_retryable,
        "sha256": job.sha256,
        "size_bytes": job.size_bytes,
        "content_type": job.content_type,
        "processor_version": job.processor_version,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
        "units_done": job.units_done,
        "units_total": job.units_total,
        "document_id": job.document_id,
        "title": job.title,
        "chunk_count": job.chunk_count,
        "duplicate_of": job.duplicate_of,
        "near_duplicate_of": job.near_duplicate_of,
        "near_duplicate_similarity": job.near_duplicate_similarity,
        "notice": job.notice,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "document_deleted_at": job.document_deleted_at,
        "stage": None if job.stage is None else job.stage.value,
        "parts_done": encode_parts(job.parts_done),
        "parts_failed": encode_parts(job.parts_failed),
        "extracted_at": job.extracted_at,
    }


def _live(*conditions: Any) -> Any:
    """Jobs that hold their bytes: not failed, and their document (if any) not deleted."""
    return and_(
        *conditions,
        jobs.c.status.in_(_LIVE_STATUSES),
        jobs.c.document_deleted_at.is_(None),
    )


def _bytes_lock_key(sha256: str) -> int:
    """The advisory lock guarding the bytes under ``sha256``: its first 64 bits."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


def _extracting_abandoned(now: datetime) -> Any:
    """Processing, still extracting (a job waiting for its document's parts holds no lease and
    is nobody's to take up), and its lease gone."""
    return and_(
        jobs.c.status == JobStatus.PROCESSING.value,
        or_(jobs.c.stage.is_(None), jobs.c.stage == JobStage.EXTRACTING.value),
        or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now),
    )


class _Raced:
    """A compare-and-set that lost to a concurrent report."""


_RACED = _Raced()


def _settled_failure(done: frozenset[str], failed: frozenset[str]) -> bool:
    """A part failed and every other part that will report has reported."""
    return bool(failed) and not parts_awaited(done, failed)


def _leased(job_id: str, worker_id: str) -> Any:
    return and_(
        jobs.c.id == job_id,
        jobs.c.status == JobStatus.PROCESSING.value,
        jobs.c.lease_owner == worker_id,
    )


class SqlJobStore:
    """``JobStore`` on PostgreSQL or SQLite; ``on_commit`` (the relay's notify) runs after a
    transaction that staged events commits."""

    def __init__(self, engine: AsyncEngine, *, on_commit: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_commit = on_commit
        # One statement needs no BEGIN/COMMIT around it (two round trips on asyncpg, plus a
        # ROLLBACK after a read): reads and single-statement writes (a conditional UPDATE is
        # atomic on its own) run in autocommit on the same pool; anything that writes two
        # statements together (a job and its outbox event, say) keeps its transaction.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._bytes_guard = asyncio.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def migrate(self) -> None:
        await run_migrations(self.engine)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine) as session, session.begin():
            yield session

    async def _stage(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        await add_to_outbox(session, envelope, notify=self.on_commit)

    async def create(self, job: IngestionJob, event: EventEnvelope | None) -> IngestionJob:
        try:
            async with self._bytes_shared(job.sha256), self._session() as session:
                if job.sha256 is not None and self.is_postgres:
                    # Shared with other new jobs, exclusive with a removal of these bytes
                    # (bytes_unneeded); held until this transaction ends.
                    lock = func.pg_advisory_xact_lock_shared(_bytes_lock_key(job.sha256))
                    await session.execute(select(lock))
                await session.execute(insert(jobs).values(_job_values(job)))
                if event is not None:
                    await self._stage(session, event)
        except IntegrityError as exc:
            if job.sha256 is not None:
                existing = await self.find_live_by_sha256(job.owner_id, job.sha256)
                if existing is not None:
                    raise DuplicateJobError(existing) from exc
            raise
        return job

    async def find_live_by_sha256(self, owner_id: str, sha256: str) -> IngestionJob | None:
        query = (
            select(jobs)
            .where(
                _live(
                    jobs.c.owner_id == owner_id,
                    jobs.c.sha256 == sha256,
                    jobs.c.source_kind == SourceKind.FILE.value,
                )
            )
            .order_by(jobs.c.created_at)
            .limit(1)
        )
        async with self._single.connect() as connection:
            row = (await connection.execute(query)).first()
        return _job(row) if row else None

    async def get(self, owner_id: str, job_id: str) -> IngestionJob | None:
        query = select(jobs).where(jobs.c.id == job_id, jobs.c.owner_id == owner_id)
        async with self._single.connect() as connection:
            row = (await connection.execute(query)).first()
        return _job(row) if row else None

    async def get_any(self, job_id: str) -> IngestionJob | None:
        async with self._single.connect() as connection:
            row = (await connection.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return _job(row) if row else None

    async def list_jobs(
        self,
        owner_id: str,
        *,
        status: JobStatus | None,
        limit: int,
        after: JobCursor | None,
    ) -> Page[IngestionJob]:
        query = select(jobs).where(jobs.c.owner_id == owner_id)
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        if after is not None:
            query = query.where(
                or_(
                    jobs.c.created_at < after.created_at,
                    and_(jobs.c.created_at == after.created_at, jobs.c.id < after.job_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        items = [_job(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = JobCursor(created_at=last.created_at, job_id=last.id).encode()
        return Page(items=items, next_cursor=next_cursor)

    async def changes(
        self,
        owner_id: str,
        *,
        after: ChangeCursor | None,
        settled_before: datetime,
        limit: int,
    ) -> list[IngestionJob]:
        query = select(jobs).where(jobs.c.owner_id == owner_id, jobs.c.updated_at < settled_before)
        if after is not None:
            query = query.where(
                or_(
                    jobs.c.updated_at > after.changed_at,
                    and_(jobs.c.updated_at == after.changed_at, jobs.c.id > after.job_id),
                )
            )
        query = query.order_by(jobs.c.updated_at, jobs.c.id).limit(limit)
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_job(row) for row in rows]

    async def claim(
        self, job_id: str, worker_id: str, *, now: datetime, lease_until: datetime
    ) -> IngestionJob | None:
        # One conditional UPDATE: PostgreSQL re-checks the WHERE on the locked row, SQLite
        # serialises writers, so two workers can never both win.
        claimable = and_(
            jobs.c.id == job_id,
            or_(jobs.c.status == JobStatus.PENDING.value, _extracting_abandoned(now)),
        )
        # RETURNING (PostgreSQL, SQLite >= 3.35) answers with the claimed row in the same
        # round trip.
        async with self._single.connect() as connection:
            row = (
                await connection.execute(
                    update(jobs)
                    .where(claimable)
                    .values(
                        status=JobStatus.PROCESSING.value,
                        stage=JobStage.EXTRACTING.value,
                        lease_owner=worker_id,
                        lease_expires_at=lease_until,
                        attempts=jobs.c.attempts + 1,
                        started_at=now,
                        updated_at=now,
                    )
                    .returning(*jobs.c)
                )
            ).first()
        return _job(row) if row else None

    async def claim_fairly(
        self,
        job_id: str,
        worker_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        window: timedelta = FAIR_SHARE_WINDOW,
    ) -> IngestionJob | None:
        load = await self._recent_load(now, now - window)
        async with self._single.connect() as connection:
            own = (
                await connection.execute(
                    select(jobs.c.owner_id, jobs.c.status, jobs.c.lease_expires_at).where(
                        jobs.c.id == job_id
                    )
                )
            ).first()
        message_job_open = own is not None and (
            own.status == JobStatus.PENDING.value
            or (
                own.status == JobStatus.PROCESSING.value
                and (own.lease_expires_at is None or as_utc(own.lease_expires_at) < now)
            )
        )
        if own is not None and message_job_open:
            served = load.get(own.owner_id, 0)
            if served > 0:
                # An owner served less lately, waiting, takes this turn.
                lighter = await self._lightest_waiting(load, below=served)
                if lighter is not None:
                    claimed = await self.claim(lighter, worker_id, now=now, lease_until=lease_until)
                    if claimed is not None:
                        return claimed
            claimed = await self.claim(job_id, worker_id, now=now, lease_until=lease_until)
            if claimed is not None:
                return claimed
        # The message's job was taken up at another's turn: this turn serves the owner served
        # least lately, so every job has a turn (each has a message). A job chosen here may be
        # claimed by another turn at the same moment: then the next waiting one is tried, until
        # one is ours or none waits (each miss is a job someone else took, so this ends).
        for _ in range(_TURN_ATTEMPTS):
            waiting = await self._lightest_waiting(load, below=None)
            if waiting is None:
                return None
            claimed = await self.claim(waiting, worker_id, now=now, lease_until=lease_until)
            if claimed is not None:
                return claimed
        _log.warning("turn_found_no_job", job_id=job_id, attempts=_TURN_ATTEMPTS)
        return None

    async def _recent_load(self, now: datetime, since: datetime) -> dict[str, int]:
        """Jobs per owner started since ``since`` or still being extracted: how much each
        owner was served lately (few rows, however long the queue)."""
        started = (
            select(jobs.c.owner_id, func.count())
            .where(jobs.c.started_at >= since)
            .group_by(jobs.c.owner_id)
        )
        running = (
            select(jobs.c.owner_id, func.count())
            .where(
                jobs.c.status == JobStatus.PROCESSING.value,
                or_(jobs.c.stage.is_(None), jobs.c.stage == JobStage.EXTRACTING.value),
                jobs.c.lease_expires_at >= now,
                jobs.c.started_at < since,
            )
            .group_by(jobs.c.owner_id)
        )
        load: dict[str, int] = {}
        async with self._single.connect() as connection:  # one round trip for both
            for owner, count in (await connection.execute(union_all(started, running))).all():
                load[str(owner)] = load.get(str(owner), 0) + int(count)
        return load

    async def _lightest_waiting(self, load: dict[str, int], *, below: int | None) -> str | None:
        """The oldest waiting job of the owner served least lately (under ``below``, if
        given); ties go to the owner whose job has waited longest. Owners with waiting jobs
        are found by skipping through ``ix_ingestion_jobs_waiting`` (one seek per owner, not
        one row per waiting job: a 10,000-file upload costs its owner one step)."""
        async with self._single.connect() as connection:
            owners = [
                str(row[0])
                for row in (
                    await connection.execute(_WAITING_OWNERS, {"limit": _WAITING_OWNERS_LIMIT})
                ).all()
            ]
            candidates = [o for o in owners if below is None or load.get(o, 0) < below]
            # The least served first; if their jobs were all taken since the owners were read
            # (other turns run at the same time), the next tier's.
            for tier in sorted({load.get(o, 0) for o in candidates}):
                best: tuple[datetime, str] | None = None
                for owner in [o for o in candidates if load.get(o, 0) == tier][:_TIE_OWNERS]:
                    row = (
                        await connection.execute(
                            select(jobs.c.id, jobs.c.updated_at)
                            .where(
                                jobs.c.status == JobStatus.PENDING.value, jobs.c.owner_id == owner
                            )
                            .order_by(jobs.c.updated_at, jobs.c.id)
                            .limit(1)
                        )
                    ).first()
                    if row is not None and (
                        best is None or (as_utc(row.updated_at), row.id) < best
                    ):
                        best = (as_utc(row.updated_at), str(row.id))
                if best is not None:
                    return best[1]
        return None

    async def renew_lease(self, job_id: str, worker_id: str, lease_until: datetime) -> bool:
        async with self._single.connect() as connection:
            result = await connection.execute(
                update(jobs).where(_leased(job_id, worker_id)).values(lease_expires_at=lease_until)
            )
        return result.rowcount == 1

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
        now = utc_now()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(jobs)
                .where(_leased(job_id, worker_id))
                .values(
                    units_done=unit_index + 1,
                    units_total=units_total,
                    progress=progress,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            # A unit saved by a worker that died before advancing the resume point is replaced.
            await connection.execute(
                delete(job_units).where(
                    job_units.c.job_id == job_id, job_units.c.unit_index == unit_index
                )
            )
            await connection.execute(
                insert(job_units).values(
                    job_id=job_id, unit_index=unit_index, sections=sections, created_at=now
                )
            )
        return True

    async def saved_units(self, job_id: str) -> list[list[dict[str, Any]]]:
        query = (
            select(job_units.c.sections, job_units.c.unit_index)
            .where(job_units.c.job_id == job_id)
            .order_by(job_units.c.unit_index)
        )
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [list(row.sections) for row in rows]

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
        values: dict[str, Any] = {
            "sha256": sha256,
            "size_bytes": size_bytes,
            "content_type": content_type,
            "updated_at": utc_now(),
        }
        if source_name is not None:
            values["source_name"] = source_name
        statement = update(jobs).where(_leased(job_id, worker_id)).values(**values)
        # Storing the bytes and naming them on the job happen under the bytes' lock, shared
        # as when a job is created: a removal deciding about the same bytes (bytes_unneeded)
        # either runs first (and the bytes are then stored again) or waits, and then sees
        # this job needing them.
        async with self._bytes_shared(sha256), self._session() as session:
            if self.is_postgres:
                lock = func.pg_advisory_xact_lock_shared(_bytes_lock_key(sha256))
                await session.execute(select(lock))
            await store_bytes()
            result = await session.execute(statement)
        return cast(int, getattr(result, "rowcount", 0)) == 1

    async def complete(
        self, job_id: str, worker_id: str, completion: Completion, event: EventEnvelope
    ) -> IngestionJob | None:
        now = utc_now()
        units: dict[str, Any] = {}
        if completion.units_total is not None:
            units = {"units_done": completion.units_total, "units_total": completion.units_total}
        async with self._session() as session:
            row = (
                await session.execute(
                    update(jobs)
                    .where(_leased(job_id, worker_id))
                    .values(
                        **units,
                        # Not completed yet: the document's parts are still to be done.
                        status=JobStatus.PROCESSING.value,
                        stage=JobStage.STORING.value,
                        progress=EXTRACTED_PROGRESS,
                        extracted_at=now,
                        parts_done=None,
                        parts_failed=None,
                        error=None,
                        error_retryable=False,
                        document_id=completion.document_id,
                        title=completion.title,
                        chunk_count=completion.chunk_count,
                        content_type=completion.content_type,
                        processor_version=completion.processor_version,
                        minhash=completion.minhash,
                        near_duplicate_of=completion.near_duplicate_of,
                        near_duplicate_similarity=completion.near_duplicate_similarity,
                        notice=completion.notice,
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                    )
                    .returning(*jobs.c)
                )
            ).first()
            if row is None:
                return None
            if completion.has_saved_units:
                await session.execute(delete(job_units).where(job_units.c.job_id == job_id))
            await session.execute(delete(extractions).where(extractions.c.job_id == job_id))
            await session.execute(
                insert(extractions).values(
                    job_id=job_id,
                    claim_digest=completion.claim_digest,
                    chunks=list(completion.chunks),
                    created_at=now,
                )
            )
            await self._stage(session, event)
        return _job(row)

    async def extraction(self, job_id: str, claim: str | None) -> list[dict[str, Any]] | None:
        query = select(extractions.c.claim_digest, extractions.c.chunks).where(
            extractions.c.job_id == job_id
        )
        async with self._single.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None or not claim_matches(row.claim_digest, claim):
            return None
        chunks: list[dict[str, Any]] = row.chunks
        return chunks

    async def release_for_retry(
        self, job_id: str, worker_id: str, error: str | None
    ) -> IngestionJob | None:
        async with self._single.connect() as connection:
            result = await connection.execute(
                update(jobs)
                .where(_leased(job_id, worker_id))
                .values(
                    status=JobStatus.PENDING.value,
                    stage=JobStage.QUEUED.value,
                    error=error,
                    error_retryable=error is not None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=utc_now(),
                )
                .returning(*jobs.c)
            )
            row = result.first()
        return _job(row) if row else None

    async def fail(self, job_id: str, worker_id: str | None, error: str) -> IngestionJob | None:
        now = utc_now()
        condition = (
            _leased(job_id, worker_id)
            if worker_id is not None
            else and_(jobs.c.id == job_id, jobs.c.status != JobStatus.COMPLETED.value)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(jobs)
                .where(condition)
                .values(
                    status=JobStatus.FAILED.value,
                    error=error,
                    error_retryable=False,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                    finished_at=now,
                )
                .returning(*jobs.c)
            )
            row = result.first()
            if row is None:
                return None
            await connection.execute(delete(job_units).where(job_units.c.job_id == job_id))
        return _job(row)

    async def recent_completed_ids(
        self, owner_id: str, *, exclude_job_id: str, limit: int
    ) -> list[str]:
        query = (
            select(jobs.c.id)
            .where(
                jobs.c.owner_id == owner_id,
                jobs.c.status == JobStatus.COMPLETED.value,
                jobs.c.document_deleted_at.is_(None),
                jobs.c.id != exclude_job_id,
                jobs.c.minhash.is_not(None),
            )
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )
        async with self._single.connect() as connection:
            return [row.id for row in (await connection.execute(query)).all()]

    async def signatures_of(self, job_ids: Sequence[str]) -> dict[str, list[int]]:
        if not job_ids:
            return {}
        query = select(jobs.c.id, jobs.c.minhash).where(
            jobs.c.id.in_(list(job_ids)), jobs.c.minhash.is_not(None)
        )
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {row.id: [int(v) for v in row.minhash] for row in rows if row.minhash}

    async def live_job_stats(self) -> dict[JobStatus, LiveJobStats]:
        query = (
            select(
                jobs.c.status,
                func.count(),
                func.min(jobs.c.created_at),
                func.min(jobs.c.updated_at),
            )
            .where(jobs.c.status.in_((JobStatus.PENDING.value, JobStatus.PROCESSING.value)))
            .group_by(jobs.c.status)
        )
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {
            JobStatus(row[0]): LiveJobStats(int(row[1]), as_utc(row[2]), as_utc(row[3]))
            for row in rows
        }

    async def mark_document_deleted(
        self, owner_id: str, document_id: str, *, at: datetime
    ) -> list[IngestionJob]:
        condition = and_(jobs.c.owner_id == owner_id, jobs.c.document_id == document_id)
        async with self.engine.begin() as connection:
            # Marked once: a repeated event keeps the first moment.
            await connection.execute(
                update(jobs)
                .where(condition, jobs.c.document_deleted_at.is_(None))
                .values(document_deleted_at=at, updated_at=at)
            )
            rows = (await connection.execute(select(jobs).where(condition))).all()
        return [_job(row) for row in rows]

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
        # Parts report concurrently. The update is conditional on the parts it read (compare
        # and set): one that lost the race reads again. SQLite's driver reads outside the
        # write transaction, so a lock taken by the read alone would not do.
        for _ in range(20):
            recorded = await self._record_part_once(
                owner_id, document_id, part, ok=ok, now=now, discard=discard
            )
            if not isinstance(recorded, _Raced):
                return recorded
        raise RuntimeError(f"Part {part} of document {document_id} lost 20 races in a row.")

    async def _record_part_once(
        self,
        owner_id: str,
        document_id: str,
        part: str,
        *,
        ok: bool,
        now: datetime,
        discard: EventFactory,
    ) -> PartRecorded | _Raced | None:
        query = (
            select(jobs)
            .where(
                jobs.c.owner_id == owner_id,
                jobs.c.document_id == document_id,
                jobs.c.extracted_at.is_not(None),
            )
            .limit(1)
        )
        async with self._session() as session:
            row = (await session.execute(query)).first()
            if row is None:
                return None
            before = _job(row)
            if part in before.parts_done or part in before.parts_failed:
                return PartRecorded(job=before, changed=False, discarded=False)
            done = before.parts_done | {part} if ok else before.parts_done
            failed = before.parts_failed if ok else before.parts_failed | {part}
            values: dict[str, Any] = {
                "parts_done": encode_parts(done),
                "parts_failed": encode_parts(failed),
                "updated_at": now,
            }
            if before.status is JobStatus.PROCESSING:
                if failed:
                    values.update(
                        status=JobStatus.FAILED.value,
                        error=part_failure_message(part),
                        error_retryable=False,
                        finished_at=now,
                    )
                elif done >= ALL_PARTS:
                    values.update(
                        status=JobStatus.COMPLETED.value,
                        stage=JobStage.DONE.value,
                        progress=100,
                        finished_at=now,
                    )
                else:
                    values.update(stage=stage_for(done).value, progress=progress_for(done))
            updated = (
                await session.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == before.id,
                        jobs.c.status == before.status.value,
                        jobs.c.parts_done.is_not_distinct_from(encode_parts(before.parts_done)),
                        jobs.c.parts_failed.is_not_distinct_from(encode_parts(before.parts_failed)),
                    )
                    .values(**values)
                    .returning(*jobs.c)
                )
            ).first()
            if updated is None:
                return _RACED
            job = _job(updated)
            if part == PART_STORED or job.status is JobStatus.FAILED:
                # The document service has read the chunks, or nobody will need them.
                await session.execute(delete(extractions).where(extractions.c.job_id == job.id))
            # Once a failed job's other parts have all reported (none is still writing), what
            # exists of its document is removed, once: ingestion.job.failed to the document
            # service, whose deletion cascades like a user's.
            discarded = _settled_failure(done, failed) and not _settled_failure(
                before.parts_done, before.parts_failed
            )
            if discarded:
                await self._stage(session, discard(job))
        return PartRecorded(job=job, changed=True, discarded=discarded)

    async def fail_stalled(
        self,
        *,
        now: datetime,
        extracted_before: datetime,
        error: str,
        limit: int,
        discard: EventFactory,
    ) -> list[IngestionJob]:
        waiting = and_(
            jobs.c.status == JobStatus.PROCESSING.value,
            jobs.c.extracted_at.is_not(None),
            jobs.c.extracted_at < extracted_before,
        )
        query = select(jobs).where(waiting).order_by(jobs.c.extracted_at).limit(limit)
        if self.is_postgres:
            query = query.with_for_update(skip_locked=True)
        failed: list[IngestionJob] = []
        async with self._session() as session:
            for row in (await session.execute(query)).all():
                before = _job(row)
                updated = (
                    await session.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == before.id,
                            waiting,
                            jobs.c.parts_done.is_not_distinct_from(encode_parts(before.parts_done)),
                        )
                        .values(
                            status=JobStatus.FAILED.value,
                            error=error,
                            error_retryable=False,
                            parts_failed=encode_parts(ALL_PARTS - before.parts_done),
                            updated_at=now,
                            finished_at=now,
                        )
                        .returning(*jobs.c)
                    )
                ).first()
                if updated is None:  # a part reported meanwhile: the next sweep looks again
                    continue
                job = _job(updated)
                await session.execute(delete(extractions).where(extractions.c.job_id == job.id))
                await self._stage(session, discard(job))
                failed.append(job)
        return failed

    async def sha256_in_use(self, sha256: str) -> bool:
        query = select(jobs.c.id).where(_live(jobs.c.sha256 == sha256)).limit(1)
        async with self._single.connect() as connection:
            return (await connection.execute(query)).first() is not None

    @asynccontextmanager
    async def bytes_unneeded(self, sha256: str) -> AsyncIterator[bool]:
        query = select(jobs.c.id).where(_live(jobs.c.sha256 == sha256)).limit(1)
        if not self.is_postgres:
            # SQLite serves one process (embedded mode): an in-process lock is enough.
            async with self._bytes_guard:
                async with self._single.connect() as connection:
                    in_use = (await connection.execute(query)).first() is not None
                yield not in_use
            return
        async with self.engine.connect() as connection, connection.begin():
            # Exclusive: waits for every job with these bytes being created to commit (it is
            # then seen below), and holds later ones off until the removal is done.
            await connection.execute(select(func.pg_advisory_xact_lock(_bytes_lock_key(sha256))))
            yield (await connection.execute(query)).first() is None

    @asynccontextmanager
    async def _bytes_shared(self, sha256: str | None) -> AsyncIterator[None]:
        """SQLite's side of the lock :meth:`bytes_unneeded` takes (PostgreSQL's is in the
        transaction)."""
        if sha256 is None or self.is_postgres:
            yield
            return
        async with self._bytes_guard:
            yield

    async def requeue_abandoned(
        self,
        *,
        now: datetime,
        pending_before: datetime,
        limit: int,
        events: EventFactory,
    ) -> list[str]:
        abandoned = or_(
            _extracting_abandoned(now),
            and_(jobs.c.status == JobStatus.PENDING.value, jobs.c.updated_at < pending_before),
        )
        query = select(jobs).where(abandoned).order_by(jobs.c.updated_at).limit(limit)
        if self.is_postgres:
            # Several replicas sweep at once: each takes different rows.
            query = query.with_for_update(skip_locked=True)
        async with self._session() as session:
            rows = (await session.execute(query)).all()
            requeued = []
            for row in rows:
                job = _job(row)
                result = await session.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id, abandoned)
                    .values(
                        status=JobStatus.PENDING.value,
                        stage=JobStage.QUEUED.value,
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                    )
                )
                if getattr(result, "rowcount", 0) == 1:
                    await self._stage(session, events(job))
                    requeued.append(job.id)
        return requeued

    async def ping(self) -> None:
        async with self._single.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
