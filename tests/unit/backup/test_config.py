"""Which stores a backup covers, from the same variables the services read."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.backup.config import BackupSettings, stack_settings
from deploy.backup.stores import (
    FolderStore,
    MongoStore,
    Neo4jStore,
    PostgresStore,
    configured_stores,
)

SERVER_VARIABLES = (
    "KGLAB_POSTGRES_URL",
    "KGLAB_MONGO_URL",
    "KGLAB_NEO4J_URL",
    "KGLAB_QDRANT_URL",
    "KGLAB_RABBITMQ_MANAGEMENT_URL",
)


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_servers_the_embedded_data_folder_is_backed_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "qdrant").mkdir(parents=True)
    (data / "qdrant" / "storage.sqlite").write_text("points")
    (data / "documents.sqlite3").write_text("x")
    (data / "servers").mkdir()
    (data / "servers" / "postgres.log").write_text("not a store")
    stores = configured_stores(BackupSettings(data_dir=data))
    assert [s.name for s in stores] == ["embedded"]
    store = stores[0]
    assert isinstance(store, FolderStore)
    into = tmp_path / "out"
    into.mkdir()
    assert store.dump(into)["files"] == 2  # the stores' files; the servers' folder is skipped


def test_with_servers_but_no_qdrant_server_the_local_mode_folder_is_backed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGLAB_MONGO_URL", "mongodb://mongo:27017/")
    assert [s.name for s in configured_stores(BackupSettings(data_dir=tmp_path))] == ["mongo"]
    (tmp_path / "qdrant").mkdir()
    stores = configured_stores(BackupSettings(data_dir=tmp_path))
    assert [s.name for s in stores] == ["mongo", "qdrant"]
    assert isinstance(stores[1], FolderStore)
    assert stores[1].path == tmp_path / "qdrant"


def test_the_services_variables_name_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGLAB_POSTGRES_URL", "postgresql://u:p@db:5432/auth")
    monkeypatch.setenv("KGLAB_MONGO_URL", "mongodb://mongo:27017/")
    monkeypatch.setenv("KGLAB_NEO4J_URL", "bolt://neo4j:pw@graph:7687")
    monkeypatch.setenv("KGLAB_BACKUP_NEO4J_OWNERS", "alice, bob")
    stores = configured_stores(BackupSettings(data_dir=tmp_path))
    assert [s.name for s in stores] == ["postgres", "mongo", "neo4j"]
    postgres, mongo, neo4j = stores
    assert isinstance(postgres, PostgresStore)
    assert postgres.databases == ["auth", "ingestion"]
    assert isinstance(mongo, MongoStore)
    assert mongo.databases == ["kglab_documents", "kglab_ingestion"]
    assert isinstance(neo4j, Neo4jStore)
    assert neo4j.owners == ["alice", "bob"]


def test_a_stack_name_selects_that_stack_s_own_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_POSTGRES_URL", "postgresql://u:p@db:5432/kglab")
    settings = BackupSettings(**stack_settings("drill", Path("/repo")))  # type: ignore[arg-type]
    assert settings.postgres_database_names == ["drill_auth", "drill_ingestion"]
    assert settings.mongo_database_names == ["drill_documents", "drill_ingestion"]
    assert settings.rabbitmq_vhost == "drill"
    assert settings.qdrant_path == Path("/repo/.kglab/stack/drill/data/vector/qdrant")
