"""tus 1.0 uploads driven by the real ``tuspy`` client against the router served by uvicorn.

The completion callback stands in for the ingestion service (it records what it was handed and
answers with a job id); the upload store is the real file-backed adapter.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from kglab_ingestion.api.tus import TusSettings, create_tus_router, sweep_expired_uploads
from kglab_ingestion.store.uploads import FileUploadStore
from kglab_shared.errors import UnsupportedMediaTypeError, install_error_handlers
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.isolation import LOOPBACK, free_port

SECRET = "tus-test-secret-0123456789"
CODEC = IdentityCodec(SECRET)
KB = 1024
CHUNK = 64 * KB


@dataclass
class Harness:
    base: str
    store: FileUploadStore
    directory: Path
    now: datetime
    completed: list[dict[str, Any]] = field(default_factory=list)
    refuse_with: Exception | None = None

    @property
    def collection(self) -> str:
        return f"{self.base}/api/v1/uploads"

    def headers(self, user: str) -> dict[str, str]:
        return {IDENTITY_HEADER: CODEC.mint(Identity(user_id=user))}

    def tus(self, user: str = "alice") -> TusClient:
        return TusClient(self.collection, headers=self.headers(user))

    def raw(self, user: str = "alice") -> httpx.AsyncClient:
        return httpx.AsyncClient(headers={**self.headers(user), "Tus-Resumable": "1.0.0"})


def make_file(tmp_path: Path, size: int, name: str = "report.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@asynccontextmanager
async def tus_instance(state: Harness, store: FileUploadStore) -> AsyncIterator[str]:
    """One ingestion instance's tus router, served by uvicorn; yields its base URL."""

    async def on_complete(
        identity: Identity, path: Path, filename: str, size: int
    ) -> dict[str, Any]:
        if state.refuse_with is not None:
            raise state.refuse_with
        digest = await asyncio.to_thread(lambda: hashlib.sha256(path.read_bytes()).hexdigest())
        state.completed.append(
            {"user": identity.user_id, "filename": filename, "size": size, "sha256": digest}
        )
        return {"job_id": f"job-{len(state.completed)}", "duplicate": False}

    app = FastAPI()
    install_error_handlers(app)
    app.state.identity_codec = CODEC
    settings = TusSettings(max_size_bytes=2 * 1024 * KB, expiry_s=3600)
    app.include_router(create_tus_router(store, settings, on_complete, clock=lambda: state.now))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the tus test server did not start"
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    directory = tmp_path / "uploads"
    store = FileUploadStore(directory)
    state = Harness(base="", store=store, directory=directory, now=datetime.now(UTC))
    async with tus_instance(state, store) as base:
        state.base = base
        yield state


