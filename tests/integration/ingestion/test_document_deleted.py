"""Ingestion follows ``document.deleted``: the job shows its document as deleted, the same file
may be uploaded again as a new job, and the raw bytes go once no live job needs them.

Runs on the embedded adapters (SQLite, blob files) and the real ones (PostgreSQL, GridFS).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Any

import pytest

from kglab_ingestion.messaging.consume import DELETIONS_GROUP, deletion_handler
from kglab_ingestion.store.port import BlobStore
from kglab_shared.bus.idempotency import SqlProcessedEvents, idempotent
from kglab_shared.events import DocumentDeleted, DocumentExtracted, EventEnvelope
from tests.integration.ingestion.conftest import ALICE, BOB, MARKDOWN, IngestionApp
from tests.waiting import wait_until

SHA256 = hashlib.sha256(MARKDOWN).hexdigest()


def deleted_event(document_id: str, owner_id: str = ALICE) -> EventEnvelope:
    """What the document service publishes (its id is derived from the document id)."""
    event = DocumentDeleted(document_id=document_id, owner_id=owner_id)
    return event.envelope(
        source="kglab/document",
        subject=document_id,
        event_id=f"{event.event_type}:{document_id}",
    )


def blobs(app: IngestionApp) -> BlobStore:
    store: BlobStore = app.app.state.blob_store
    return store


def ledger(app: IngestionApp) -> SqlProcessedEvents:
    return SqlProcessedEvents(app.jobs.engine)


async def completed_upload(app: IngestionApp, user: str = ALICE) -> dict[str, Any]:
    response = await app.upload(MARKDOWN, "graphs.md", user=user)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal job
        job = await app.job(response.json()["job_id"], user)
        return job["status"] in ("completed", "failed")

    await wait_until(finished, timeout_s=20, step_s=0.05)
    assert job["status"] == "completed", job
    return job


async def delete_and_wait(app: IngestionApp, document_id: str, owner: str = ALICE) -> str:
    """Publish ``document.deleted`` and wait until the consumer has handled it."""
    envelope = deleted_event(document_id, owner)
    await app.bus.publish(envelope)

    async def handled() -> bool:
        return await ledger(app).has(DELETIONS_GROUP, envelope.id)

    await wait_until(handled, timeout_s=20, step_s=0.05)
    return envelope.id


async def test_a_deleted_documents_file_is_removed_and_can_be_uploaded_again(
    ingestion: IngestionApp,
) -> None:
    first = await completed_upload(ingestion)
    document_id = first["document_id"]
    assert document_id
    assert first["document_deleted_at"] is None
    assert await blobs(ingestion).exists(SHA256)
    # Before the deletion the same bytes are a duplicate of that job.
    duplicate = await ingestion.upload(MARKDOWN, "graphs.md")
    assert duplicate.status_code == 200
    assert duplicate.json()["duplicate_of"] == first["job_id"]

    await delete_and_wait(ingestion, document_id)

    job = await ingestion.job(first["job_id"])
    assert job["status"] == "completed"  # what happened to the job is kept
    assert job["document_id"] is None  # it points at no missing document
    assert datetime.fromisoformat(job["document_deleted_at"]) >= datetime.fromisoformat(
        first["finished_at"]
    )
    assert not await blobs(ingestion).exists(SHA256)

    again = await ingestion.upload(MARKDOWN, "graphs.md")
    assert again.status_code == 202, again.text
    accepted = again.json()
    assert accepted["duplicate"] is False
    assert accepted["job_id"] != first["job_id"]
    second = await ingestion.wait_for_status(accepted["job_id"], "completed", "failed")
    assert second["status"] == "completed", second
    assert second["document_id"] not in (None, document_id)
    assert second["near_duplicate_of"] is None  # a deleted document is no original
    assert await blobs(ingestion).exists(SHA256)

    async def both_extracted() -> bool:
        return len(ingestion.extracted) == 2

    await wait_until(both_extracted)
    latest = DocumentExtracted.model_validate(ingestion.extracted[-1].data)
    assert latest.document_id == second["document_id"]
    assert latest.provenance.sha256 == SHA256
    # And that upload is now the one a third upload is a duplicate of.
    third = await ingestion.upload(MARKDOWN, "graphs.md")
    assert third.status_code == 200
    assert third.json()["duplicate_of"] == second["job_id"]


async def test_bytes_another_user_still_needs_are_kept(ingestion: IngestionApp) -> None:
    mine = await completed_upload(ingestion, ALICE)
    theirs = await completed_upload(ingestion, BOB)
    await delete_and_wait(ingestion, mine["document_id"])
    assert (await ingestion.job(mine["job_id"]))["document_deleted_at"] is not None
    assert await blobs(ingestion).exists(SHA256)
    bob = await ingestion.job(theirs["job_id"], user=BOB)
    assert bob["document_deleted_at"] is None
    assert bob["document_id"] == theirs["document_id"]
    # Bob's deletion removes the last reference, and with it the bytes.
    await delete_and_wait(ingestion, theirs["document_id"], BOB)
    assert not await blobs(ingestion).exists(SHA256)


async def test_another_users_deletion_event_changes_nothing(ingestion: IngestionApp) -> None:
    mine = await completed_upload(ingestion)
    # An event naming Alice's document under Bob's id (or an unknown document) is acknowledged.
    await delete_and_wait(ingestion, mine["document_id"], BOB)
    await delete_and_wait(ingestion, "0" * 32)
    job = await ingestion.job(mine["job_id"])
    assert job["document_deleted_at"] is None
    assert job["document_id"] == mine["document_id"]
    assert await blobs(ingestion).exists(SHA256)
    assert (await ingestion.upload(MARKDOWN, "graphs.md")).status_code == 200


async def test_the_same_deletion_twice_changes_nothing(ingestion: IngestionApp) -> None:
    first = await completed_upload(ingestion)
    event_id = await delete_and_wait(ingestion, first["document_id"])
    marked = await ingestion.job(first["job_id"])
    again = await ingestion.upload(MARKDOWN, "graphs.md")
    assert again.status_code == 202
    second = await ingestion.wait_for_status(again.json()["job_id"], "completed")

    # A redelivery of the same event (as the bus may do) goes through the consumer the app
    # subscribed: the id is remembered, so its handler does not run again.
    service = ingestion.app.state.ingestion_service
    consumer = idempotent(deletion_handler(service), ledger(ingestion), DELETIONS_GROUP)
    redelivered = deleted_event(first["document_id"])
    assert redelivered.id == event_id
    await consumer(redelivered)
    # The document service republishes under the same id; a copy under a new id (a replayed
    # dead letter, say) runs the handler, which finds nothing left to do.
    await consumer(redelivered.model_copy(update={"id": "replayed-" + event_id[:40]}))
    await service.document_deleted(ALICE, first["document_id"])

    assert await ingestion.job(first["job_id"]) == marked
    assert await ingestion.job(second["job_id"]) == second
    assert await blobs(ingestion).exists(SHA256)  # the new job's bytes stay
    assert (await ingestion.upload(MARKDOWN, "graphs.md")).json()["duplicate_of"] == second[
        "job_id"
    ]


class Gate:
    """Holds calls to one method of a real store until released (instrumentation of our own
    adapter, which then runs unchanged): ``reached`` is set when a call waits. ``after``
    holds the call once the method has run instead of before."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, target: object, method: str, *, after: bool = False
    ) -> None:
        self.reached = asyncio.Event()
        self.released = asyncio.Event()
        original = getattr(target, method)

        async def held(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs) if after else None
            self.reached.set()
            await self.released.wait()
            return result if after else await original(*args, **kwargs)

        monkeypatch.setattr(target, method, held)


