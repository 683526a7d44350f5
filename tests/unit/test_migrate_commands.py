"""``python -m kglab_auth.migrate`` and ``python -m kglab_ingestion.migrate``: what the chart's
pre-upgrade hook Job runs (issue 15). Each brings an empty database to its head revision; run
twice, the second is a no-op."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


@pytest.mark.parametrize(
    ("service", "database"), [("auth", "auth.sqlite3"), ("ingestion", "ingestion.sqlite3")]
)
async def test_the_migration_command_brings_the_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, database: str
) -> None:
    store = importlib.import_module(f"kglab_{service}.store.sql")
    command = importlib.import_module(f"kglab_{service}.migrate")
    table = getattr(store, "VERSION_TABLE", "alembic_version")
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path))
    for _ in range(2):
        await command.migrate()
    files = list(tmp_path.rglob(database))
    assert len(files) == 1, list(tmp_path.rglob("*"))
    engine = create_engine(f"sqlite:///{files[0]}")
    with engine.connect() as connection:
        revision = connection.execute(text(f"SELECT version_num FROM {table}")).scalar_one()
    engine.dispose()
    assert revision == store.HEAD_REVISION
