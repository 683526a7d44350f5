"""The worker: failures people can read, retries, leases, a worker killed mid-job, restarts."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kglab_ingestion.domain import (
    IngestionJob,
    JobStatus,
    ProgressUpdate,
    SourceKind,
    new_job_id,
    utc_now,
)
from kglab_shared.events import DocumentExtracted
from tests.faults import flaky_extraction, slow_extraction
from tests.integration.ingestion.conftest import MARKDOWN, IngestionApp
from tests.waiting import wait_until

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("protected.pdf", "This PDF is password-protected."),
        ("corrupt.pdf", "damaged"),
        ("broken.json", "line 3, column 3"),
        ("zip-bomb.docx", "zip bomb"),
    ],
)
async def test_a_file_that_cannot_be_read_fails_once_with_a_readable_error(
    ingestion: IngestionApp, name: str, fragment: str
) -> None:
    response = await ingestion.upload((DATA / name).read_bytes(), name)
    if response.status_code != 202:
        # Refused at the door is as good, if the reason is readable.
        assert response.status_code in (415, 422), response.text
        assert fragment in response.json()["detail"]
        return
    job = await ingestion.wait_for_status(response.json()["job_id"], "completed", "failed")
    assert job["status"] == "failed"
    assert fragment in job["error"]
    assert job["attempts"] == 1  # retrying cannot help, so it was not retried
    assert job["document_id"] is None
    assert ingestion.extracted == []
    assert await ingestion.jobs.saved_units(job["job_id"]) == []


async def test_a_passing_failure_is_retried_and_the_job_completes_once(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(extract=flaky_extraction("flaky", attempts=1))
    job_id = (await app.upload(MARKDOWN, "flaky-notes.md")).json()["job_id"]
    job = await app.wait_for_status(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    assert job["attempts"] == 2
    assert job["error"] is None

    async def announced() -> bool:
        return len(app.extracted) == 1

    await wait_until(announced)


async def test_a_failure_that_persists_fails_the_job_after_three_attempts(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(extract=flaky_extraction("flaky", attempts=9))
    job_id = (await app.upload(MARKDOWN, "flaky-notes.md")).json()["job_id"]
    job = await app.wait_for_status(job_id, "failed", timeout_s=30)
    assert job["attempts"] == 3
    assert job["error"].endswith("Gave up after 3 attempts.")
    assert "injected failure" in job["error"]
    assert app.extracted == []


async def stored_job(app: IngestionApp, content: bytes, name: str) -> IngestionJob:
    """A job row whose bytes are in the blob store, created without its event."""
    source = app.settings.data_dir / name
    source.write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    await app.app.state.blob_store.put_file(sha, source)
    now = utc_now()
    job = IngestionJob(
        id=new_job_id(),
        owner_id="user-alice",
        source_kind=SourceKind.FILE,
        source_name=name,
        created_at=now,
        updated_at=now,
        sha256=sha,
        size_bytes=len(content),
        content_type="text/markdown",
    )
    return await app.jobs.create(job, None)


async def test_a_job_whose_worker_vanished_is_taken_up_when_its_lease_expires(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(lease_s=1.0)
    ghost = await stored_job(app, MARKDOWN + b"\nGhost.\n", "ghost.md")
    # Claimed by a worker that then died: nobody renews its lease.
    now = utc_now()
    claimed = await app.jobs.claim(
        ghost.id, "ghost-worker", now=now, lease_until=now + timedelta(seconds=1)
    )
    assert claimed is not None
    job = await app.wait_for_status(ghost.id, "completed", timeout_s=20)
    assert job["attempts"] == 2


async def test_a_pending_job_whose_message_was_lost_is_published_again(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(stale_pending_s=0.5)
    lost = await stored_job(app, MARKDOWN + b"\nLost message.\n", "lost.md")
    job = await app.wait_for_status(lost.id, "completed", timeout_s=20)
    assert job["attempts"] == 1


async def test_a_restart_resumes_every_pending_job(
    ingestion_factory: Callable[..., Any],
) -> None:
    stopped: IngestionApp = await ingestion_factory(run_worker=False)
    ids = [
        (await stopped.upload(MARKDOWN + f"\n{n}\n".encode(), f"n{n}.md")).json()["job_id"]
        for n in range(3)
    ]
    for job_id in ids:
        assert (await stopped.job(job_id))["status"] == "pending"
    # A new process on the same data; its bus never saw the messages if they were lost.
    restarted: IngestionApp = await ingestion_factory(stale_pending_s=0.5)
    for job_id in ids:
        job = await restarted.wait_for_status(job_id, "completed", timeout_s=20)
        assert job["status"] == "completed"


async def test_a_worker_killed_mid_job_loses_nothing_and_the_job_completes_once(
    ingestion_factory: Callable[..., Any],
) -> None:
    first: IngestionApp = await ingestion_factory(lease_s=1.0, extract=slow_extraction(0.3))
    seen: list[ProgressUpdate] = []
    job_id = (await first.upload((DATA / "ten-pages.pdf").read_bytes(), "ten.pdf")).json()["job_id"]

    async def some_pages_done() -> bool:
        job = await first.jobs.get_any(job_id)
        return job is not None and job.units_done >= 3

    await wait_until(some_pages_done, timeout_s=20)
    # Kill the worker as a crash would: its message goes back unacknowledged.
    await first.bus.abort()  # type: ignore[attr-defined]
    killed_at = await first.jobs.get_any(job_id)
    assert killed_at is not None
    assert killed_at.status is JobStatus.PROCESSING

    second: IngestionApp = await ingestion_factory(lease_s=1.0)
    async with second.app.state.progress_channel.subscribe(job_id) as updates:
        job = await second.wait_for_status(job_id, "completed", "failed", timeout_s=30)
        assert job["status"] == "completed", job
        assert job["attempts"] == 2

        async def collect() -> None:
            async for update in updates:
                seen.append(update)
                if update.is_final:
                    return

        await asyncio.wait_for(collect(), 5)
    # The second worker resumed after the saved pages instead of starting again.
    pages = [u.extra["units_done"] for u in seen if "units_done" in u.extra]
    assert pages
    assert min(pages) > killed_at.units_done

    # Exactly one document, with every page.
    async def announced() -> bool:
        return any(e.data["job_id"] == job_id for e in second.extracted)

    await wait_until(announced)
    events = [e for e in second.extracted if e.data["job_id"] == job_id]
    assert len({e.id for e in events}) == 1
    document = DocumentExtracted.model_validate(events[0].data)
    text = second.texts[document.document_id]
    for chapter in range(1, 11):
        assert f"Chapter {chapter}" in text


async def test_a_job_whose_workers_keep_vanishing_is_stopped(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(run_worker=False)
    job = await stored_job(app, MARKDOWN + b"\nPoison.\n", "poison.md")
    now = utc_now()
    for attempt in range(3):
        # Each claim's worker died at once: its lease is already over.
        claimed = await app.jobs.claim(
            job.id, f"dead-{attempt}", now=now, lease_until=now - timedelta(seconds=1)
        )
        assert claimed is not None
    worker: IngestionApp = await ingestion_factory()
    result = await worker.wait_for_status(job.id, "failed", timeout_s=20)
    assert result["attempts"] == 4
    assert result["error"] == "Processing was interrupted 3 times; the job was stopped."


async def test_a_job_whose_file_is_gone_fails_readably(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(run_worker=False)
    job = await stored_job(app, MARKDOWN + b"\nGone.\n", "gone.md")
    assert job.sha256 is not None
    await app.app.state.blob_store.delete(job.sha256)
    worker: IngestionApp = await ingestion_factory(stale_pending_s=0.2)
    result = await worker.wait_for_status(job.id, "failed", timeout_s=20)
    assert result["error"] == "The uploaded file is no longer stored; upload it again."
    assert result["attempts"] == 1


async def test_one_owners_flood_does_not_starve_another_owners_single_file(
    ingestion_factory: Callable[..., Any],
) -> None:
    # One job at a time, each taking at least 0.5 s: alice's 16 uploads queue up in front of
    # bob's single file, which still runs at one of the next turns instead of after all 16.
    app: IngestionApp = await ingestion_factory(worker_concurrency=1, extract=slow_extraction(0.5))
    alice_jobs = []
    for number in range(16):
        response = await app.upload(f"# Alice {number}\n\nNote {number}.\n".encode(), "a.md")
        assert response.status_code == 202, response.text
        alice_jobs.append(response.json()["job_id"])

    async def alice_completed() -> int:
        return sum([(await app.job(job_id))["status"] == "completed" for job_id in alice_jobs])

    bob = await app.upload(b"# Bob\n\nA single note.\n", "b.md", user="user-bob")
    assert bob.status_code == 202, bob.text
    before = await alice_completed()
    bob_job = bob.json()["job_id"]

    async def bob_done() -> bool:
        response = await app.client.get(f"/api/v1/jobs/{bob_job}", headers=app.headers("user-bob"))
        return bool(response.json()["status"] == "completed")

    await wait_until(bob_done, timeout_s=30, step_s=0.05)
    meanwhile = await alice_completed() - before
    # First in, first out would have finished every one of alice's waiting jobs first (at
    # least 16 - before); fair turns let at most the one in flight and the next finish.
    assert meanwhile <= 2, (before, meanwhile)
    assert 16 - before > 2, "the flood was not queued: the test proves nothing"


async def test_a_pdf_over_the_page_limit_fails_at_once_and_says_so(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(max_pdf_pages=5)
    job_id = (await app.upload((DATA / "ten-pages.pdf").read_bytes(), "ten.pdf")).json()["job_id"]
    job = await app.wait_for_status(job_id, "completed", "failed")
    assert job["status"] == "failed"
    assert job["error"].startswith("The PDF has 10 pages; the limit is 5.")
    assert job["attempts"] == 1  # retrying cannot help
    assert job["units_done"] == 0  # refused before any page was read


async def test_a_file_that_takes_too_long_to_read_is_stopped_readably(
    ingestion_factory: Callable[..., Any],
) -> None:
    app: IngestionApp = await ingestion_factory(max_extraction_s=0.05, extract=slow_extraction(0.1))
    job_id = (await app.upload((DATA / "ten-pages.pdf").read_bytes(), "ten.pdf")).json()["job_id"]
    job = await app.wait_for_status(job_id, "completed", "failed", timeout_s=20)
    assert job["status"] == "failed"
    assert "took longer than 0.05 s and was stopped after" in job["error"]
    assert job["attempts"] == 1
