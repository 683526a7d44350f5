"""tus header parsing, file-name hygiene and the file-backed upload store's guarantees."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kglab_ingestion.api.tus import TusError, parse_metadata, safe_filename, sweep_expired_uploads
from kglab_ingestion.store.uploads import (
    FileUploadStore,
    OffsetMismatchError,
    UploadBusyError,
    UploadOverflowError,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_upload_metadata_pairs_are_decoded() -> None:
    raw = f"filename {b64('Résumé.pdf')},filetype {b64('application/pdf')},is_confidential"
    assert parse_metadata(raw) == {
        "filename": "Résumé.pdf",
        "filetype": "application/pdf",
        "is_confidential": "",
    }
    assert parse_metadata("") == {}


@pytest.mark.parametrize(
    "raw", ["filename a b c", f"filename {b64('a')},filename {b64('b')}", " , ", "filename ***"]
)
def test_malformed_upload_metadata_is_a_400(raw: str) -> None:
    with pytest.raises(TusError) as caught:
        parse_metadata(raw)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        ("..", ""),
        (".hidden.txt", "hidden.txt"),
        ("bad\x00name\n.txt", "bad_name_.txt"),
        ("what?<>|.json", "what____.json"),
        ("é" * 200 + ".txt", "é" * 125 + ".txt"),
        ("a" * 300, "a" * 255),
    ],
)
def test_file_names_lose_paths_and_control_characters(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
    assert len(safe_filename(name).encode()) <= 255


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def store(tmp_path: Path) -> FileUploadStore:
    return FileUploadStore(tmp_path / "uploads")


async def new_upload(store: FileUploadStore, length: int, owner: str = "alice") -> str:
    upload = await store.create(
        owner_id=owner,
        length=length,
        filename="a.txt",
        raw_metadata="",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    return upload.id


async def test_the_offset_is_the_bytes_on_disk(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 10)
    later = NOW + timedelta(hours=2)
    upload = await store.append(upload_id, 0, chunks(b"0123", b"45"), expires_at=later)
    assert (upload.offset, upload.expires_at) == (6, later)
    again = await store.get(upload_id)
    assert again is not None
    assert again.offset == 6
    assert store.data_path(upload_id).read_bytes() == b"012345"


async def test_a_stale_offset_is_refused(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 10)
    await store.append(upload_id, 0, chunks(b"0123"), expires_at=NOW)
    with pytest.raises(OffsetMismatchError) as caught:
        await store.append(upload_id, 0, chunks(b"0123"), expires_at=NOW)
    assert caught.value.current == 4


async def test_an_overflowing_request_leaves_nothing_of_itself(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 10)
    await store.append(upload_id, 0, chunks(b"0123"), expires_at=NOW)
    with pytest.raises(UploadOverflowError):
        await store.append(upload_id, 4, chunks(b"456", b"789AB"), expires_at=NOW)
    assert store.data_path(upload_id).read_bytes() == b"0123"


async def test_bytes_before_a_broken_stream_are_kept(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 10)

    async def breaks() -> AsyncIterator[bytes]:
        yield b"0123"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await store.append(upload_id, 0, breaks(), expires_at=NOW)
    upload = await store.get(upload_id)
    assert upload is not None
    assert upload.offset == 4


async def test_one_writer_at_a_time(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 10)
    async with store.exclusive(upload_id):
        with pytest.raises(UploadBusyError):
            async with store.exclusive(upload_id):
                pass
    async with store.exclusive(upload_id):  # released
        pass


async def test_finishing_keeps_the_result_and_drops_the_bytes(store: FileUploadStore) -> None:
    upload_id = await new_upload(store, 2)
    await store.append(upload_id, 0, chunks(b"ab"), expires_at=NOW + timedelta(hours=1))
    finished = await store.finish(upload_id, {"job_id": "j1"})
    assert finished.result == {"job_id": "j1"}
    assert not store.data_path(upload_id).exists()
    again = await store.get(upload_id)
    assert again is not None
    assert (again.offset, again.finished) == (2, True)


async def test_sweeping_removes_only_expired_uploads(store: FileUploadStore) -> None:
    old = await new_upload(store, 5)
    fresh = await store.create(
        owner_id="alice",
        length=5,
        filename="b.txt",
        raw_metadata="",
        created_at=NOW,
        expires_at=NOW + timedelta(days=2),
    )
    busy = await new_upload(store, 5)
    async with store.exclusive(busy):
        removed = await sweep_expired_uploads(store, now=NOW + timedelta(days=1))
    assert removed == 1
    assert await store.get(old) is None
    assert await store.get(fresh.id) is not None
    assert await store.get(busy) is not None  # being written: left for the next sweep
    assert await store.count_unfinished("alice", NOW) == 2


async def test_ids_that_are_not_ours_are_never_paths(store: FileUploadStore) -> None:
    assert await store.get("../../etc/passwd") is None
    assert await store.delete("../x") is False
    with pytest.raises(ValueError, match="not an upload id"):
        store.data_path("../../etc/passwd")
