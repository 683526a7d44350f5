"""The webhook store's contract, on SQLite (make dev) and PostgreSQL: changes become deliveries
exactly once (across a restart and concurrent dispatchers), due deliveries go to one sender at
a time, a lost claim cannot overwrite, and each user sees only their own endpoints."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from kglab_ingestion.domain import IngestionJob, JobStatus, utc_now
from kglab_ingestion.store.sql import SqlJobStore
from kglab_ingestion.webhooks.domain import (
    AttemptOutcome,
    DeliveryStatus,
    PageCursor,
    TooManyEndpointsError,
    WebhookEndpoint,
)
from kglab_ingestion.webhooks.schemas import render_event
from kglab_ingestion.webhooks.store_sql import SqlWebhookStore
from tests.contract.ingestion.test_job_store import a_job

OK = AttemptOutcome(status_code=204, error=None, duration_ms=3)
BROKEN = AttemptOutcome(status_code=500, error="The endpoint answered HTTP 500.", duration_ms=3)


def an_endpoint(owner: str = "alice", *events: str, at: datetime | None = None) -> WebhookEndpoint:
    moment = at or utc_now() - timedelta(minutes=5)
    return WebhookEndpoint(
        id=f"ep-{owner}-{moment.timestamp()}-{len(events)}",
        owner_id=owner,
        url="https://hooks.example.org/kglab",
        description=None,
        events=events or ("job.completed", "job.failed", "document.deleted"),
        enabled=True,
        created_at=moment,
        updated_at=moment,
    )


async def finished_job(
    jobs: SqlJobStore, owner: str = "alice", status: JobStatus = JobStatus.COMPLETED
) -> IngestionJob:
    moment = utc_now() - timedelta(seconds=10)
    job = a_job(owner, status=status, updated_at=moment, created_at=moment)
    return await jobs.create(job, None)


async def dispatch(store: SqlWebhookStore) -> int | None:
    return await store.dispatch_changes(settled_before=utc_now(), limit=100, render=render_event)


@pytest.fixture
def webhooks(job_store: SqlJobStore) -> SqlWebhookStore:
    return SqlWebhookStore(job_store.engine)


async def test_each_change_becomes_one_delivery_across_a_restart(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "sealed", limit=5)
    failures_only = await webhooks.create_endpoint(
        an_endpoint("alice", "job.failed"), "sealed", limit=5
    )
    await webhooks.create_endpoint(an_endpoint("bob"), "sealed", limit=5)
    done = await finished_job(job_store)
    failed = await finished_job(job_store, status=JobStatus.FAILED)
    assert await dispatch(webhooks) == 3  # done and failed to one endpoint, failed to the other

    # A restart (a new store on the same database) finds nothing new to send.
    restarted = SqlWebhookStore(job_store.engine)
    assert await dispatch(restarted) == 0
    page = await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=10, after=None)
    assert sorted(d.event_type for d in page.items) == ["job.completed", "job.failed"]
    assert {d.status for d in page.items} == {DeliveryStatus.PENDING}
    only = await webhooks.list_deliveries(
        "alice", failures_only.id, status=None, limit=10, after=None
    )
    assert [d.event_type for d in only.items] == ["job.failed"]
    bodies = {d.event_type: d.body for d in page.items}
    assert done.id in bodies["job.completed"]
    assert failed.id in bodies["job.failed"]


async def test_a_deleted_document_is_one_more_event(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "sealed", limit=5)
    moment = utc_now() - timedelta(seconds=10)
    job = await job_store.create(
        a_job(
            "alice",
            status=JobStatus.COMPLETED,
            document_id="doc1",
            updated_at=moment,
            created_at=moment,
        ),
        None,
    )
    assert await dispatch(webhooks) == 1
    await job_store.mark_document_deleted("alice", "doc1", at=utc_now())
    # document.deleted is new; job.completed (implied by the deleted job too) is not sent twice.
    assert await dispatch(webhooks) == 1
    page = await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=10, after=None)
    assert sorted(d.event_type for d in page.items) == ["document.deleted", "job.completed"]
    assert all(job.id in d.body for d in page.items)


async def test_an_endpoint_hears_only_of_changes_after_it_was_registered(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    await finished_job(job_store)
    await webhooks.create_endpoint(an_endpoint(at=utc_now()), "sealed", limit=5)
    assert await dispatch(webhooks) == 0


async def test_concurrent_dispatchers_make_each_delivery_once(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "sealed", limit=5)
    for _ in range(20):
        await finished_job(job_store)
    others = [SqlWebhookStore(job_store.engine) for _ in range(4)]
    made = await asyncio.gather(*(dispatch(store) for store in others))
    assert sum(m or 0 for m in made) == 20
    page = await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=100, after=None)
    assert len(page.items) == 20


async def test_due_deliveries_go_to_one_sender_and_a_lost_claim_cannot_write(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "sealed-now", limit=5)
    for _ in range(6):
        await finished_job(job_store)
    await dispatch(webhooks)
    now = utc_now()
    lease = now + timedelta(seconds=30)
    first, second = await asyncio.gather(
        webhooks.claim_due(now=now, lease_until=lease, limit=4),
        SqlWebhookStore(job_store.engine).claim_due(now=now, lease_until=lease, limit=4),
    )
    ids = [c.delivery.id for c in first + second]
    assert len(ids) == len(set(ids)) == 6
    assert {c.sealed_secrets for c in first + second} == {("sealed-now",)}
    # Nothing is due while the leases last.
    assert await webhooks.claim_due(now=now, lease_until=lease, limit=10) == []

    # A sender presumed dead: its lease ends, another takes the delivery over, and the first
    # one's late answer is not recorded.
    stale = (first + second)[0]
    later = lease + timedelta(seconds=1)
    [taken_over] = [
        c
        for c in await webhooks.claim_due(
            now=later, lease_until=later + timedelta(seconds=30), limit=10
        )
        if c.delivery.id == stale.delivery.id
    ]
    assert not await webhooks.record_attempt(
        stale.delivery.id, stale.claim_token, OK, at=later, next_attempt_at=None
    )
    retry_at = later + timedelta(seconds=60)
    assert await webhooks.record_attempt(
        taken_over.delivery.id, taken_over.claim_token, BROKEN, at=later, next_attempt_at=retry_at
    )
    pending = await webhooks.get_delivery("alice", endpoint.id, stale.delivery.id)
    assert pending is not None
    assert pending.status is DeliveryStatus.PENDING
    assert pending.next_attempt_at == retry_at
    assert [(a.number, a.status_code) for a in pending.attempts] == [(1, 500)]

    again = [
        c
        for c in await webhooks.claim_due(
            now=retry_at, lease_until=retry_at + timedelta(seconds=30), limit=10
        )
        if c.delivery.id == stale.delivery.id
    ]
    assert len(again) == 1
    assert await webhooks.record_attempt(
        stale.delivery.id, again[0].claim_token, BROKEN, at=retry_at, next_attempt_at=None
    )
    failed = await webhooks.get_delivery("alice", endpoint.id, stale.delivery.id)
    assert failed is not None
    assert failed.status is DeliveryStatus.FAILED
    assert failed.next_attempt_at is None
    assert failed.attempt_count == 2


async def test_a_disabled_endpoint_is_paused_its_deliveries_wait_unsent(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    """Disabling pauses: what happens meanwhile is recorded and sent once it is enabled again,
    however long it was off (not only what the late-commit recheck happens to look at)."""
    endpoint = await webhooks.create_endpoint(an_endpoint(), "sealed", limit=5)
    await finished_job(job_store)
    await dispatch(webhooks)
    await webhooks.update_endpoint("alice", endpoint.id, {"enabled": False}, now=utc_now())
    # A change after the cursor, long after the late-commit recheck could look back at it.
    moment = utc_now()
    await job_store.create(
        a_job(status=JobStatus.COMPLETED, updated_at=moment, created_at=moment), None
    )
    later = moment + timedelta(hours=1)
    made = await webhooks.dispatch_changes(settled_before=later, limit=100, render=render_event)
    assert made == 1
    assert (
        await webhooks.claim_due(now=later, lease_until=later + timedelta(seconds=30), limit=10)
        == []
    )
    await webhooks.update_endpoint("alice", endpoint.id, {"enabled": True}, now=later)
    assert (
        len(
            await webhooks.claim_due(now=later, lease_until=later + timedelta(seconds=30), limit=10)
        )
        == 2
    )


async def test_endpoints_are_per_user_limited_and_paged(webhooks: SqlWebhookStore) -> None:
    base = utc_now() - timedelta(minutes=10)
    made = [
        await webhooks.create_endpoint(
            an_endpoint("alice", at=base + timedelta(seconds=n)), "s", limit=3
        )
        for n in range(3)
    ]
    with pytest.raises(TooManyEndpointsError):
        await webhooks.create_endpoint(an_endpoint("alice"), "s", limit=3)
    await webhooks.create_endpoint(an_endpoint("bob"), "s", limit=3)
    first = await webhooks.list_endpoints("alice", limit=2, after=None)
    assert [e.id for e in first.items] == [made[2].id, made[1].id]
    assert first.next_cursor is not None
    rest = await webhooks.list_endpoints(
        "alice", limit=2, after=PageCursor.decode(first.next_cursor)
    )
    assert [e.id for e in rest.items] == [made[0].id]
    assert rest.next_cursor is None
    assert await webhooks.get_endpoint("bob", made[0].id) is None
    assert await webhooks.update_endpoint("bob", made[0].id, {"enabled": False}, now=base) is None
    assert not await webhooks.delete_endpoint("bob", made[0].id)
    assert await webhooks.delete_endpoint("alice", made[0].id)
    assert await webhooks.get_endpoint("alice", made[0].id) is None


async def test_rotation_keeps_the_old_secret_signing_until_the_overlap_ends(
    webhooks: SqlWebhookStore, job_store: SqlJobStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "old", limit=5)
    now = utc_now()
    rotated = await webhooks.rotate_secret(
        "alice", endpoint.id, "new", previous_until=now + timedelta(hours=1), now=now
    )
    assert rotated is not None
    assert rotated.previous_secret_expires_at == now + timedelta(hours=1)
    await finished_job(job_store)
    await dispatch(webhooks)
    [claimed] = await webhooks.claim_due(now=now, lease_until=now + timedelta(seconds=30), limit=5)
    assert claimed.sealed_secrets == ("new", "old")
    assert await webhooks.record_attempt(
        claimed.delivery.id, claimed.claim_token, BROKEN, at=now, next_attempt_at=now
    )
    after = now + timedelta(hours=2)
    [late] = await webhooks.claim_due(now=after, lease_until=after + timedelta(seconds=30), limit=5)
    assert late.sealed_secrets == ("new",)


async def test_a_replay_is_a_new_delivery_of_the_same_event(
    webhooks: SqlWebhookStore, job_store: SqlJobStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "s", limit=5)
    await finished_job(job_store)
    await dispatch(webhooks)
    [original] = (
        await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=5, after=None)
    ).items
    replayed = await webhooks.replay(original, "replay-1", now=utc_now())
    assert replayed.event_id == original.event_id
    assert replayed.body == original.body
    assert replayed.replay_of == original.id
    assert replayed.status is DeliveryStatus.PENDING
    # Replays do not collide with the original (or each other) on the one-per-event index.
    await webhooks.replay(original, "replay-2", now=utc_now())
    page = await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=5, after=None)
    assert len(page.items) == 3
    assert await webhooks.get_delivery("bob", endpoint.id, original.id) is None


async def test_a_change_committed_behind_the_cursor_is_still_delivered(
    job_store: SqlJobStore, webhooks: SqlWebhookStore
) -> None:
    endpoint = await webhooks.create_endpoint(an_endpoint(), "s", limit=5)
    assert await dispatch(webhooks) == 0  # the cursor is now at this moment
    # A slow transaction: its change was stamped 20 s ago but commits only now.
    await finished_job(job_store)
    assert await dispatch(webhooks) == 0  # without a recheck it is behind the cursor
    made = await webhooks.dispatch_changes(
        settled_before=utc_now(), limit=100, render=render_event, recheck=timedelta(seconds=60)
    )
    assert made == 1
    again = await webhooks.dispatch_changes(
        settled_before=utc_now(), limit=100, render=render_event, recheck=timedelta(seconds=60)
    )
    assert again == 0
    page = await webhooks.list_deliveries("alice", endpoint.id, status=None, limit=5, after=None)
    assert len(page.items) == 1
