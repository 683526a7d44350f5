"""Deleting a document reaches ingestion through the real event (the composed system, through
the gateway): the job shows its document as deleted and the same file becomes a new job."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.test_ingestion_flow import poll_job, sign_up
from tests.waiting import wait_until


async def test_a_deleted_document_can_be_uploaded_again_as_a_new_job(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    # Unique bytes: nothing else in the shared composition holds them.
    content = f"# Lab notes {uuid.uuid4().hex}\n\nThe centrifuge runs at 4000 rpm.\n".encode()
    files = {"file": ("notes.md", content, "text/markdown")}
    upload = await gateway.post("/api/v1/files", files=files, headers=auth)
    assert upload.status_code == 202, upload.text
    job = await poll_job(gateway, upload.json()["job_id"], auth)
    assert job["status"] == "completed", job
    document_id = job["document_id"]

    async def stored() -> bool:
        found = await gateway.get(f"/api/v1/documents/{document_id}", headers=auth)
        return found.status_code == 200

    await wait_until(stored, timeout_s=30, step_s=0.1)
    deleted = await gateway.delete(f"/api/v1/documents/{document_id}", headers=auth)
    assert deleted.status_code == 202, deleted.text

    async def followed() -> bool:
        current = await gateway.get(f"/api/v1/jobs/{job['job_id']}", headers=auth)
        return current.json()["document_deleted_at"] is not None

    await wait_until(followed, timeout_s=30, step_s=0.1)
    after = (await gateway.get(f"/api/v1/jobs/{job['job_id']}", headers=auth)).json()
    assert after["status"] == "completed"
    assert after["document_id"] is None

    again = await gateway.post("/api/v1/files", files=files, headers=auth)
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] != job["job_id"]
    second = await poll_job(gateway, again.json()["job_id"], auth)
    assert second["status"] == "completed", second
    assert second["document_id"] not in (None, document_id)
