"""Every migration applies up, down and up again, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from kglab_auth.store import tables
from kglab_auth.store.sql import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    create_engine,
    current_revision,
    run_migrations,
    sqlite_url,
)

EXPECTED = set(tables.metadata.tables)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    return names - {"alembic_version"}


async def _up_down_up(engine: AsyncEngine) -> None:
    try:
        await run_migrations(engine)
        assert await _tables(engine) == EXPECTED
        await run_migrations(engine, "0001", down=True)
        assert "api_keys" not in await _tables(engine)
        assert "users" in await _tables(engine)
        await run_migrations(engine, "base", down=True)
        assert await _tables(engine) == set()
        await run_migrations(engine)
        assert await _tables(engine) == EXPECTED
        await run_migrations(engine)  # idempotent at head
        assert await _tables(engine) == EXPECTED
    finally:
        await engine.dispose()


@pytest.mark.backend("postgres")
async def test_migrations_up_down_up_on_postgres(auth_database: str) -> None:
    await _up_down_up(create_engine(auth_database))


async def test_migrations_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _up_down_up(create_engine(sqlite_url(tmp_path / "auth.sqlite3")))


@pytest.mark.backend("postgres")
async def test_the_tables_match_what_the_adapter_expects(auth_database: str) -> None:
    engine = create_engine(auth_database)
    try:
        await run_migrations(engine)
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {
                    name: {col["name"] for col in inspect(c).get_columns(name)} for name in EXPECTED
                }
            )
        for name, table in tables.metadata.tables.items():
            assert columns[name] == {c.name for c in table.columns}, name
    finally:
        await engine.dispose()


def test_the_head_revision_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


async def test_a_current_database_is_recognised_and_left_alone(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "auth.sqlite3"))
    try:
        assert await current_revision(engine) is None
        await run_migrations(engine)
        assert await current_revision(engine) == HEAD_REVISION
        await run_migrations(engine)  # the fast path: nothing to do, nothing changes
        assert await _tables(engine) == EXPECTED
        await run_migrations(engine, "0001", down=True)
        assert await current_revision(engine) == "0001"
        await run_migrations(engine)  # behind head: alembic brings it up
        assert await current_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()
