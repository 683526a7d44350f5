"""Every ingestion migration applies up, down and up again, on PostgreSQL and on SQLite; a
downgrade keeps the data consistent with the older schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kglab_ingestion.domain import JobStatus, utc_now
from kglab_ingestion.store import tables
from kglab_ingestion.store.sql import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    VERSION_TABLE,
    SqlJobStore,
    create_engine,
    run_migrations,
    sqlite_url,
)
from tests.contract.ingestion.test_job_store import a_job
from tests.isolation import fresh_postgres_database

# The shared outbox and the idempotent consumers' ledger live beside the jobs.
EXPECTED = set(tables.metadata.tables) | {"outbox", "processed_events"}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    return names - {"ingestion_alembic_version"}


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda c: {column["name"] for column in inspect(c).get_columns(table)}
        )


async def _up_down_up(engine: AsyncEngine) -> None:
    try:
        await run_migrations(engine)
        assert await _tables(engine) == EXPECTED
        for name, table in tables.metadata.tables.items():
            assert await _columns(engine, name) == set(table.columns.keys())
        await run_migrations(engine, "base", down=True)
        assert await _tables(engine) == set()
        await run_migrations(engine)
        assert await _tables(engine) == EXPECTED
        await run_migrations(engine)  # idempotent at head
        assert await _tables(engine) == EXPECTED
    finally:
        await engine.dispose()


@pytest.mark.backend("postgres")
async def test_migrations_up_down_up_on_postgres(postgres_url: str) -> None:
    async with fresh_postgres_database(postgres_url, prefix="kglab_ing") as url:
        await _up_down_up(create_engine(url))


async def test_migrations_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _up_down_up(create_engine(sqlite_url(tmp_path / "ingestion.sqlite3")))


async def _down_with_a_deleted_document(engine: AsyncEngine) -> None:
    """0002 down: a job whose document was deleted and its re-upload (same owner, same bytes)
    cannot both stay live under 0001's index; the first becomes a failed job that says why."""
    store = SqlJobStore(engine)
    try:
        await store.migrate()
        now = utc_now()
        first = a_job(sha="c" * 64, status=JobStatus.COMPLETED, document_id="d" * 32)
        await store.create(first, None)
        await store.mark_document_deleted("alice", "d" * 32, at=now)
        again = a_job(sha="c" * 64)
        await store.create(again, None)
        await run_migrations(engine, "0001", down=True)
        async with engine.connect() as connection:
            rows = {
                row.id: row
                for row in await connection.execute(
                    select(tables.jobs.c.id, tables.jobs.c.status, tables.jobs.c.error)
                )
            }
        assert (rows[first.id].status, rows[first.id].error) == (
            "failed",
            "The document this job produced was deleted.",
        )
        assert (rows[again.id].status, rows[again.id].error) == ("pending", None)
        assert "document_deleted_at" not in await _columns(engine, "ingestion_jobs")
        await run_migrations(engine)
        assert await store.find_live_by_sha256("alice", "c" * 64) == again
    finally:
        await store.close()


@pytest.mark.backend("postgres")
async def test_downgrade_keeps_a_deleted_documents_reupload_on_postgres(postgres_url: str) -> None:
    async with fresh_postgres_database(postgres_url, prefix="kglab_ing") as url:
        await _down_with_a_deleted_document(create_engine(url))


async def test_downgrade_keeps_a_deleted_documents_reupload_on_sqlite(tmp_path: Path) -> None:
    await _down_with_a_deleted_document(create_engine(sqlite_url(tmp_path / "ingestion.sqlite3")))


def test_the_head_revision_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


async def test_a_database_shared_with_auth_migrates_both(tmp_path: Path) -> None:
    # Each service records its revision in its own version table; both heads are "0002", so
    # reading the other service's table would skip these migrations (it did, once).
    from kglab_auth.store.sql import create_engine as create_auth_engine
    from kglab_auth.store.sql import run_migrations as run_auth_migrations
    from kglab_shared.sql import current_revision

    url = sqlite_url(tmp_path / "shared.sqlite3")
    auth_engine, engine = create_auth_engine(url), create_engine(url)
    try:
        await run_auth_migrations(auth_engine)
        await run_migrations(engine)
        assert "ingestion_jobs" in await _tables(engine)
        assert await current_revision(engine, VERSION_TABLE) == HEAD_REVISION
        await run_migrations(engine)  # at head now: the fast path, nothing changes
        assert "ingestion_jobs" in await _tables(engine)
    finally:
        await auth_engine.dispose()
        await engine.dispose()
