"""The raw-file retention sweep (adr/0012) on blobs in the jobs database, SQLite and
PostgreSQL: bytes go once every job on them is done with them for the retention period, and
not before; bytes a pending, processing or recently completed job needs stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from kglab_ingestion.domain import JobStatus, utc_now
from kglab_ingestion.retention import BlobRetention
from kglab_ingestion.store.blob_sql import SqlBlobStore
from kglab_ingestion.store.sql import SqlJobStore, create_engine, sqlite_url
from tests.contract.ingestion.test_job_store import a_job
from tests.isolation import fresh_postgres_database

KEEP = timedelta(days=7)


@dataclass
class Stores:
    jobs: SqlJobStore
    blobs: SqlBlobStore
    tmp: Path

    async def stored(self, sha256: str) -> None:
        path = self.tmp / sha256
        path.write_bytes(sha256.encode())
        await self.blobs.put_file(sha256, path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.backend("postgres"))])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "sqlite":
        jobs = SqlJobStore(create_engine(sqlite_url(tmp_path / "jobs.sqlite3")))
        await jobs.migrate()
        try:
            yield Stores(jobs, SqlBlobStore(jobs.engine), tmp_path)
        finally:
            await jobs.close()
        return
    server: str = request.getfixturevalue("postgres_url")
    async with fresh_postgres_database(server, prefix="kglab_ret") as url:
        jobs = SqlJobStore(create_engine(url))
        await jobs.migrate()
        try:
            yield Stores(jobs, SqlBlobStore(jobs.engine), tmp_path)
        finally:
            await jobs.close()


def sha(letter: str) -> str:
    return letter * 64


async def test_bytes_go_once_every_job_on_them_is_done_for_the_retention_period(
    stores: Stores,
) -> None:
    now = utc_now()
    # The sweep runs when the blobs written now are three days past the retention period.
    sweep_at = now + KEEP + timedelta(days=3)
    old, recent = now, sweep_at - timedelta(days=1)
    jobs = [
        # completed past the period: expired
        a_job(sha=sha("a"), status=JobStatus.COMPLETED, finished_at=old, document_id="d" * 32),
        # completed the day before the sweep: kept
        a_job(sha=sha("b"), status=JobStatus.COMPLETED, finished_at=recent, document_id="e" * 32),
        # waiting for a worker, or being worked on: kept whatever their age
        a_job(sha=sha("c"), created_at=old, updated_at=old),
        a_job(sha=sha("d"), status=JobStatus.PROCESSING, created_at=old, updated_at=old),
        # failed: no retry reads the bytes, however recent
        a_job(sha=sha("e"), status=JobStatus.FAILED, finished_at=old),
        a_job(sha=sha("f"), status=JobStatus.FAILED, finished_at=recent),
        # one owner's expired job beside another's recent one: kept for the latter
        a_job(sha=sha("1"), status=JobStatus.COMPLETED, finished_at=old, document_id="1" * 32),
        a_job(
            "bob",
            sha=sha("1"),
            status=JobStatus.COMPLETED,
            finished_at=recent,
            document_id="2" * 32,
        ),
    ]
    for job in jobs:
        await stores.jobs.create(job, None)
    for letter in "abcdef1":
        await stores.stored(sha(letter))
    await stores.stored(sha("9"))  # no job at all (an upload that died before its job)

    retention = BlobRetention(jobs=stores.jobs, blobs=stores.blobs, keep=KEEP, interval_s=3600)
    removed = await retention.sweep(now=sweep_at)
    assert sorted(removed) == sorted(sha(x) for x in "aef9")
    for letter in "bcd1":
        assert await stores.blobs.exists(sha(letter))
    for letter in "aef9":
        assert not await stores.blobs.exists(sha(letter))
    # Nothing left to remove: the next sweep is empty.
    assert await retention.sweep(now=sweep_at) == []


async def test_recently_finished_jobs_keep_their_bytes(stores: Stores) -> None:
    now = utc_now()
    sweep_at = now + KEEP + timedelta(days=3)  # the blobs are three days past the period
    expired, recent = now, sweep_at - timedelta(days=1)
    await stores.jobs.create(
        a_job(sha=sha("a"), status=JobStatus.COMPLETED, finished_at=expired, document_id="d" * 32),
        None,
    )
    await stores.jobs.create(
        a_job(sha=sha("b"), status=JobStatus.COMPLETED, finished_at=recent, document_id="e" * 32),
        None,
    )
    await stores.stored(sha("a"))
    await stores.stored(sha("b"))
    retention = BlobRetention(jobs=stores.jobs, blobs=stores.blobs, keep=KEEP, interval_s=3600)
    # Blobs written just now are never candidates, whatever their jobs say.
    assert await retention.sweep(now=now) == []
    # Later, the job finished the day before the sweep keeps its bytes for the period.
    assert await stores.jobs.expired_blobs(sweep_at - KEEP, limit=10) == [sha("a")]
    assert await retention.sweep(now=sweep_at) == [sha("a")]
    assert await stores.blobs.exists(sha("b"))
    assert not await stores.blobs.exists(sha("a"))


async def test_a_job_arriving_on_expired_bytes_keeps_them(stores: Stores) -> None:
    now = utc_now()
    old = now - KEEP - timedelta(days=1)
    await stores.jobs.create(
        a_job(sha=sha("a"), status=JobStatus.COMPLETED, finished_at=old, document_id="d" * 32),
        None,
    )
    await stores.stored(sha("a"))
    later = now + KEEP + timedelta(seconds=1)
    assert await stores.jobs.expired_blobs(later - KEEP, limit=10) == [sha("a")]
    # Another user uploads the same file after the listing, before the removal's check.
    await stores.jobs.create(a_job("bob", sha=sha("a")), None)
    async with stores.jobs.bytes_unneeded(sha("a"), finished_before=later - KEEP) as unneeded:
        assert not unneeded
    retention = BlobRetention(jobs=stores.jobs, blobs=stores.blobs, keep=KEEP, interval_s=3600)
    assert await retention.sweep(now=later) == []
    assert await stores.blobs.exists(sha("a"))
