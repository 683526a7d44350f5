"""A job tells the truth (issue 13, adr/0010 2026-12-06), in the system as ``make dev``
composes it, through the gateway.

``completed`` means: at the moment a job first reads completed, its document and chunks are
readable, search finds it and its entities are in the graph (16 uploads at once). A part
that fails for good (vector or graph) fails the job with a sentence, and nothing of the
document is left: not the document, its chunks, its vectors nor its entities.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kglab_ingestion.domain import document_id_for
from tests.e2e.test_ingestion_flow import sign_up
from tests.waiting import wait_until

UPLOADS = 16
POISON = "Quarantined"


def markdown(token: str, *, title: str = "Field notes") -> bytes:
    return (
        f"# {title} {token}\n\n"
        f"Marie Curie worked in Paris with Pierre Curie on sample {token}. Marie Curie "
        "studied radioactivity at the University of Paris.\n\n"
        "## Later years\n\nMarie Curie founded the Radium Institute in Paris.\n"
    ).encode()


async def first_final_state(
    gateway: httpx.AsyncClient, job_id: str, auth: dict[str, str], timeout_s: float = 180
) -> dict[str, Any]:
    """The job as it reads the first time it is completed or failed (polled every 50 ms),
    and every stage it was seen in before."""
    stages: list[str] = []
    job: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal job
        response = await gateway.get(f"/api/v1/jobs/{job_id}", headers=auth)
        assert response.status_code == 200, response.text
        job = response.json()
        if not stages or stages[-1] != job["stage"]:
            stages.append(job["stage"])
        return job["status"] in ("completed", "failed")

    await wait_until(finished, timeout_s=timeout_s, step_s=0.05, what=f"job {job_id} finished")
    job["seen_stages"] = stages
    return job


async def check_found_everywhere(
    gateway: httpx.AsyncClient, auth: dict[str, str], job: dict[str, Any], token: str
) -> None:
    """Readable, chunked, searchable and graphed: checked once, right away, no waiting."""
    document_id = job["document_id"]
    document = await gateway.get(f"/api/v1/documents/{document_id}", headers=auth)
    assert document.status_code == 200, (job, document.text)
    chunks = await gateway.get(f"/api/v1/documents/{document_id}/chunks", headers=auth)
    assert chunks.status_code == 200, chunks.text
    assert chunks.json()["items"], chunks.text
    search = await gateway.get("/api/v1/search", params={"q": token, "limit": 10}, headers=auth)
    assert search.status_code == 200, search.text
    assert document_id in {hit["document_id"] for hit in search.json()["results"]}, search.text
    graph = await gateway.get(f"/api/v1/documents/{document_id}/graph", headers=auth)
    assert graph.status_code == 200, graph.text
    assert graph.json()["entities"], graph.text


async def test_a_completed_job_is_readable_searchable_and_graphed_at_once(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    tokens = [f"zq{uuid.uuid4().hex[:10]}" for _ in range(UPLOADS)]
    uploads = await asyncio.gather(
        *(
            gateway.post(
                "/api/v1/files",
                files={"file": (f"notes-{i}.md", markdown(token), "text/markdown")},
                headers=auth,
            )
            for i, token in enumerate(tokens)
        )
    )
    assert all(u.status_code == 202 for u in uploads), [u.text for u in uploads]

    async def follow(job_id: str, token: str) -> dict[str, Any]:
        job = await first_final_state(gateway, job_id, auth)
        assert job["status"] == "completed", job
        # The moment it reads completed, before anything else happens.
        await check_found_everywhere(gateway, auth, job, token)
        return job

    jobs = await asyncio.gather(
        *(follow(u.json()["job_id"], token) for u, token in zip(uploads, tokens, strict=True))
    )
    for job in jobs:
        assert (job["stage"], job["progress"]) == ("done", 100)
        assert job["document_id"]
        assert set(job["seen_stages"]) <= {
            "queued",
            "extracting",
            "storing",
            "embedding",
            "graphing",
            "done",
        }


def _service(gateway_app: FastAPI, name: str) -> FastAPI:
    app: FastAPI = gateway_app.state.service_host.apps[name]
    return app


async def _services_up(gateway_app: FastAPI) -> None:
    async def up() -> bool:
        return {"ingestion", "document", "vector", "graph"} <= set(
            gateway_app.state.service_host.apps
        )

    await wait_until(up, timeout_s=120, step_s=0.1)


def break_vector_writes(gateway_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _service(gateway_app, "vector").state.vector_service.store
    upsert = store.upsert

    async def refusing(chunks: Any) -> None:
        if any(POISON in chunk.record.title for chunk in chunks):
            raise RuntimeError("the vector store refused the write")
        await upsert(chunks)

    monkeypatch.setattr(store, "upsert", refusing)


def break_graph_writes(gateway_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _service(gateway_app, "graph").state.graph_store
    apply_document = store.apply_document

    async def refusing(owner: str, document_id: str, title: str, *rest: Any) -> None:
        if POISON in title:
            raise RuntimeError("the graph store refused the write")
        await apply_document(owner, document_id, title, *rest)

    monkeypatch.setattr(store, "apply_document", refusing)


@pytest.mark.parametrize(
    ("part", "sentence"),
    [
        ("vector", "The document could not be indexed for search"),
        ("graph", "The document's entities could not be added to the knowledge graph"),
    ],
)
async def test_a_failed_part_fails_the_job_and_leaves_nothing_behind(
    gateway: httpx.AsyncClient,
    gateway_app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    sentence: str,
) -> None:
    await _services_up(gateway_app)
    (break_vector_writes if part == "vector" else break_graph_writes)(gateway_app, monkeypatch)
    auth = await sign_up(gateway)
    token = f"zq{uuid.uuid4().hex[:10]}"
    upload = await gateway.post(
        "/api/v1/files",
        files={"file": ("doomed.md", markdown(token, title=POISON), "text/markdown")},
        headers=auth,
    )
    assert upload.status_code == 202, upload.text
    job = await first_final_state(gateway, upload.json()["job_id"], auth)
    assert job["status"] == "failed", job
    assert job["error"] == f"{sentence}; nothing of it was kept. Try the upload again later."
    assert job["document_id"] is None
    expected_stage = "embedding" if part == "vector" else "graphing"
    assert job["stage"] == expected_stage, job

    document_id = document_id_for(job["job_id"])
    owner = (await gateway.get("/api/v1/auth/me", headers=auth)).json()["id"]
    vectors = _service(gateway_app, "vector").state.vector_service.store

    async def nothing_left() -> bool:
        document = await gateway.get(f"/api/v1/documents/{document_id}", headers=auth)
        chunks = await gateway.get(f"/api/v1/documents/{document_id}/chunks", headers=auth)
        graph = await gateway.get(f"/api/v1/documents/{document_id}/graph", headers=auth)
        return (
            document.status_code == 404
            and chunks.status_code == 404
            and graph.status_code == 404
            and await vectors.count(owner, document_id) == 0
        )

    # The removal runs once every part has reported: moments after the job reads failed.
    await wait_until(nothing_left, timeout_s=30, step_s=0.1)
    search = await gateway.get("/api/v1/search", params={"q": token}, headers=auth)
    assert document_id not in {hit["document_id"] for hit in search.json()["results"]}
    entities = await gateway.get("/api/v1/graph/entities", params={"q": "Curie"}, headers=auth)
    assert entities.json().get("results", []) == []


async def test_a_duplicate_upload_follows_the_same_job_to_completion(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    token = f"zq{uuid.uuid4().hex[:10]}"
    files = {"file": ("twice.md", markdown(token), "text/markdown")}
    first = await gateway.post("/api/v1/files", files=files, headers=auth)
    assert first.status_code == 202, first.text
    again = await gateway.post("/api/v1/files", files=files, headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["job_id"] == first.json()["job_id"]
    job = await first_final_state(gateway, again.json()["job_id"], auth)
    assert job["status"] == "completed", job
    await check_found_everywhere(gateway, auth, job, token)
