"""Every ingestion migration applies up, down and up again, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from kglab_ingestion.store import tables
from kglab_ingestion.store.sql import create_engine, run_migrations, sqlite_url
from tests.isolation import fresh_postgres_database

EXPECTED = set(tables.metadata.tables) | {"outbox"}


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
