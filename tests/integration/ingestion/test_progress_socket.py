"""``WS /ws/jobs/{id}``: the current state first, every update, a final state, then close; and
resumable (tus) uploads that become jobs like ``POST /files``.

On real adapters two replicas share PostgreSQL, GridFS and Redis: the socket is served by a
replica whose worker is off, so every update it sends travelled through Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from kglab_shared.events import INDEXING_PARTS, DocumentExtracted, DocumentIndexed
from kglab_shared.identity import IDENTITY_HEADER
from tests.faults import slow_extraction
from tests.integration.ingestion.conftest import BOB, MARKDOWN, IngestionApp
from tests.isolation import LOOPBACK, free_port
from tests.waiting import wait_until

DATA = Path(__file__).resolve().parents[2] / "data"


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs (the harness's) on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, log_level="warning", lifespan="off", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), timeout_s=4, what="the server started")
    try:
        yield f"ws://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def read_socket(url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    messages: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=headers, open_timeout=5) as socket:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                raw = await asyncio.wait_for(socket.recv(), 30)
                messages.append(json.loads(raw))
        code = socket.close_code or 0
    return messages, code


async def test_the_socket_sends_state_updates_and_a_final_message(
    ingestion_factory: Callable[..., Any], ingestion_settings: Any
) -> None:
    worker: IngestionApp = await ingestion_factory(extract=slow_extraction(0.3))
    real = worker.settings.stores.value == "real"
    # On real adapters the socket is served by another replica, without a worker.
    front: IngestionApp = await ingestion_factory(run_worker=False) if real else worker
    job_id = (await worker.upload((DATA / "ten-pages.pdf").read_bytes(), "ten.pdf")).json()[
        "job_id"
    ]
    async with serve(front.app) as base:
        messages, code = await read_socket(f"{base}/ws/jobs/{job_id}", front.headers())
    assert code == 1000
    assert messages[0]["job_id"] == job_id
    assert messages[0]["status"] in ("pending", "processing")
    final = messages[-1]
    assert final["final"] is True
    assert final["status"] == "completed"
    assert final["progress"] == 100
    assert final["document_id"]
    progress = [m["progress"] for m in messages]
    assert progress == sorted(progress)
    # At least one message in every tenth of the way.
    buckets = {min(p // 10, 9) for p in progress}
    assert buckets >= set(range(1, 10)), progress
    # Each message names its stage; only the last is final, once every part is done.
    assert [m["final"] for m in messages] == [False] * (len(messages) - 1) + [True]
    assert final["stage"] == "done"
    stages = [m["stage"] for m in messages]
    assert "extracting" in stages
    assert {"storing", "embedding", "graphing"} & set(stages), stages
    # While extracting, once a page is done, the time left to extract the rest.
    estimates = [m["extraction_seconds_left"] for m in messages if "extraction_seconds_left" in m]
    assert estimates
    assert estimates[-1] == 0.0


async def test_the_final_message_waits_for_every_part_of_the_document(
    ingestion: IngestionApp,
) -> None:
    ingestion.acknowledge_parts = False  # the document, vector and graph services are slow
    job_id = (await ingestion.upload(MARKDOWN, "graphs.md")).json()["job_id"]
    waiting = await ingestion.wait_for_status(job_id, "processing")

    async def extracted() -> bool:
        # The row commits first; the outbox relay publishes document.extracted just after.
        stage = (await ingestion.job(job_id))["stage"]
        return stage == "storing" and len(ingestion.extracted) == 1

    await wait_until(extracted, timeout_s=20)
    assert waiting["document_id"] is None
    [announced] = ingestion.extracted
    document = DocumentExtracted.model_validate(announced.data)
    async with serve(ingestion.app) as base:
        url = f"{base}/ws/jobs/{job_id}"
        async with websockets.connect(url, additional_headers=ingestion.headers()) as socket:
            first = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert (first["status"], first["stage"], first["final"]) == (
                "processing",
                "storing",
                False,
            )
            received = [first]
            for part in INDEXING_PARTS:
                await ingestion.bus.publish(
                    DocumentIndexed(
                        document_id=document.document_id, owner_id=document.owner_id, part=part
                    ).envelope(source="kglab/test")
                )
                received.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
            with contextlib.suppress(websockets.ConnectionClosed):
                while not received[-1]["final"]:
                    received.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
    assert [m["stage"] for m in received] == ["storing", "embedding", "graphing", "done"]
    assert [m["final"] for m in received] == [False, False, False, True]
    assert received[-1]["status"] == "completed"
    assert received[-1]["document_id"] == document.document_id


async def test_the_socket_of_a_finished_job_sends_its_state_and_closes(
    ingestion: IngestionApp,
) -> None:
    job_id = (await ingestion.upload(MARKDOWN, "graphs.md")).json()["job_id"]
    await ingestion.wait_for_status(job_id, "completed")
    async with serve(ingestion.app) as base:
        messages, code = await read_socket(f"{base}/ws/jobs/{job_id}", ingestion.headers())
    assert code == 1000
    assert [m["status"] for m in messages] == ["completed"]


@pytest.mark.parametrize("who", ["nobody", "another user", "forged"])
async def test_the_socket_refuses_strangers_with_a_reason(
    ingestion: IngestionApp, who: str
) -> None:
    job_id = (await ingestion.upload(MARKDOWN, "graphs.md")).json()["job_id"]
    headers = {
        "nobody": {},
        "another user": ingestion.headers(BOB),
        "forged": {IDENTITY_HEADER: "not-a-signed-identity"},
    }[who]
    async with serve(ingestion.app) as base:
        async with websockets.connect(
            f"{base}/ws/jobs/{job_id}", additional_headers=headers
        ) as socket:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
        assert socket.close_code == 1008
        assert socket.close_reason


async def test_a_resumable_upload_becomes_a_job(ingestion: IngestionApp) -> None:
    content = (DATA / "notes.md").read_bytes()
    name = base64.b64encode(b"notes.md").decode()
    tus = {**ingestion.headers(), "Tus-Resumable": "1.0.0"}
    created = await ingestion.client.post(
        "/api/v1/uploads",
        headers={**tus, "Upload-Length": str(len(content)), "Upload-Metadata": f"filename {name}"},
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/api/v1/uploads/")
    half = len(content) // 2
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    first = await ingestion.client.patch(
        location, content=content[:half], headers={**patch, "Upload-Offset": "0"}
    )
    assert first.status_code == 204, first.text
    # Interrupted here; the client asks where to resume.
    offset = await ingestion.client.head(location, headers=tus)
    assert offset.headers["upload-offset"] == str(half)
    last = await ingestion.client.patch(
        location, content=content[half:], headers={**patch, "Upload-Offset": str(half)}
    )
    assert last.status_code == 204, last.text
    job_id = last.headers["upload-job-id"]
    job = await ingestion.wait_for_status(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    assert job["source_name"] == "notes.md"
    assert job["provenance"]["size_bytes"] == len(content)
    # Another user cannot see the upload or the job.
    assert (
        await ingestion.client.head(location, headers={**tus, **ingestion.headers(BOB)})
    ).status_code == 404


async def test_a_lost_update_is_made_good_from_the_database(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(run_worker=False)
    job_id = (await app.upload(MARKDOWN, "graphs.md")).json()["job_id"]

    async def fail_silently() -> None:
        # Another process fails the job and its progress message never arrives.
        await asyncio.sleep(1.5)
        await app.jobs.fail(job_id, None, "The file vanished.")

    async with serve(app.app) as base:
        changer = asyncio.create_task(fail_silently())
        messages, code = await read_socket(f"{base}/ws/jobs/{job_id}", app.headers())
        await changer
    assert code == 1000
    assert [m["status"] for m in messages] == ["pending", "failed"]
    assert messages[-1]["error"] == "The file vanished."
