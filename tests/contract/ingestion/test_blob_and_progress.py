"""The ``BlobStore`` contract (files, GridFS) and the ``ProgressChannel`` contract (in-process,
Redis pub/sub)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from kglab_ingestion.domain import JobStatus, ProgressUpdate
from kglab_ingestion.store.port import BlobNotFoundError, BlobStore, ProgressChannel


def a_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / f"source-{size}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_bytes_round_trip_by_their_hash(blob_store: BlobStore, tmp_path: Path) -> None:
    # Larger than one GridFS chunk and one read block, so chunking is exercised.
    path, sha = a_file(tmp_path, 1_300_000)
    assert not await blob_store.exists(sha)
    assert await blob_store.put_file(sha, path) is True
    assert await blob_store.exists(sha)
    out = tmp_path / "out"
    await blob_store.copy_to(sha, out)
    assert out.read_bytes() == path.read_bytes()


async def test_the_same_bytes_are_stored_once(blob_store: BlobStore, tmp_path: Path) -> None:
    path, sha = a_file(tmp_path, 1000)
    assert await blob_store.put_file(sha, path) is True
    assert await blob_store.put_file(sha, path) is False


async def test_a_small_file_round_trips_and_is_stored_once(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    # Below one GridFS chunk: the single-write path.
    path, sha = a_file(tmp_path, 900)
    assert await blob_store.put_file(sha, path) is True
    assert await blob_store.put_file(sha, path) is False
    assert await blob_store.exists(sha)
    out = tmp_path / "out"
    await blob_store.copy_to(sha, out)
    assert out.read_bytes() == path.read_bytes()


async def test_a_missing_blob_is_reported_not_invented(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    with pytest.raises(BlobNotFoundError):
        await blob_store.copy_to("0" * 64, tmp_path / "out")
    path, sha = a_file(tmp_path, 10)
    await blob_store.put_file(sha, path)
    await blob_store.delete(sha)
    await blob_store.delete(sha)  # deleting twice is harmless
    assert not await blob_store.exists(sha)


async def test_delete_removes_those_bytes_only_and_they_can_be_stored_again(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    # Larger than one GridFS chunk: every chunk goes with the file.
    path, sha = a_file(tmp_path, 600_000)
    other_path, other = a_file(tmp_path, 1000)
    await blob_store.put_file(sha, path)
    await blob_store.put_file(other, other_path)
    await blob_store.delete(sha)
    assert not await blob_store.exists(sha)
    with pytest.raises(BlobNotFoundError):
        await blob_store.copy_to(sha, tmp_path / "gone")
    assert await blob_store.exists(other)
    # The same bytes uploaded after a deletion are stored anew, whole.
    assert await blob_store.put_file(sha, path) is True
    out = tmp_path / "out"
    await blob_store.copy_to(sha, out)
    assert out.read_bytes() == path.read_bytes()


async def test_delete_refuses_keys_that_are_not_hashes(blob_store: BlobStore) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        await blob_store.delete("../" * 10 + "etc/passwd")


async def test_keys_that_are_not_hashes_are_refused(blob_store: BlobStore, tmp_path: Path) -> None:
    path, _ = a_file(tmp_path, 10)
    with pytest.raises(ValueError, match="SHA-256"):
        await blob_store.put_file("../../etc/passwd", path)


async def test_ping_answers(blob_store: BlobStore) -> None:
    await blob_store.ping()


async def test_a_subscriber_hears_its_job_only(progress_channel: ProgressChannel) -> None:
    async with (
        progress_channel.subscribe("job-a") as updates_a,
        progress_channel.subscribe("job-b") as updates_b,
    ):
        # Redis subscriptions take effect asynchronously; publish until one is heard.
        iterator = updates_a.__aiter__()
        first = asyncio.ensure_future(iterator.__anext__())
        for _ in range(100):
            await progress_channel.publish(
                ProgressUpdate(job_id="job-a", status=JobStatus.PROCESSING, progress=10)
            )
            done, _ = await asyncio.wait({first}, timeout=0.05)
            if done:
                break
        assert first.result().progress == 10
        await progress_channel.publish(
            ProgressUpdate(job_id="job-b", status=JobStatus.COMPLETED, progress=100)
        )
        heard_b = await asyncio.wait_for(updates_b.__aiter__().__anext__(), 5)
        assert heard_b.is_final
        assert heard_b.job_id == "job-b"
        await progress_channel.publish(
            ProgressUpdate(
                job_id="job-a",
                status=JobStatus.COMPLETED,
                progress=100,
                document_id="d1",
                extra={"near_duplicate_of": "j0"},
            )
        )
        while True:
            update = await asyncio.wait_for(iterator.__anext__(), 5)
            if update.is_final:
                break
        assert update.document_id == "d1"
        assert update.extra == {"near_duplicate_of": "j0"}
