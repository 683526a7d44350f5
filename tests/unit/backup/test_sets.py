"""Backup sets without servers: a folder store backed up, verified, restored; tampering, a
wrong key and unfinished sets refused; the retention policy."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from deploy.backup.config import BackupSettings
from deploy.backup.sets import create_set, prune, restore_set, set_name, verify_set
from deploy.backup.stores import BackupError, FolderStore


def settings_for(tmp_path: Path, **values: object) -> BackupSettings:
    return BackupSettings(
        dir=tmp_path / "backups",
        identity_file=tmp_path / "keys" / "identity.txt",
        **values,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    folder = tmp_path / "qdrant"
    (folder / "collection").mkdir(parents=True)
    (folder / "collection" / "storage.sqlite").write_bytes(b"points of Ada Lovelace" * 100)
    (folder / "meta.json").write_text('{"collections": 1}')
    return FolderStore("qdrant", folder, "qdrant edge shards")


def test_a_set_is_encrypted_checksummed_and_restores_the_files(
    tmp_path: Path, store: FolderStore
) -> None:
    settings = settings_for(tmp_path)
    path = create_set(settings, [store])
    assert path.name.startswith("kglab-")
    identity_file = settings.identity_file
    assert stat.S_IMODE(identity_file.stat().st_mode) == 0o600
    manifest = json.loads((path / "manifest.json").read_text())
    entry = manifest["stores"]["qdrant"]
    assert entry["version"] == "qdrant edge shards"
    archive = (path / entry["archive"]).read_bytes()
    assert archive.startswith(b"age-encryption.org/v1")
    assert b"Ada Lovelace" not in archive
    assert verify_set(path)["set"] == path.name

    (store.path / "meta.json").write_text("changed after the backup")
    (store.path / "collection" / "storage.sqlite").unlink()
    report = restore_set(settings, path, [store])
    assert report["qdrant"]["entries"] == ["collection", "meta.json"]
    assert (store.path / "meta.json").read_text() == '{"collections": 1}'
    assert (store.path / "collection" / "storage.sqlite").read_bytes().startswith(b"points of")


def test_a_tampered_archive_is_refused_before_anything_is_restored(
    tmp_path: Path, store: FolderStore
) -> None:
    settings = settings_for(tmp_path)
    path = create_set(settings, [store])
    archive = path / "qdrant.tar.age"
    archive.write_bytes(archive.read_bytes()[:-1] + b"\0")
    (store.path / "meta.json").write_text("current")
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore_set(settings, path, [store])
    assert (store.path / "meta.json").read_text() == "current"


def test_another_key_cannot_restore_a_set(tmp_path: Path, store: FolderStore) -> None:
    path = create_set(settings_for(tmp_path), [store])
    stranger = settings_for(tmp_path / "other", identity=str(pyrage.x25519.Identity.generate()))
    with pytest.raises(BackupError, match="does not decrypt this set"):
        restore_set(stranger, path, [store])


def test_a_backup_needs_only_the_public_key(tmp_path: Path, store: FolderStore) -> None:
    identity = pyrage.x25519.Identity.generate()
    settings = settings_for(tmp_path, recipients=str(identity.to_public()))
    path = create_set(settings, [store])
    assert not settings.identity_file.exists()
    with pytest.raises(BackupError, match="No age identity"):
        restore_set(settings, path, [store])
    restored = restore_set(settings_for(tmp_path, identity=str(identity)), path, [store])
    assert "qdrant" in restored


def test_unfinished_and_foreign_folders_are_not_sets(tmp_path: Path, store: FolderStore) -> None:
    partial = tmp_path / "backups" / "kglab-20261201T000000Z.partial"
    partial.mkdir(parents=True)
    with pytest.raises(BackupError, match="unfinished set"):
        verify_set(partial)
    with pytest.raises(BackupError, match=r"has no manifest\.json"):
        verify_set(tmp_path)
    path = create_set(settings_for(tmp_path), [store])
    with pytest.raises(BackupError, match="holds no backup of mongo"):
        restore_set(settings_for(tmp_path), path, [store, FolderStore("mongo", tmp_path, "x")])
    with pytest.raises(BackupError, match="No store to back up"):
        create_set(settings_for(tmp_path), [])


def test_retention_keeps_a_day_of_sets_and_one_a_day_for_thirty_days(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    hourly = [now - timedelta(hours=h) for h in range(48)]
    daily = [now - timedelta(days=d, hours=1) for d in range(2, 45)]
    for moment in hourly + daily:
        (settings.dir / set_name(moment)).mkdir(parents=True)
    stale_partial = settings.dir / (set_name(now - timedelta(days=2)) + ".partial")
    fresh_partial = settings.dir / (set_name(now - timedelta(minutes=5)) + ".partial")
    stale_partial.mkdir()
    fresh_partial.mkdir()

    result = prune(settings, now=now)

    kept = {p.name for p in result.kept}
    last_day = {set_name(m) for m in hourly if now - m <= timedelta(hours=24)}
    assert last_day <= kept
    days = {datetime.strptime(n[6:14], "%Y%m%d").date() for n in kept}
    assert len(days) == 30
    assert min(days) == (now - timedelta(days=29)).date()
    # one set per day beyond the last 24 hours: the newest of that day
    older = [n for n in kept if n not in last_day]
    assert len(older) == len({n[6:14] for n in older})
    assert {p.name for p in settings.dir.iterdir()} == kept | {fresh_partial.name}
    assert stale_partial in result.removed
