"""The webhook store on SQL (PostgreSQL via asyncpg, SQLite via aiosqlite), next to the jobs.

Changes become deliveries by a cursor over the jobs' ``updated_at`` (the same order the event
feed serves): one replica at a time holds the cursor row (``FOR UPDATE SKIP LOCKED``), and the
deliveries it makes commit with the cursor's new position, so a restart neither loses nor
repeats a change; a unique (endpoint, event) index makes a repeated change one delivery.
Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease: two replicas never send one
at once, and one whose sender died is sent again when its lease ends.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kglab_ingestion.domain import IngestionJob, JobStatus, as_utc, event_type
from kglab_ingestion.store.sql import _job as job_from_row
from kglab_ingestion.store.tables import (
    jobs,
    webhook_attempts,
    webhook_cursor,
    webhook_deliveries,
    webhook_endpoints,
)
from kglab_ingestion.webhooks.domain import (
    AttemptOutcome,
    ClaimedDelivery,
    DeliveryAttempt,
    DeliveryStatus,
    PageCursor,
    TooManyEndpointsError,
    WebhookDelivery,
    WebhookEndpoint,
    event_id,
)
from kglab_ingestion.webhooks.port import RenderEvent
from kglab_shared.pages import Page

_CURSOR = "changes"
#: Most recent changes looked at again per dispatch for a late commit.
_RECHECK_LIMIT = 500


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        owner_id=row.owner_id,
        url=row.url,
        description=row.description,
        events=tuple(row.events),
        enabled=bool(row.enabled),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        previous_secret_expires_at=_opt_utc(row.previous_secret_expires_at),
    )


def _delivery(row: Any, attempts: Sequence[DeliveryAttempt] = ()) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        owner_id=row.owner_id,
        event_id=row.event_id,
        event_type=row.event_type,
        body=row.body,
        status=DeliveryStatus(row.status),
        attempt_count=row.attempt_count,
        next_attempt_at=_opt_utc(row.next_attempt_at),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        replay_of=row.replay_of,
        attempts=tuple(attempts),
    )


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        number=row.number,
        at=as_utc(row.at),
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
    )


def _newest_first_after(table: Any, after: PageCursor | None) -> Any:
    if after is None:
        return True
    return or_(
        table.c.created_at < after.created_at,
        and_(table.c.created_at == after.created_at, table.c.id < after.item_id),
    )


def _owner_lock_key(owner_id: str) -> int:
    """The advisory lock that counts one owner's endpoints: 64 bits of a hash of the owner."""
    digest = hashlib.sha256(f"webhook-endpoints:{owner_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _events_of(job: IngestionJob) -> list[str]:
    """The events a job's latest state stands for. A completed job whose document was deleted
    before the dispatcher saw it completed also stands for ``job.completed`` (the unique
    index keeps an already delivered one from going twice)."""
    latest = event_type(job)
    if latest == "document.deleted" and job.status is JobStatus.COMPLETED:
        return ["job.completed", latest]
    return [latest]


class SqlWebhookStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    def _insert_ignoring_duplicates(self, table: Any) -> Any:
        if self.is_postgres:
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # --- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(
        self, endpoint: WebhookEndpoint, sealed_secret: str, *, limit: int
    ) -> WebhookEndpoint:
        async with self._transaction() as connection:
            if self.is_postgres:
                # Two creations at once by one owner count one after the other.
                key = _owner_lock_key(endpoint.owner_id)
                await connection.execute(select(func.pg_advisory_xact_lock(key)))
            count = (
                await connection.execute(
                    select(func.count()).where(webhook_endpoints.c.owner_id == endpoint.owner_id)
                )
            ).scalar_one()
            if count >= limit:
                raise TooManyEndpointsError(limit)
            await connection.execute(
                insert(webhook_endpoints).values(
                    id=endpoint.id,
                    owner_id=endpoint.owner_id,
                    url=endpoint.url,
                    description=endpoint.description,
                    events=list(endpoint.events),
                    enabled=endpoint.enabled,
                    secret_sealed=sealed_secret,
                    created_at=endpoint.created_at,
                    updated_at=endpoint.updated_at,
                )
            )
        return endpoint

    async def get_endpoint(self, owner_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        query = select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.owner_id == owner_id
        )
        async with self._single.connect() as connection:
            row = (await connection.execute(query)).first()
        return _endpoint(row) if row else None

    async def list_endpoints(
        self, owner_id: str, *, limit: int, after: PageCursor | None
    ) -> Page[WebhookEndpoint]:
        query = (
            select(webhook_endpoints)
            .where(
                webhook_endpoints.c.owner_id == owner_id,
                _newest_first_after(webhook_endpoints, after),
            )
            .order_by(webhook_endpoints.c.created_at.desc(), webhook_endpoints.c.id.desc())
            .limit(limit + 1)
        )
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()
        items = [_endpoint(row) for row in rows[:limit]]
        cursor = None
        if len(rows) > limit:
            cursor = PageCursor(items[-1].created_at, items[-1].id).encode()
        return Page(items=items, next_cursor=cursor)

    async def update_endpoint(
        self, owner_id: str, endpoint_id: str, values: dict[str, Any], *, now: datetime
    ) -> WebhookEndpoint | None:
        if "events" in values:
            values = {**values, "events": list(values["events"])}
        async with self._single.connect() as connection:
            row = (
                await connection.execute(
                    update(webhook_endpoints)
                    .where(
                        webhook_endpoints.c.id == endpoint_id,
                        webhook_endpoints.c.owner_id == owner_id,
                    )
                    .values(**values, updated_at=now)
                    .returning(*webhook_endpoints.c)
                )
            ).first()
        return _endpoint(row) if row else None

    async def delete_endpoint(self, owner_id: str, endpoint_id: str) -> bool:
        async with self._transaction() as connection:
            result = await connection.execute(
                delete(webhook_endpoints).where(
                    webhook_endpoints.c.id == endpoint_id,
                    webhook_endpoints.c.owner_id == owner_id,
                )
            )
            if result.rowcount != 1:
                return False
            ids = select(webhook_deliveries.c.id).where(
                webhook_deliveries.c.endpoint_id == endpoint_id
            )
            await connection.execute(
                delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids))
            )
            await connection.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            )
        return True

    async def rotate_secret(
        self,
        owner_id: str,
        endpoint_id: str,
        sealed_secret: str,
        *,
        previous_until: datetime,
        now: datetime,
    ) -> WebhookEndpoint | None:
        async with self._single.connect() as connection:
            row = (
                await connection.execute(
                    update(webhook_endpoints)
                    .where(
                        webhook_endpoints.c.id == endpoint_id,
                        webhook_endpoints.c.owner_id == owner_id,
                    )
                    .values(
                        previous_secret_sealed=webhook_endpoints.c.secret_sealed,
                        previous_secret_expires_at=previous_until,
                        secret_sealed=sealed_secret,
                        updated_at=now,
                    )
                    .returning(*webhook_endpoints.c)
                )
            ).first()
        return _endpoint(row) if row else None

    # --- deliveries --------------------------------------------------------------------------

    async def _attempts_of(
        self, connection: AsyncConnection, delivery_ids: list[str]
    ) -> dict[str, list[DeliveryAttempt]]:
        found: dict[str, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return found
        rows = (
            await connection.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
                .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.number)
            )
        ).all()
        for row in rows:
            found[row.delivery_id].append(_attempt(row))
        return found

    async def list_deliveries(
        self,
        owner_id: str,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> Page[WebhookDelivery]:
        query = select(webhook_deliveries).where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.owner_id == owner_id,
            _newest_first_after(webhook_deliveries, after),
        )
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status.value)
        query = query.order_by(
            webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc()
        ).limit(limit + 1)
        async with self._single.connect() as connection:
            rows = (await connection.execute(query)).all()[: limit + 1]
            attempts = await self._attempts_of(connection, [row.id for row in rows[:limit]])
        items = [_delivery(row, attempts[row.id]) for row in rows[:limit]]
        cursor = None
        if len(rows) > limit:
            cursor = PageCursor(items[-1].created_at, items[-1].id).encode()
        return Page(items=items, next_cursor=cursor)

    async def get_delivery(
        self, owner_id: str, endpoint_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        query = select(webhook_deliveries).where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.owner_id == owner_id,
        )
        async with self._single.connect() as connection:
            row = (await connection.execute(query)).first()
            if row is None:
                return None
            attempts = await self._attempts_of(connection, [row.id])
        return _delivery(row, attempts[row.id])

    async def replay(
        self, original: WebhookDelivery, new_id: str, *, now: datetime
    ) -> WebhookDelivery:
        values = {
            "id": new_id,
            "endpoint_id": original.endpoint_id,
            "owner_id": original.owner_id,
            "event_id": original.event_id,
            "event_type": original.event_type,
            "dedupe_key": new_id,
            "body": original.body,
            "status": DeliveryStatus.PENDING.value,
            "attempt_count": 0,
            "next_attempt_at": now,
            "claim_token": None,
            "replay_of": original.id,
            "created_at": now,
            "updated_at": now,
        }
        async with self._single.connect() as connection:
            row = (
                await connection.execute(
                    insert(webhook_deliveries).values(values).returning(*webhook_deliveries.c)
                )
            ).one()
        return _delivery(row)

    async def dispatch_changes(
        self,
        *,
        settled_before: datetime,
        limit: int,
        render: RenderEvent,
        recheck: timedelta = timedelta(0),
    ) -> int | None:
        async with self._transaction() as connection:
            lock = select(webhook_cursor).where(webhook_cursor.c.name == _CURSOR)
            if self.is_postgres:
                lock = lock.with_for_update(skip_locked=True)
            cursor = (await connection.execute(lock)).first()
            if cursor is None:
                return None  # another replica is dispatching
            # Disabled endpoints too: their deliveries are made and wait, unsent, until the
            # endpoint is enabled again (a pause), however long it was off.
            subscribed = select(webhook_endpoints.c.owner_id)
            query = select(jobs).where(
                jobs.c.updated_at < settled_before, jobs.c.owner_id.in_(subscribed)
            )
            seen = None
            if cursor.changed_at is not None:
                after = as_utc(cursor.changed_at)
                seen = or_(
                    jobs.c.updated_at < after,
                    and_(jobs.c.updated_at == after, jobs.c.id <= cursor.job_id),
                )
                query = query.where(~seen)
            query = query.order_by(jobs.c.updated_at, jobs.c.id).limit(limit)
            changed = [job_from_row(row) for row in (await connection.execute(query)).all()]
            made = await self._deliveries_for(connection, changed, render)
            if seen is not None and recheck > timedelta(0):
                # A change stamped before the cursor but committed after it was read (a slow
                # transaction): looked for again for a while; the unique index keeps the
                # changes already made from being made twice.
                late = (
                    select(jobs)
                    .where(
                        seen,
                        jobs.c.updated_at >= as_utc(cursor.changed_at) - recheck,
                        jobs.c.owner_id.in_(subscribed),
                    )
                    .order_by(jobs.c.updated_at.desc())
                    .limit(_RECHECK_LIMIT)
                )
                again = [job_from_row(row) for row in (await connection.execute(late)).all()]
                made += await self._deliveries_for(connection, again, render)
            if len(changed) == limit:
                position = {"changed_at": changed[-1].updated_at, "job_id": changed[-1].id}
            else:
                # Everything before settled_before has been seen: later scans start there.
                position = {"changed_at": settled_before, "job_id": ""}
            await connection.execute(
                update(webhook_cursor).where(webhook_cursor.c.name == _CURSOR).values(**position)
            )
        return made

    async def _deliveries_for(
        self, connection: AsyncConnection, changed: list[IngestionJob], render: RenderEvent
    ) -> int:
        if not changed:
            return 0
        owners = sorted({job.owner_id for job in changed})
        rows = (
            await connection.execute(
                select(
                    webhook_endpoints.c.id,
                    webhook_endpoints.c.owner_id,
                    webhook_endpoints.c.events,
                    webhook_endpoints.c.created_at,
                ).where(webhook_endpoints.c.owner_id.in_(owners))
            )
        ).all()
        endpoints: dict[str, list[Any]] = {}
        for row in rows:
            endpoints.setdefault(row.owner_id, []).append(row)
        if not endpoints:
            return 0
        events = {event_id(kind, job.id) for job in changed for kind in _events_of(job)}
        made = {
            (row.endpoint_id, row.dedupe_key)
            for row in (
                await connection.execute(
                    select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.dedupe_key).where(
                        webhook_deliveries.c.dedupe_key.in_(events),
                        webhook_deliveries.c.owner_id.in_(owners),
                    )
                )
            ).all()
        }
        values: list[dict[str, Any]] = []
        for job in changed:
            for kind in _events_of(job):
                evt = event_id(kind, job.id)
                body: str | None = None
                # When it happened: a completion seen only with the later deletion happened
                # when the job finished.
                happened = job.updated_at
                if kind == "job.completed" and job.finished_at is not None:
                    happened = job.finished_at
                for endpoint in endpoints.get(job.owner_id, []):
                    # An endpoint hears of what happened after it was registered, once.
                    if (
                        kind not in endpoint.events
                        or happened < as_utc(endpoint.created_at)
                        or (endpoint.id, evt) in made
                    ):
                        continue
                    body = body or render(job, kind, evt)
                    values.append(
                        {
                            "id": secrets.token_hex(16),
                            "endpoint_id": endpoint.id,
                            "owner_id": job.owner_id,
                            "event_id": evt,
                            "event_type": kind,
                            "dedupe_key": evt,
                            "body": body,
                            "status": DeliveryStatus.PENDING.value,
                            "attempt_count": 0,
                            "next_attempt_at": job.updated_at,
                            "claim_token": None,
                            "replay_of": None,
                            "created_at": job.updated_at,
                            "updated_at": job.updated_at,
                        }
                    )
        if not values:
            return 0
        # One multi-row INSERT; RETURNING counts the rows made (an executemany's rowcount is
        # not reliable on asyncpg), and a change already delivered is skipped by the index.
        statement = (
            self._insert_ignoring_duplicates(webhook_deliveries)
            .values(values)
            .returning(webhook_deliveries.c.id)
        )
        return len((await connection.execute(statement)).all())

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        due = (
            select(webhook_deliveries.c.id)
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
            .where(
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                webhook_deliveries.c.next_attempt_at <= now,
                webhook_endpoints.c.enabled,
            )
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if self.is_postgres:
            due = due.with_for_update(skip_locked=True, of=webhook_deliveries)
        token = secrets.token_hex(16)
        async with self._transaction() as connection:
            claimed = (
                await connection.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id.in_(due.scalar_subquery()))
                    .values(claim_token=token, next_attempt_at=lease_until)
                    .returning(*webhook_deliveries.c)
                )
            ).all()
            if not claimed:
                return []
            endpoint_rows = (
                await connection.execute(
                    select(
                        webhook_endpoints.c.id,
                        webhook_endpoints.c.url,
                        webhook_endpoints.c.secret_sealed,
                        webhook_endpoints.c.previous_secret_sealed,
                        webhook_endpoints.c.previous_secret_expires_at,
                    ).where(webhook_endpoints.c.id.in_({row.endpoint_id for row in claimed}))
                )
            ).all()
        by_id = {row.id: row for row in endpoint_rows}
        found: list[ClaimedDelivery] = []
        for row in claimed:
            endpoint = by_id[row.endpoint_id]
            sealed = [endpoint.secret_sealed]
            until = _opt_utc(endpoint.previous_secret_expires_at)
            if endpoint.previous_secret_sealed and until is not None and until > now:
                sealed.append(endpoint.previous_secret_sealed)
            found.append(
                ClaimedDelivery(
                    delivery=_delivery(row),
                    url=endpoint.url,
                    sealed_secrets=tuple(sealed),
                    claim_token=token,
                )
            )
        return found

    async def record_attempt(
        self,
        delivery_id: str,
        claim_token: str,
        outcome: AttemptOutcome,
        *,
        at: datetime,
        next_attempt_at: datetime | None,
    ) -> bool:
        if outcome.succeeded:
            status = DeliveryStatus.SUCCEEDED
        elif next_attempt_at is None:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
        async with self._transaction() as connection:
            row = (
                await connection.execute(
                    update(webhook_deliveries)
                    .where(
                        webhook_deliveries.c.id == delivery_id,
                        webhook_deliveries.c.claim_token == claim_token,
                    )
                    .values(
                        status=status.value,
                        attempt_count=webhook_deliveries.c.attempt_count + 1,
                        next_attempt_at=None
                        if status is not DeliveryStatus.PENDING
                        else next_attempt_at,
                        claim_token=None,
                        updated_at=at,
                    )
                    .returning(webhook_deliveries.c.attempt_count)
                )
            ).first()
            if row is None:
                return False
            await connection.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery_id,
                    number=row.attempt_count,
                    at=at,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
            )
        return True
