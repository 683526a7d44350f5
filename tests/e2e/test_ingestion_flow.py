"""Ingestion as a user meets it, through the gateway as ``make dev`` composes the system:
upload a Markdown file, follow the job to completed, find the document and its entities."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from tests.waiting import wait_until

PASSWORD = "a long enough passphrase"
MARKDOWN = b"""# The Curie laboratory

Marie Curie worked in Paris with Pierre Curie. Marie Curie studied radioactivity at the
University of Paris, and Pierre Curie measured crystals.

## Later years

Marie Curie founded the Radium Institute in Paris.
"""


async def sign_up(gateway: httpx.AsyncClient) -> dict[str, str]:
    email = f"ingest-{uuid.uuid4().hex[:10]}@example.com"
    registered = await gateway.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    login = await gateway.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def poll_job(gateway: httpx.AsyncClient, job_id: str, auth: dict[str, str]) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal latest
        response = await gateway.get(f"/api/v1/jobs/{job_id}", headers=auth)
        assert response.status_code == 200, response.text
        latest = response.json()
        return latest["status"] in ("completed", "failed")

    await wait_until(finished, timeout_s=90, step_s=0.1)
    return latest


async def test_an_uploaded_markdown_file_becomes_a_document_and_entities(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    upload = await gateway.post(
        "/api/v1/files", files={"file": ("curie.md", MARKDOWN, "text/markdown")}, headers=auth
    )
    assert upload.status_code == 202, upload.text
    job_id = upload.json()["job_id"]

    job = await poll_job(gateway, job_id, auth)
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    document_id = job["document_id"]

    # Completed means done: listed, readable and in the graph now, without waiting.
    assert job["stage"] == "done"
    listing = await gateway.get("/api/v1/documents", headers=auth)
    assert any(item["id"] == document_id for item in listing.json()["items"])
    document = (await gateway.get(f"/api/v1/documents/{document_id}", headers=auth)).json()
    assert document["title"] == "The Curie laboratory"
    assert document["job_id"] == job_id
    assert document["provenance"]["source_name"] == "curie.md"

    response = await gateway.get("/api/v1/graph/entities?q=Marie Curie", headers=auth)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json().get("results", [])
    assert any("Curie" in entity["name"] for entity in found)

    # Another user sees none of it.
    stranger = await sign_up(gateway)
    assert (await gateway.get(f"/api/v1/jobs/{job_id}", headers=stranger)).status_code == 404
    assert (
        await gateway.get(f"/api/v1/documents/{document_id}", headers=stranger)
    ).status_code == 404


async def test_upload_refusals_reach_the_user_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    too_big = b"a" * (14 * 1024 * 1024 + 200 * 1024)
    response = await gateway.post(
        "/api/v1/files", files={"file": ("big.txt", too_big, "text/plain")}, headers=auth
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "The file is 14.2 MB; the limit is 10 MB."
    wrong = await gateway.post(
        "/api/v1/files", files={"file": ("photo.pdf", b"GIF89a....", "image/gif")}, headers=auth
    )
    assert wrong.status_code == 415
    assert wrong.json()["detail"].endswith(".")
    unsafe = await gateway.post(
        "/api/v1/urls", json={"url": "http://127.0.0.1:8000/admin"}, headers=auth
    )
    assert unsafe.status_code == 422
    assert unsafe.json()["detail"].endswith(".")


async def test_a_resumable_upload_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    options = await gateway.options("/api/v1/uploads", headers=tus)
    assert options.headers["tus-version"].startswith("1.0.0")
    name = base64.b64encode(b"curie.md").decode()
    created = await gateway.post(
        "/api/v1/uploads",
        headers={**tus, "Upload-Length": str(len(MARKDOWN)), "Upload-Metadata": f"filename {name}"},
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/api/v1/uploads/")  # the public path, not a service's address
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    half = len(MARKDOWN) // 2
    first = await gateway.patch(
        location, content=MARKDOWN[:half], headers={**patch, "Upload-Offset": "0"}
    )
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == str(half)
    assert first.headers["tus-resumable"] == "1.0.0"
    head = await gateway.head(location, headers=tus)
    assert head.headers["upload-offset"] == str(half)
    assert head.headers["upload-length"] == str(len(MARKDOWN))
    last = await gateway.patch(
        location, content=MARKDOWN[half:], headers={**patch, "Upload-Offset": str(half)}
    )
    assert last.status_code == 204, last.text
    job = await poll_job(gateway, last.headers["upload-job-id"], auth)
    assert job["status"] == "completed", job
    assert job["source_name"] == "curie.md"