def upload(client: TusClient, path: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("chunk_size", CHUNK)
    kwargs.setdefault("metadata", {"filename": path.name})
    return client.uploader(file_path=str(path), **kwargs)


async def test_a_full_upload_becomes_one_job(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 300 * KB + 17)
    uploader = upload(harness.tus(), path)
    await asyncio.to_thread(uploader.upload)
    assert harness.completed == [
        {
            "user": "alice",
            "filename": "report.pdf",
            "size": path.stat().st_size,
            "sha256": sha256(path),
        }
    ]
    # The final offset and the job the upload became stay visible to HEAD.
    async with harness.raw() as http:
        head = await http.head(uploader.url)
    assert head.status_code == 200
    assert (
        head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(path.stat().st_size)
    )
    assert head.headers["Upload-Job-Id"] == "job-1"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    # The bytes were handed over: nothing of them is left in the upload directory.
    assert list(harness.directory.glob("*.part")) == []


async def test_an_upload_stopped_midway_resumes_from_the_head_offset(
    harness: Harness, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 5 * CHUNK + 100)
    first = upload(harness.tus(), path)
    await asyncio.to_thread(first.upload, 2 * CHUNK)  # the client stops after two chunks
    assert harness.completed == []
    # A new client (say, after a restart) knows only the upload URL.
    resumed = await asyncio.to_thread(upload, harness.tus(), path, url=first.url)
    assert resumed.offset == 2 * CHUNK  # read with HEAD
    await asyncio.to_thread(resumed.upload)
    assert [c["sha256"] for c in harness.completed] == [sha256(path)]


async def test_a_connection_dropped_mid_patch_keeps_what_arrived(
    harness: Harness, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 1024 * KB)
    data = path.read_bytes()
    first = upload(harness.tus(), path)
    url = await asyncio.to_thread(first.create_url)

    class Dropped(Exception):
        pass

    async def half_then_drop() -> AsyncIterator[bytes]:
        for start in range(0, 6 * CHUNK, CHUNK):
            yield data[start : start + CHUNK]
        await asyncio.sleep(0.2)  # let the server write what it has
        raise Dropped

    async with harness.raw() as http:
        with pytest.raises(Dropped):
            await http.patch(
                url,
                content=half_then_drop(),
                headers={
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(len(data)),
                },
            )

        async def offset_known() -> int:
            head = await http.head(url)
            return int(head.headers["Upload-Offset"])

        offset = await offset_known()
    assert 0 < offset <= 6 * CHUNK
    resumed = await asyncio.to_thread(upload, harness.tus(), path, url=url)
    assert resumed.offset == offset
    await asyncio.to_thread(resumed.upload)
    assert [c["sha256"] for c in harness.completed] == [sha256(path)]


async def test_a_patch_at_the_wrong_offset_is_409(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 3 * CHUNK)
    uploader = upload(harness.tus(), path)
    await asyncio.to_thread(uploader.upload, CHUNK)
    uploader.offset = 0  # a client that lost track
    with pytest.raises(TusCommunicationError) as caught:
        await asyncio.to_thread(uploader.upload_chunk)
    assert caught.value.status_code == 409
    async with harness.raw() as http:
        answer = await http.patch(
            uploader.url,
            content=b"x",
            headers={"Upload-Offset": "5", "Content-Type": "application/offset+octet-stream"},
        )
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.json()["detail"] == (
        f"The upload is at byte {CHUNK}, not 5: ask for its offset with HEAD and resume from there."
    )
    # tuspy with a retry asks HEAD for the offset and carries on.
    retrying = await asyncio.to_thread(
        upload, harness.tus(), path, url=uploader.url, retries=1, retry_delay=0
    )
    retrying.offset = 0
    await asyncio.to_thread(retrying.upload)
    assert [c["sha256"] for c in harness.completed] == [sha256(path)]


async def test_a_file_over_the_limit_is_413(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 2 * 1024 * KB + 1)
    with pytest.raises(TusCommunicationError) as caught:
        await asyncio.to_thread(upload(harness.tus(), path).upload)
    assert caught.value.status_code == 413
    async with harness.raw() as http:
        answer = await http.post(
            harness.collection,
            headers={"Upload-Length": str(60 * 1024 * KB), "Upload-Metadata": "filename YS5wZGY="},
        )
    assert answer.status_code == 413
    assert answer.json()["detail"] == "The file is 60 MB; the limit for resumable uploads is 2 MB."
    assert answer.headers["Tus-Max-Size"] == str(2 * 1024 * KB)
    assert list(harness.directory.iterdir()) == []


async def test_more_bytes_than_announced_are_refused_and_not_kept(harness: Harness) -> None:
    async with harness.raw() as http:
        created = await http.post(
            harness.collection,
            headers={"Upload-Length": "10", "Upload-Metadata": "filename YS50eHQ="},
        )
        url = harness.base + created.headers["Location"]

        async def eleven_bytes() -> AsyncIterator[
            bytes
        ]:  # no Content-Length: checked as it streams
            yield b"0123456789X"

        answer = await http.patch(
            url,
            content=eleven_bytes(),
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert answer.status_code == 413
        assert "nothing of it was kept" in answer.json()["detail"]
        head = await http.head(url)
    assert head.headers["Upload-Offset"] == "0"


async def test_an_expired_upload_is_410_then_swept(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 3 * CHUNK)
    uploader = upload(harness.tus(), path)
    await asyncio.to_thread(uploader.upload, CHUNK)
    harness.now += timedelta(hours=2)
    with pytest.raises(TusCommunicationError) as caught:
        await asyncio.to_thread(uploader.get_offset)
    assert caught.value.status_code == 410
    with pytest.raises(TusCommunicationError) as caught:
        await asyncio.to_thread(uploader.upload)
    assert caught.value.status_code == 410
    assert await sweep_expired_uploads(harness.store, now=harness.now) == 1
    assert list(harness.directory.iterdir()) == []
    async with harness.raw() as http:
        assert (await http.head(uploader.url)).status_code == 404


async def test_another_users_upload_answers_404_everywhere(
    harness: Harness, tmp_path: Path
) -> None:
    path = make_file(tmp_path, 2 * CHUNK)
    uploader = upload(harness.tus("alice"), path)
    await asyncio.to_thread(uploader.upload, CHUNK)
    with pytest.raises(TusCommunicationError) as caught:
        # tuspy asks HEAD for the offset as it resumes an upload URL.
        await asyncio.to_thread(upload, harness.tus("bob"), path, url=uploader.url)
    assert caught.value.status_code == 404
    async with harness.raw("bob") as http:
        patch = await http.patch(
            uploader.url,
            content=b"x" * 10,
            headers={
                "Upload-Offset": str(CHUNK),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        delete = await http.delete(uploader.url)
    for answer in (patch, delete):
        assert answer.status_code == 404
        assert answer.json()["detail"] == "There is no upload with this id."
        assert answer.headers["Tus-Resumable"] == "1.0.0"
    # Alice's upload is untouched and completes.
    resumed = await asyncio.to_thread(upload, harness.tus("alice"), path, url=uploader.url)
    await asyncio.to_thread(resumed.upload)
    assert [c["user"] for c in harness.completed] == ["alice"]


async def test_options_describes_the_server(harness: Harness) -> None:
    async with harness.raw() as http:
        answer = await http.options(harness.collection)
    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Tus-Extension"] == "creation,expiration,termination"
    assert answer.headers["Tus-Max-Size"] == str(2 * 1024 * KB)


async def test_termination_removes_the_upload(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 2 * CHUNK)
    uploader = upload(harness.tus(), path)
    await asyncio.to_thread(uploader.upload, CHUNK)
    async with harness.raw() as http:
        assert (await http.delete(uploader.url)).status_code == 204
        assert (await http.head(uploader.url)).status_code == 404
    assert list(harness.directory.glob("*.part")) == []


async def test_a_refused_file_answers_the_refusal_and_is_discarded(
    harness: Harness, tmp_path: Path
) -> None:
    harness.refuse_with = UnsupportedMediaTypeError(
        "The file is not a PDF, whatever its name says."
    )
    path = make_file(tmp_path, CHUNK)
    uploader = upload(harness.tus(), path)
    with pytest.raises(TusCommunicationError) as caught:
        await asyncio.to_thread(uploader.upload)
    assert caught.value.status_code == 415
    assert b"whatever its name says" in caught.value.response_content
    async with harness.raw() as http:
        assert (await http.head(uploader.url)).status_code == 404


async def test_an_empty_file_is_complete_on_creation(harness: Harness, tmp_path: Path) -> None:
    path = make_file(tmp_path, 0, "empty.txt")
    uploader = upload(harness.tus(), path)
    await asyncio.to_thread(uploader.upload)
    assert [(c["filename"], c["size"]) for c in harness.completed] == [("empty.txt", 0)]


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 400, "Upload-Length must be a whole number of bytes."),
        ({"Upload-Length": "-1"}, 400, "Upload-Length must be a whole number of bytes."),
        (
            {"Upload-Length": "10"},
            400,
            "Name the file: Upload-Metadata needs a 'filename' entry (base64-encoded).",
        ),
        (
            {"Upload-Length": "10", "Upload-Metadata": "filename !!!"},
            400,
            "Upload-Metadata 'filename' is not base64-encoded UTF-8.",
        ),
        (
            {"Upload-Length": "10", "Upload-Metadata": "filename Li4vLi4v"},
            400,
            "Name the file: Upload-Metadata needs a 'filename' entry (base64-encoded).",
        ),
        (
            {"Upload-Length": "10", "Upload-Defer-Length": "1"},
            400,
            "Say the file's size up front: send Upload-Length.",
        ),
        (
            {"Upload-Length": "10", "Tus-Resumable": "0.2.2"},
            412,
            "This server speaks tus 1.0.0: send 'Tus-Resumable: 1.0.0'.",
        ),
    ],
)
async def test_bad_creation_requests_get_a_readable_problem(
    harness: Harness, headers: dict[str, str], status: int, detail: str
) -> None:
    async with harness.raw() as http:
        answer = await http.post(harness.collection, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == detail
    assert answer.headers["Tus-Resumable"] == "1.0.0"


async def test_a_path_traversing_file_name_is_reduced_to_its_last_part(harness: Harness) -> None:
    name = base64.b64encode(b"../../etc/passwd.txt").decode()
    async with harness.raw() as http:
        created = await http.post(
            harness.collection,
            headers={"Upload-Length": "0", "Upload-Metadata": f"filename {name}"},
        )
    assert created.status_code == 201
    assert created.headers["Upload-Job-Id"] == "job-1"
    assert harness.completed[0]["filename"] == "passwd.txt"


async def test_requests_without_identity_are_401_with_tus_headers(harness: Harness) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            harness.collection, headers={"Tus-Resumable": "1.0.0", "Upload-Length": "1"}
        )
    assert answer.status_code == 401
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.json()["detail"] == "Sign in first: this route needs a bearer token."


async def test_patch_needs_the_offset_content_type(harness: Harness, tmp_path: Path) -> None:
    uploader = upload(harness.tus(), make_file(tmp_path, 10))
    url = await asyncio.to_thread(uploader.create_url)
    async with harness.raw() as http:
        answer = await http.patch(url, content=b"0123456789", headers={"Upload-Offset": "0"})
    assert answer.status_code == 415
    assert (
        answer.json()["detail"]
        == "Send the bytes with Content-Type: application/offset+octet-stream."
    )


async def test_two_instances_on_one_shared_directory_each_take_half_the_patches(
    harness: Harness, tmp_path: Path
) -> None:
    """A PATCH may reach any replica (adr/0019): two instances, each with its own store object
    on the one shared uploads directory, take turns with the PATCHes of one upload; offsets,
    metadata and bytes are all read from the directory, so each sees the other's work."""
    path = make_file(tmp_path, 8 * CHUNK + 123)
    data = path.read_bytes()
    second_store = FileUploadStore(harness.directory)
    async with tus_instance(harness, second_store) as second_base, harness.raw() as http:
        bases = [harness.base, second_base]
        created = await http.post(
            harness.collection,
            headers={
                "Upload-Length": str(len(data)),
                "Upload-Metadata": "filename " + base64.b64encode(b"shared.pdf").decode(),
            },
        )
        assert created.status_code == 201, created.text
        upload_path = httpx.URL(created.headers["Location"]).path
        offset, turn, served = 0, 0, {harness.base: 0, second_base: 0}
        while offset < len(data):
            base = bases[turn % 2]
            # Each instance first learns the offset the other left (HEAD), then continues.
            head = await http.head(f"{base}{upload_path}")
            assert head.status_code == 200
            assert int(head.headers["Upload-Offset"]) == offset
            piece = data[offset : offset + CHUNK]
            answer = await http.patch(
                f"{base}{upload_path}",
                content=piece,
                headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert answer.status_code == 204, answer.text
            offset += len(piece)
            assert int(answer.headers["Upload-Offset"]) == offset
            served[base] += 1
            turn += 1
        # A stale PATCH to either instance is refused (409), the upload being whole.
        stale = await http.patch(
            f"{bases[turn % 2]}{upload_path}",
            content=b"x",
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert stale.status_code == 409
    assert sorted(served.values()) == [4, 5]  # nine PATCHes, alternating
    assert harness.completed == [
        {
            "user": "alice",
            "filename": "shared.pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    ]
