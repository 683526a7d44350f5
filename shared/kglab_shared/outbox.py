"""Transactional outbox: an event is published if and only if the write that caused it commits.

A service writes its rows and the event in one transaction::

    async with session.begin():
        session.add(job)
        await add_to_outbox(session, event, notify=relay.notify)

and an :class:`OutboxRelay` publishes committed, unsent rows in creation order, marking each as
published once the bus has confirmed it. A relay that dies between the confirm and the mark
publishes the row again after restart: delivery is at-least-once and consumers are idempotent
(:mod:`kglab_shared.bus.idempotency`), but nothing committed is lost and nothing rolled back is
sent.

On PostgreSQL the relay locks the rows it works on with ``FOR UPDATE SKIP LOCKED``, so several
relays (one per replica) share the table without sending a row twice in normal operation. On
SQLite (``make dev``, one process) it reads plainly: run one relay per database there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kglab_shared.bus.dispatch import describe_error, prepare_for_publish
from kglab_shared.bus.port import EventBus, PublishError
from kglab_shared.events import EventEnvelope
from kglab_shared.logging import get_logger

_log = get_logger(__name__)

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's auto-incrementing rowid; BIGINT identity elsewhere.
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("event", JSON(), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("last_error", Text(), nullable=True),
)

# The relay only ever reads unsent rows; a partial index keeps that read small.
Index(
    "ix_outbox_unpublished",
    outbox.c.id,
    postgresql_where=outbox.c.published_at.is_(None),
    sqlite_where=outbox.c.published_at.is_(None),
)


async def create_outbox_table(engine: AsyncEngine) -> None:
    """Create the ``outbox`` table if missing (services with migrations include it there)."""
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all, tables=[outbox])


async def add_to_outbox(
    session: AsyncSession,
    envelope: EventEnvelope,
    *,
    notify: Callable[[], None] | None = None,
) -> None:
    """Stage ``envelope`` in the caller's transaction; it is sent only if that commits.

    ``notify`` (usually ``relay.notify``) is called after the session commits, so the relay
    publishes at once instead of at its next poll.
    """
    envelope = prepare_for_publish(envelope)
    await session.execute(
        outbox.insert().values(
            event_id=envelope.id,
            event_type=envelope.type,
            event=envelope.model_dump(mode="json"),
            created_at=datetime.now(UTC),
            attempts=0,
        )
    )
    if notify is not None:

        def after_commit(_session: Any) -> None:
            notify()

        event.listen(session.sync_session, "after_commit", after_commit, once=True)


async def _publish_in_order(bus: EventBus, envelopes: list[EventEnvelope]) -> int:
    """Publish with the bus's batch call; a wrapper without one publishes event by event."""
    if not envelopes:
        return 0
    publish_many = getattr(bus, "publish_many", None)
    if publish_many is not None:
        await publish_many(envelopes)
        return len(envelopes)
    for sent, envelope in enumerate(envelopes):
        try:
            await bus.publish(envelope)
        except PublishError as exc:
            raise PublishError(str(exc), confirmed=sent) from exc
    return len(envelopes)


class RelayLoop:
    """The one way a service sends what it owes after a write: a background task that calls
    ``run_once`` at start, when told to (:meth:`notify`), and every ``poll_interval_s``; backs
    off exponentially while it fails (only :meth:`stop` cuts a backoff short: a notify must not
    hammer a broker that is down); goes again at once after a full batch."""

    def __init__(
        self,
        run_once: Callable[[], Awaitable[int]],
        *,
        name: str,
        batch_size: int | None = None,
        poll_interval_s: float = 1.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._run_once = run_once
        self._name = name
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.consecutive_failures = 0

    def notify(self) -> None:
        """Run now rather than at the next poll (call after a commit that owes something)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopped.clear()
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the round in progress (up to ``timeout``), then stop; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopped.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            # A transaction in progress rolls back; what it owed stays owed for the next run.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                done = await self._run_once()
            except Exception as exc:
                self.consecutive_failures += 1
                delay = min(
                    self._backoff_max_s,
                    self._backoff_base_s * 2 ** (self.consecutive_failures - 1),
                )
                _log.warning(
                    "relay_failed",
                    relay=self._name,
                    failures=self.consecutive_failures,
                    retry_in_s=round(delay, 3),
                    error=describe_error(exc),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                continue
            self.consecutive_failures = 0
            if self._batch_size is not None and done >= self._batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)


class OutboxRelay(RelayLoop):
    """Publishes committed outbox rows in order; a background task with :meth:`start`."""

    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        *,
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        super().__init__(
            self.run_once,
            name="kglab-outbox-relay",
            batch_size=batch_size,
            poll_interval_s=poll_interval_s,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
        )
        self._engine = engine
        self._bus = bus
        self._rows = batch_size

    async def run_once(self) -> int:
        """Publish one batch of unsent rows, oldest first; return how many were published.

        The batch goes to the bus with ``publish_many`` (confirms in flight together). Stops at
        the first row the bus does not confirm (later rows wait, to keep the order), records
        the error on that row and raises :class:`PublishError`. Rows after it that the broker
        did accept are sent again later (at-least-once).
        """
        now = datetime.now(UTC)
        published: list[int] = []
        failure: Exception | None = None
        async with self._engine.begin() as connection:
            query = (
                select(outbox.c.id, outbox.c.event, outbox.c.attempts)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._rows)
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await connection.execute(query)).all()
            envelopes: list[EventEnvelope] = []
            for row in rows:
                try:
                    envelopes.append(EventEnvelope.model_validate(row.event))
                except Exception as exc:  # a row that is no envelope stops the batch here
                    failure = exc
                    break
            sent = 0
            try:
                sent = await _publish_in_order(self._bus, envelopes)
            except Exception as exc:
                confirmed = exc.confirmed if isinstance(exc, PublishError) else 0
                sent = max(0, min(confirmed, len(envelopes) - 1))
                failure = exc
            published = [row.id for row in rows[:sent]]
            if failure is not None:
                stuck = rows[sent]
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id == stuck.id)
                    .values(attempts=stuck.attempts + 1, last_error=describe_error(failure))
                )
            if published:
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(published_at=now, attempts=outbox.c.attempts + 1, last_error=None)
                )
        if failure is not None:
            raise PublishError(
                f"The outbox relay published {len(published)} event(s) and then stopped: "
                f"{describe_error(failure)}"
            ) from failure
        return len(published)

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete rows published more than ``older_than`` ago; return how many."""
        cutoff = datetime.now(UTC) - older_than
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)
