"""The ``JobStore`` contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from sqlalchemy import func, select

from kglab_ingestion.domain import (
    ChangeCursor,
    IngestionJob,
    JobCursor,
    JobStage,
    JobStatus,
    SourceKind,
    new_job_id,
    utc_now,
)
from kglab_ingestion.service import job_failed_event, job_requested_event, report_job_gauges
from kglab_ingestion.store.port import Completion, DuplicateJobError, PartRecorded
from kglab_ingestion.store.sql import SqlJobStore
from kglab_shared.events import DocumentExtracted, Provenance
from kglab_shared.metrics import REGISTRY
from kglab_shared.outbox import outbox


def a_job(owner: str = "alice", sha: str | None = None, **changes: object) -> IngestionJob:
    now = utc_now()
    job = IngestionJob(
        id=new_job_id(),
        owner_id=owner,
        source_kind=SourceKind.FILE,
        source_name="notes.md",
        created_at=now,
        updated_at=now,
        sha256=sha or new_job_id() + new_job_id(),
        size_bytes=12,
        content_type="text/markdown",
        processor_version="test/1",
    )
    return replace(job, **changes)  # type: ignore[arg-type]


async def outbox_types(store: SqlJobStore) -> list[str]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.event_type).order_by(outbox.c.id))
        return [row.event_type for row in rows]


def completion(document_id: str = "doc1", minhash: list[int] | None = None) -> Completion:
    return Completion(
        document_id=document_id,
        title="Notes",
        chunk_count=2,
        content_type="text/markdown",
        processor_version="test/1",
        minhash=minhash,
        near_duplicate_of=None,
        near_duplicate_similarity=None,
    )


def extracted_event(job: IngestionJob) -> object:
    event = DocumentExtracted(
        document_id="doc1",
        job_id=job.id,
        owner_id=job.owner_id,
        title="Notes",
        media_type="text/markdown",
        provenance=Provenance(
            source_name=job.source_name,
            uploader_id=job.owner_id,
            uploaded_at=job.created_at,
            size_bytes=12,
            content_type="text/markdown",
            sha256=job.sha256 or "",
            processor_version="test/1",
        ),
        chunk_count=0,
        claim="claim",
    )
    return event.envelope(source="test", event_id=f"document.extracted:{job.id}")


async def record(
    store: SqlJobStore, owner: str, document_id: str, part: str, *, ok: bool = True
) -> PartRecorded | None:
    return await store.record_part(
        owner,
        document_id,
        part,
        ok=ok,
        now=utc_now(),
        discard=lambda job: job_failed_event(job, source="test"),
    )


async def index_fully(store: SqlJobStore, owner: str, document_id: str) -> IngestionJob:
    """The document, vector and graph services acknowledge their parts."""
    recorded = None
    for part in ("stored", "embedded", "graphed"):
        recorded = await record(store, owner, document_id, part)
    assert recorded is not None
    return recorded.job


async def extracted_job(store: SqlJobStore, document_id: str = "doc1") -> IngestionJob:
    job = a_job()
    await store.create(job, None)
    now = utc_now()
    await store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    done = await store.complete(
        job.id,
        "w1",
        completion(document_id=document_id),
        extracted_event(job),  # type: ignore[arg-type]
    )
    assert done is not None
    return done


async def test_a_job_and_its_event_commit_together(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, job_requested_event(job, source="test"))
    assert await job_store.get("alice", job.id) == job
    assert await outbox_types(job_store) == ["ingestion.job.requested"]


async def test_another_owner_cannot_see_the_job(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    assert await job_store.get("mallory", job.id) is None
    assert (await job_store.list_jobs("mallory", status=None, limit=10, after=None)).items == []


async def test_a_second_live_job_for_the_same_bytes_is_refused(job_store: SqlJobStore) -> None:
    first = a_job(sha="a" * 64)
    await job_store.create(first, job_requested_event(first, source="test"))
    second = a_job(sha="a" * 64)
    with pytest.raises(DuplicateJobError) as caught:
        await job_store.create(second, job_requested_event(second, source="test"))
    assert caught.value.existing.id == first.id
    # Nothing of the refused job was written, not even its event.
    assert await job_store.get_any(second.id) is None
    assert await outbox_types(job_store) == ["ingestion.job.requested"]
    # Another owner may upload the same bytes.
    await job_store.create(a_job(owner="bob", sha="a" * 64), None)
    assert (await job_store.find_live_by_sha256("alice", "a" * 64)) == first


async def test_a_failed_job_frees_its_bytes_for_a_new_upload(job_store: SqlJobStore) -> None:
    first = a_job(sha="b" * 64)
    await job_store.create(first, None)
    assert await job_store.fail(first.id, None, "Broken.") is not None
    assert await job_store.find_live_by_sha256("alice", "b" * 64) is None
    await job_store.create(a_job(sha="b" * 64), None)


async def test_jobs_list_newest_first_with_a_cursor_and_a_status_filter(
    job_store: SqlJobStore,
) -> None:
    base = utc_now()
    created = []
    for number in range(5):
        job = a_job(created_at=base + timedelta(seconds=number))
        await job_store.create(job, None)
        created.append(job)
    await job_store.fail(created[1].id, None, "Broken.")
    first = await job_store.list_jobs("alice", status=None, limit=2, after=None)
    assert [j.id for j in first.items] == [created[4].id, created[3].id]
    assert first.next_cursor is not None
    rest = await job_store.list_jobs(
        "alice", status=None, limit=10, after=JobCursor.decode(first.next_cursor)
    )
    assert [j.id for j in rest.items] == [created[2].id, created[1].id, created[0].id]
    assert rest.next_cursor is None
    failed = await job_store.list_jobs("alice", status=JobStatus.FAILED, limit=10, after=None)
    assert [j.id for j in failed.items] == [created[1].id]


async def test_only_one_of_two_workers_claims_a_job(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    results = await asyncio.gather(
        *[
            job_store.claim(job.id, f"w{n}", now=now, lease_until=now + timedelta(seconds=30))
            for n in range(4)
        ]
    )
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1
    assert claimed[0].status is JobStatus.PROCESSING
    assert claimed[0].attempts == 1
    assert claimed[0].lease_owner is not None


async def test_an_expired_lease_lets_another_worker_take_over(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    assert await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=1))
    assert await job_store.claim(job.id, "w2", now=now, lease_until=now) is None
    later = now + timedelta(seconds=2)
    taken = await job_store.claim(job.id, "w2", now=later, lease_until=later + timedelta(seconds=5))
    assert taken is not None
    assert taken.lease_owner == "w2"
    assert taken.attempts == 2
    # The first worker lost its lease: none of its writes land.
    assert not await job_store.renew_lease(job.id, "w1", later + timedelta(seconds=9))
    assert not await job_store.save_unit(
        job.id, "w1", unit_index=0, units_total=2, sections=[], progress=50
    )
    assert await job_store.complete(job.id, "w1", completion(), extracted_event(job)) is None  # type: ignore[arg-type]
    assert await job_store.release_for_retry(job.id, "w1", "x") is None


async def test_saved_units_are_the_resume_point(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    for index in range(2):
        assert await job_store.save_unit(
            job.id,
            "w1",
            unit_index=index,
            units_total=3,
            sections=[{"heading": None, "text": f"page {index}", "kind": "paragraph"}],
            progress=10 + index,
        )
    current = await job_store.get_any(job.id)
    assert current is not None
    assert (current.units_done, current.units_total, current.progress) == (2, 3, 11)
    units = await job_store.saved_units(job.id)
    assert [u[0]["text"] for u in units] == ["page 0", "page 1"]


async def test_completion_writes_the_result_and_the_event_once(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    await job_store.save_unit(job.id, "w1", unit_index=0, units_total=1, sections=[], progress=90)
    done = await job_store.complete(
        job.id,
        "w1",
        completion(minhash=[1, 2, 3]),
        extracted_event(job),  # type: ignore[arg-type]
    )
    assert done is not None
    # Extracted, not completed: the document's parts are still to be done.
    assert (done.status, done.stage, done.progress, done.document_id, done.chunk_count) == (
        JobStatus.PROCESSING,
        JobStage.STORING,
        70,
        "doc1",
        2,
    )
    assert done.live_document_id is None
    assert done.lease_owner is None
    assert await job_store.saved_units(job.id) == []
    assert await outbox_types(job_store) == ["document.extracted"]
    # A second completion (a redelivery) changes nothing and publishes nothing.
    assert await job_store.complete(job.id, "w1", completion(), extracted_event(job)) is None  # type: ignore[arg-type]
    assert await outbox_types(job_store) == ["document.extracted"]
    # Waiting for its parts, it is nobody's to claim or to requeue.
    later = now + timedelta(minutes=10)
    assert await job_store.claim(job.id, "w2", now=later, lease_until=later) is None
    assert (
        await job_store.requeue_abandoned(
            now=later,
            pending_before=later,
            limit=10,
            events=lambda j: job_requested_event(j, source="test", fresh=True),
        )
        == []
    )
    assert await job_store.recent_completed_ids("alice", exclude_job_id="x", limit=10) == []
    completed = await index_fully(job_store, "alice", "doc1")
    assert (completed.status, completed.stage, completed.progress) == (
        JobStatus.COMPLETED,
        JobStage.DONE,
        100,
    )
    assert completed.live_document_id == "doc1"
    assert completed.finished_at is not None
    # The near-duplicate window, as ids, and the signatures by id (what the worker caches).
    assert await job_store.recent_completed_ids("alice", exclude_job_id="x", limit=10) == [job.id]
    assert await job_store.recent_completed_ids("alice", exclude_job_id=job.id, limit=10) == []
    assert await job_store.recent_completed_ids("bob", exclude_job_id="x", limit=10) == []
    assert await job_store.signatures_of([job.id, "unknown"]) == {job.id: [1, 2, 3]}
    assert await job_store.signatures_of([]) == {}


async def test_completion_records_the_units_and_keeps_what_was_not_saved(
    job_store: SqlJobStore,
) -> None:
    # The last unit is not saved on its own: the completion records the document's units.
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    assert await job_store.save_unit(
        job.id, "w1", unit_index=0, units_total=2, sections=[{"text": "one"}], progress=47
    )
    done = await job_store.complete(
        job.id,
        "w1",
        replace(completion(), units_total=2, has_saved_units=True),
        extracted_event(job),  # type: ignore[arg-type]
    )
    assert done is not None
    assert (done.units_done, done.units_total, done.progress) == (2, 2, 70)
    assert await job_store.saved_units(job.id) == []


async def test_release_for_retry_returns_the_job_to_pending(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    released = await job_store.release_for_retry(job.id, "w1", "The site timed out.")
    assert released is not None
    assert released.status is JobStatus.PENDING
    assert released.error == "The site timed out."
    assert released.error_retryable
    assert released.attempts == 1
    again = await job_store.claim(job.id, "w2", now=now, lease_until=now + timedelta(seconds=30))
    assert again is not None
    assert again.attempts == 2


async def test_the_sweeper_requeues_expired_leases_and_stale_pending_jobs(
    job_store: SqlJobStore,
) -> None:
    now = utc_now()
    stale = a_job(updated_at=now - timedelta(minutes=10))
    fresh = a_job()
    running = a_job()
    abandoned = a_job()
    for job in (stale, fresh, running, abandoned):
        await job_store.create(job, None)
    await job_store.claim(running.id, "w1", now=now, lease_until=now + timedelta(minutes=5))
    await job_store.claim(abandoned.id, "w2", now=now, lease_until=now - timedelta(seconds=1))
    requeued = await job_store.requeue_abandoned(
        now=now,
        pending_before=now - timedelta(minutes=1),
        limit=100,
        events=lambda job: job_requested_event(job, source="test", fresh=True),
    )
    assert set(requeued) == {stale.id, abandoned.id}
    current = await job_store.get_any(abandoned.id)
    assert current is not None
    assert (current.status, current.lease_owner) == (JobStatus.PENDING, None)
    assert await outbox_types(job_store) == ["ingestion.job.requested"] * 2
    async with job_store.engine.connect() as connection:
        distinct = await connection.scalar(select(func.count(func.distinct(outbox.c.event_id))))
    assert distinct == 2


async def test_fail_without_a_worker_leaves_completed_jobs_alone(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    await job_store.complete(job.id, "w1", completion(), extracted_event(job))  # type: ignore[arg-type]
    await index_fully(job_store, "alice", "doc1")
    assert await job_store.fail(job.id, None, "late") is None
    current = await job_store.get_any(job.id)
    assert current is not None
    assert current.status is JobStatus.COMPLETED


async def test_a_deleted_document_frees_its_jobs_bytes_for_a_new_upload(
    job_store: SqlJobStore,
) -> None:
    first = a_job(sha="e" * 64, status=JobStatus.COMPLETED, document_id="d" * 32)
    await job_store.create(first, None)
    with pytest.raises(DuplicateJobError):
        await job_store.create(a_job(sha="e" * 64), None)
    at = utc_now()
    marked = await job_store.mark_document_deleted("alice", "d" * 32, at=at)
    assert [job.id for job in marked] == [first.id]
    assert marked[0].document_deleted_at == at
    assert marked[0].live_document_id is None
    assert marked[0].status is JobStatus.COMPLETED  # what happened to the job is kept
    assert await job_store.find_live_by_sha256("alice", "e" * 64) is None
    assert not await job_store.sha256_in_use("e" * 64)
    again = a_job(sha="e" * 64)
    await job_store.create(again, None)
    assert await job_store.find_live_by_sha256("alice", "e" * 64) == again
    assert await job_store.sha256_in_use("e" * 64)


async def test_marking_a_deleted_document_twice_keeps_the_first_moment(
    job_store: SqlJobStore,
) -> None:
    job = a_job(status=JobStatus.COMPLETED, document_id="f" * 32)
    await job_store.create(job, None)
    first = utc_now()
    await job_store.mark_document_deleted("alice", "f" * 32, at=first)
    again = await job_store.mark_document_deleted(
        "alice", "f" * 32, at=first + timedelta(minutes=5)
    )
    assert [j.document_deleted_at for j in again] == [first]
    stored = await job_store.get("alice", job.id)
    assert stored is not None
    assert stored.document_deleted_at == first


async def test_only_the_owners_document_is_marked(job_store: SqlJobStore) -> None:
    job = a_job(status=JobStatus.COMPLETED, document_id="a" * 32)
    await job_store.create(job, None)
    assert await job_store.mark_document_deleted("mallory", "a" * 32, at=utc_now()) == []
    assert await job_store.mark_document_deleted("alice", "b" * 32, at=utc_now()) == []
    stored = await job_store.get("alice", job.id)
    assert stored is not None
    assert stored.document_deleted_at is None
    assert stored.live_document_id == "a" * 32


async def test_bytes_stay_in_use_while_any_live_job_needs_them(job_store: SqlJobStore) -> None:
    sha = "9" * 64
    mine = a_job(sha=sha, status=JobStatus.COMPLETED, document_id="1" * 32)
    theirs = a_job(owner="bob", sha=sha)  # pending: its worker will read the bytes
    await job_store.create(mine, None)
    await job_store.create(theirs, None)
    await job_store.mark_document_deleted("alice", "1" * 32, at=utc_now())
    assert await job_store.sha256_in_use(sha)
    await job_store.fail(theirs.id, None, "Broken.")  # a failed job needs nothing
    assert not await job_store.sha256_in_use(sha)
    # URL jobs hold the bytes they fetched the same way.
    fetched = a_job(owner="carol", sha=sha, source_kind=SourceKind.URL, url="https://e.org/")
    await job_store.create(fetched, None)
    assert await job_store.sha256_in_use(sha)


async def test_a_deleted_document_is_no_near_duplicate_original(job_store: SqlJobStore) -> None:
    job = a_job()
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    await job_store.complete(
        job.id,
        "w1",
        completion(document_id="c" * 32, minhash=[4, 5, 6]),
        extracted_event(job),  # type: ignore[arg-type]
    )
    await index_fully(job_store, "alice", "c" * 32)
    assert await job_store.recent_completed_ids("alice", exclude_job_id="x", limit=10) == [job.id]
    assert await job_store.signatures_of([job.id]) == {job.id: [4, 5, 6]}
    await job_store.mark_document_deleted("alice", "c" * 32, at=utc_now())
    assert await job_store.recent_completed_ids("alice", exclude_job_id="x", limit=10) == []


async def _leased_url_job(job_store: SqlJobStore) -> IngestionJob:
    job = a_job(owner="carol", source_kind=SourceKind.URL, url="https://e.org/", sha256=None)
    await job_store.create(job, None)
    now = utc_now()
    await job_store.claim(job.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    return job


async def test_a_url_job_names_its_bytes_while_holding_off_their_removal(
    job_store: SqlJobStore,
) -> None:
    """A removal deciding about the same bytes while a URL job stores them waits, then sees
    the job needing them (it would otherwise remove bytes the job is about to read)."""
    sha = "7" * 64
    job = await _leased_url_job(job_store)
    storing, stored = asyncio.Event(), asyncio.Event()

    async def store_bytes() -> None:
        storing.set()
        await stored.wait()

    recording = asyncio.create_task(
        job_store.record_source(
            job.id,
            "w1",
            sha256=sha,
            size_bytes=5,
            content_type="text/html",
            store_bytes=store_bytes,
        )
    )
    await asyncio.wait_for(storing.wait(), timeout=10)

    async def decide() -> bool:
        async with job_store.bytes_unneeded(sha) as unneeded:
            return unneeded

    deciding = asyncio.create_task(decide())
    # Bounded: the decision waits for the lock (it takes milliseconds without one).
    await asyncio.wait({deciding}, timeout=0.5)
    assert not deciding.done()
    stored.set()
    assert await recording is True
    assert await deciding is False
    recorded = await job_store.get("carol", job.id)
    assert recorded is not None
    assert recorded.sha256 == sha


async def test_a_url_job_without_its_lease_records_nothing(job_store: SqlJobStore) -> None:
    job = await _leased_url_job(job_store)

    async def store_bytes() -> None:
        return None

    recorded = await job_store.record_source(
        job.id,
        "someone-else",
        sha256="6" * 64,
        size_bytes=5,
        content_type="text/html",
        store_bytes=store_bytes,
    )
    assert recorded is False
    current = await job_store.get("carol", job.id)
    assert current is not None
    assert current.sha256 is None


# The job state machine after extraction (adr/0010, 2026-12-06).


async def test_each_part_moves_the_stage_and_a_repeat_changes_nothing(
    job_store: SqlJobStore,
) -> None:
    job = await extracted_job(job_store)
    stored = await record(job_store, "alice", "doc1", "stored")
    assert stored is not None
    assert stored.changed
    assert (stored.job.status, stored.job.stage, stored.job.progress) == (
        JobStatus.PROCESSING,
        JobStage.EMBEDDING,
        80,
    )
    # Graph first, then embedding: the stage names the part still missing.
    graphed = await record(job_store, "alice", "doc1", "graphed")
    assert graphed is not None
    assert (graphed.job.stage, graphed.job.progress) == (JobStage.EMBEDDING, 90)
    again = await record(job_store, "alice", "doc1", "graphed")
    assert again is not None
    assert not again.changed
    assert again.job == graphed.job
    done = await record(job_store, "alice", "doc1", "embedded")
    assert done is not None
    assert (done.job.status, done.job.stage, done.job.progress) == (
        JobStatus.COMPLETED,
        JobStage.DONE,
        100,
    )
    assert not done.discarded
    # Redelivered acknowledgements of a completed job change nothing.
    late = await record(job_store, "alice", "doc1", "stored")
    assert late is not None
    assert not late.changed
    assert late.job.status is JobStatus.COMPLETED
    assert await outbox_types(job_store) == ["document.extracted"]
    assert job.id == done.job.id


async def test_a_failed_part_fails_the_job_and_discards_once_every_part_reported(
    job_store: SqlJobStore,
) -> None:
    job = await extracted_job(job_store)
    await record(job_store, "alice", "doc1", "stored")
    failed = await record(job_store, "alice", "doc1", "embedded", ok=False)
    assert failed is not None
    assert failed.job.status is JobStatus.FAILED
    assert failed.job.stage is JobStage.EMBEDDING
    assert failed.job.error == (
        "The document could not be indexed for search; nothing of it was kept. "
        "Try the upload again later."
    )
    assert failed.job.live_document_id is None
    # The graph service is still at work: removing the document now could race its write.
    assert not failed.discarded
    assert await outbox_types(job_store) == ["document.extracted"]
    graphed = await record(job_store, "alice", "doc1", "graphed")
    assert graphed is not None
    assert graphed.discarded
    assert graphed.job.status is JobStatus.FAILED
    assert await outbox_types(job_store) == ["document.extracted", "ingestion.job.failed"]
    # Repeats neither fail it again nor ask twice.
    for part, ok in (("graphed", True), ("embedded", False), ("stored", True)):
        repeat = await record(job_store, "alice", "doc1", part, ok=ok)
        assert repeat is not None
        assert not repeat.changed
    assert await outbox_types(job_store) == ["document.extracted", "ingestion.job.failed"]
    assert job.id == failed.job.id


async def test_a_document_that_could_not_be_stored_is_discarded_at_once(
    job_store: SqlJobStore,
) -> None:
    await extracted_job(job_store)
    failed = await record(job_store, "alice", "doc1", "stored", ok=False)
    assert failed is not None
    assert failed.job.status is JobStatus.FAILED
    assert failed.job.stage is JobStage.STORING
    assert failed.discarded  # nothing else will report: nothing was announced to them
    assert await outbox_types(job_store) == ["document.extracted", "ingestion.job.failed"]


async def test_parts_of_an_unknown_or_foreign_document_move_nothing(
    job_store: SqlJobStore,
) -> None:
    await extracted_job(job_store)
    assert await record(job_store, "alice", "nope", "stored") is None
    assert await record(job_store, "mallory", "doc1", "stored") is None


async def test_parts_reported_at_once_are_all_kept(job_store: SqlJobStore) -> None:
    await extracted_job(job_store)
    await asyncio.gather(
        *(record(job_store, "alice", "doc1", part) for part in ("stored", "embedded", "graphed"))
    )
    current = await job_store.get("alice", (await _only_job(job_store)).id)
    assert current is not None
    assert current.status is JobStatus.COMPLETED
    assert current.parts_done == frozenset({"stored", "embedded", "graphed"})


async def _only_job(store: SqlJobStore) -> IngestionJob:
    page = await store.list_jobs("alice", status=None, limit=10, after=None)
    assert len(page.items) == 1
    return page.items[0]


async def test_a_job_whose_parts_never_all_report_is_failed_and_discarded(
    job_store: SqlJobStore,
) -> None:
    job = await extracted_job(job_store)
    await record(job_store, "alice", "doc1", "stored")
    assert job.extracted_at is not None

    async def sweep(before: object) -> list[IngestionJob]:
        return await job_store.fail_stalled(
            now=utc_now(),
            extracted_before=before,  # type: ignore[arg-type]
            error="Indexing the document did not finish within 15 minutes.",
            limit=10,
            discard=lambda j: job_failed_event(j, source="test"),
        )

    assert await sweep(job.extracted_at - timedelta(seconds=1)) == []  # not yet due
    [failed] = await sweep(utc_now() + timedelta(seconds=1))
    assert failed.status is JobStatus.FAILED
    assert failed.error == "Indexing the document did not finish within 15 minutes."
    assert failed.parts_failed == frozenset({"embedded", "graphed"})
    assert await outbox_types(job_store) == ["document.extracted", "ingestion.job.failed"]
    # A late report, good or bad, changes nothing and asks for no second removal.
    for part, ok in (("embedded", True), ("graphed", False)):
        late = await record(job_store, "alice", "doc1", part, ok=ok)
        assert late is not None
        assert not late.changed
    assert await sweep(utc_now() + timedelta(seconds=1)) == []
    assert await outbox_types(job_store) == ["document.extracted", "ingestion.job.failed"]


# Fair turns between owners (issue 13).


async def _queued(store: SqlJobStore, owner: str, count: int) -> list[IngestionJob]:
    queued = []
    for _ in range(count):
        job = a_job(owner=owner)
        await store.create(job, None)
        queued.append(job)
        await asyncio.sleep(0.002)  # distinct queueing times, in order
    return queued


async def test_a_lighter_owners_waiting_job_takes_the_turn(job_store: SqlJobStore) -> None:
    now = utc_now()
    lease = now + timedelta(seconds=30)
    flood = await _queued(job_store, "alice", 6)
    # Alice's first two are being extracted.
    for job in flood[:2]:
        assert await job_store.claim_fairly(job.id, "w1", now=now, lease_until=lease) == (
            await job_store.get_any(job.id)
        )
    [single] = await _queued(job_store, "bob", 1)
    # The next turn is alice's third message, but bob (nothing in flight) goes first.
    taken = await job_store.claim_fairly(flood[2].id, "w1", now=now, lease_until=lease)
    assert taken is not None
    assert (taken.id, taken.owner_id, taken.status) == (single.id, "bob", JobStatus.PROCESSING)
    # Bob's own message comes later: his job is taken, so the turn goes to alice's oldest.
    after = await job_store.claim_fairly(single.id, "w1", now=now, lease_until=lease)
    assert after is not None
    assert after.id == flood[2].id
    # Every alice job is still taken up, one turn each.
    for job in flood[3:]:
        turn = await job_store.claim_fairly(job.id, "w1", now=now, lease_until=lease)
        assert turn is not None
        assert turn.owner_id == "alice"
    assert await job_store.claim_fairly(flood[0].id, "w1", now=now, lease_until=lease) is None
    page = await job_store.list_jobs("alice", status=JobStatus.PENDING, limit=10, after=None)
    assert page.items == []


async def test_equal_owners_keep_their_own_messages(job_store: SqlJobStore) -> None:
    now = utc_now()
    lease = now + timedelta(seconds=30)
    [alice] = await _queued(job_store, "alice", 1)
    [bob] = await _queued(job_store, "bob", 1)
    # Nobody is in flight: the message's own job is the turn.
    taken = await job_store.claim_fairly(bob.id, "w1", now=now, lease_until=lease)
    assert taken is not None
    assert taken.id == bob.id
    # Alice has none in flight, bob one: alice's message keeps hers.
    taken = await job_store.claim_fairly(alice.id, "w1", now=now, lease_until=lease)
    assert taken is not None
    assert taken.id == alice.id


async def test_concurrent_turns_leave_no_job_without_one(job_store: SqlJobStore) -> None:
    """Every job has one message, so as many turns taken at once as jobs wait take up every
    job: a turn whose choice another worker claimed at the same moment tries the next one
    rather than giving up (a job left without a turn waited for the sweeper, 2 minutes)."""
    now = utc_now()
    lease = now + timedelta(seconds=30)
    flood = await _queued(job_store, "ann", 12)
    for job in flood[:2]:  # ann is being served: her turns go to the others' jobs first
        assert await job_store.claim_fairly(job.id, "w0", now=now, lease_until=lease) is not None
    others = [job for owner in ("ben", "cat", "dan") for job in await _queued(job_store, owner, 3)]
    waiting = flood[2:] + others
    turns = await asyncio.gather(
        *(
            job_store.claim_fairly(job.id, f"w{n}", now=now, lease_until=lease)
            for n, job in enumerate(waiting)
        )
    )
    claimed = [turn.id for turn in turns if turn is not None]
    assert len(claimed) == len(set(claimed)), "no job is claimed twice"
    left = []
    for owner in ("ann", "ben", "cat", "dan"):
        page = await job_store.list_jobs(owner, status=JobStatus.PENDING, limit=20, after=None)
        left += [job.id for job in page.items]
    assert left == [], f"{len(left)} of {len(waiting)} jobs were left without a turn"


async def test_the_change_feed_lists_each_job_once_in_its_latest_state_in_change_order(
    job_store: SqlJobStore,
) -> None:
    base = utc_now() - timedelta(minutes=1)
    jobs = [a_job(created_at=base, updated_at=base + timedelta(seconds=n)) for n in range(3)]
    for job in jobs:
        await job_store.create(job, None)
    await job_store.create(a_job(owner="bob", updated_at=base), None)
    later = utc_now() + timedelta(seconds=5)
    changed = await job_store.changes("alice", after=None, settled_before=later, limit=10)
    assert [j.id for j in changed] == [j.id for j in jobs]

    # The first job fails now: it moves to the end, and a reader past the others sees it.
    await job_store.fail(jobs[0].id, None, "Broken.")
    cursor = ChangeCursor(changed_at=changed[-1].updated_at, job_id=changed[-1].id)
    after = await job_store.changes("alice", after=cursor, settled_before=later, limit=10)
    assert [(j.id, j.status) for j in after] == [(jobs[0].id, JobStatus.FAILED)]

    # Not yet settled: a change younger than the bound waits for the next read.
    assert await job_store.changes("alice", after=cursor, settled_before=base, limit=10) == []
    # A page is a page; ties on the change time are ordered by id.
    assert len(await job_store.changes("alice", after=None, settled_before=later, limit=2)) == 2


async def test_unfinished_jobs_are_counted_and_the_oldest_reported_in_the_metrics(
    job_store: SqlJobStore,
) -> None:
    """The gauges the stuck-job alerts watch, read from the jobs table (issue 15)."""
    now = utc_now()
    old = a_job(created_at=now - timedelta(minutes=30), updated_at=now - timedelta(minutes=30))
    await job_store.create(old, None)
    await job_store.create(a_job(), None)
    busy = a_job(created_at=now - timedelta(minutes=5), updated_at=now - timedelta(minutes=5))
    await job_store.create(busy, None)
    await job_store.claim(busy.id, "w1", now=now, lease_until=now + timedelta(seconds=30))
    await extracted_job(job_store, document_id="doc-finished")  # processing, just changed
    finished = await job_store.fail(busy.id, "w1", "it broke")
    assert finished is not None

    stats = await job_store.live_job_stats()
    assert stats[JobStatus.PENDING].count == 2
    assert stats[JobStatus.PROCESSING].count == 1
    assert abs((stats[JobStatus.PENDING].oldest_created_at - old.created_at).total_seconds()) < 1

    later = now + timedelta(minutes=1)
    await report_job_gauges(job_store, later)
    text = generate_latest(REGISTRY).decode()
    assert 'kglab_ingestion_jobs{status="pending"} 2.0' in text
    assert 'kglab_ingestion_jobs{status="processing"} 1.0' in text
    oldest = REGISTRY.get_sample_value("kglab_ingestion_oldest_pending_job_age_seconds")
    assert oldest is not None
    assert 30 * 60 < oldest < 32 * 60
    unchanged = REGISTRY.get_sample_value("kglab_ingestion_processing_job_unchanged_seconds_max")
    assert unchanged is not None
    assert 55 < unchanged < 120