async def test_a_reupload_committed_before_the_deletion_decides_keeps_its_bytes(
    ingestion: IngestionApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion has marked the old job (so the same bytes are a new job, no duplicate),
    then the re-upload commits its job before the deletion decides about the bytes: they are
    kept, and the new job completes once."""
    first = await completed_upload(ingestion)
    service = ingestion.app.state.ingestion_service
    marked = Gate(monkeypatch, ingestion.jobs, "mark_document_deleted", after=True)
    deletion = asyncio.create_task(service.document_deleted(ALICE, first["document_id"]))
    await asyncio.wait_for(marked.reached.wait(), timeout=10)
    response = await ingestion.upload(MARKDOWN, "graphs.md")
    assert response.status_code == 202, response.text
    marked.released.set()
    await deletion
    assert await blobs(ingestion).exists(SHA256)
    await assert_completed_once(ingestion, response, first)


async def test_a_reupload_in_flight_while_the_deletion_removes_the_bytes_stores_them_again(
    ingestion: IngestionApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window: the deletion found no live job and is removing the bytes while
    the re-upload (which stored the same bytes before) commits its job and checks them. The
    re-upload's job waits for the removal, then finds the bytes gone and stores them again;
    without that lock it would see them still there, answer 202, and its job would fail with
    "no longer stored" once the removal landed (the worker is held until then here)."""
    first = await completed_upload(ingestion)
    service = ingestion.app.state.ingestion_service
    removal = Gate(monkeypatch, blobs(ingestion), "delete")
    reading = Gate(monkeypatch, blobs(ingestion), "copy_to")
    deletion = asyncio.create_task(service.document_deleted(ALICE, first["document_id"]))
    await asyncio.wait_for(removal.reached.wait(), timeout=10)
    upload = asyncio.create_task(ingestion.upload(MARKDOWN, "graphs.md"))
    # Bounded: the upload is held by the removal's lock (it would finish in well under a
    # second without it).
    await asyncio.wait({upload}, timeout=1.0)
    assert not upload.done()
    removal.released.set()
    await deletion
    response = await upload
    reading.released.set()
    assert response.status_code == 202, response.text
    assert await blobs(ingestion).exists(SHA256)
    await assert_completed_once(ingestion, response, first)


async def assert_completed_once(
    ingestion: IngestionApp, response: Any, first: dict[str, Any]
) -> None:
    accepted = response.json()
    assert accepted["duplicate"] is False
    assert accepted["job_id"] != first["job_id"]
    second = await ingestion.wait_for_status(accepted["job_id"], "completed", "failed")
    assert second["status"] == "completed", second
    assert second["attempts"] == 1
    assert second["document_id"] not in (None, first["document_id"])

    async def both_extracted() -> bool:
        return len(ingestion.extracted) == 2

    await wait_until(both_extracted)
    latest = DocumentExtracted.model_validate(ingestion.extracted[-1].data)
    assert latest.document_id == second["document_id"]
    # Completed once: a later upload of the same bytes points at it.
    again = await ingestion.upload(MARKDOWN, "graphs.md")
    assert again.status_code == 200
    assert again.json()["duplicate_of"] == second["job_id"]
    assert len(ingestion.extracted) == 2
