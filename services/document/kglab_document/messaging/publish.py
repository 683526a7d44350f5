"""What the document service tells the others: ``document.stored`` and ``document.deleted``.

Event ids are derived from the document id, so a republish after a crash carries the same id
and consumers that remember handled ids (``kglab_shared.bus.idempotency``) skip the repeat.

Publishing after a write: ``document.stored`` (and ``document.indexed``) answer an event, so the
incoming event is their outbox: a failed publish raises, the bus redelivers, the idempotent save
runs again and the publish is repeated. ``document.deleted`` answers a request: the store
records it as owed together with the deletion and :class:`DeletionRelay` publishes what is
owed until the bus confirms it (adr/0002, 2026-12-06).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from kglab_document.domain import Chunk, Document
from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentDeleted, DocumentStored, ExtractedChunk
from kglab_shared.logging import get_logger

_log = get_logger(__name__)


class DocumentEventPublisher:
    def __init__(self, bus: EventBus, source: str) -> None:
        self._bus = bus
        self._source = source

    async def stored(self, document: Document, chunks: Sequence[Chunk]) -> None:
        event = DocumentStored(
            document_id=document.id,
            owner_id=document.owner_id,
            title=document.title,
            media_type=document.media_type,
            chunks=[
                ExtractedChunk(
                    chunk_id=c.chunk_id, position=c.position, text=c.text, heading=c.heading
                )
                for c in sorted(chunks, key=lambda c: c.position)
            ],
        )
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document.id,
                event_id=f"{event.event_type}:{document.id}",
            )
        )

    async def deleted(self, document: Document) -> None:
        event = DocumentDeleted(document_id=document.id, owner_id=document.owner_id)
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document.id,
                event_id=f"{event.event_type}:{document.id}",
            )
        )


class DeletionRelay:
    """Publishes owed ``document.deleted`` events: at start, when told a publish failed
    (:meth:`notify`), and every ``poll_interval_s``; backs off while the bus refuses."""

    def __init__(
        self,
        announce: Callable[[], Awaitable[int]],
        *,
        poll_interval_s: float = 5.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._announce = announce
        self._poll_interval_s = poll_interval_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.consecutive_failures = 0

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kglab-deletion-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                announced = await self._announce()
            except Exception as exc:
                self.consecutive_failures += 1
                delay = min(
                    self._backoff_max_s,
                    self._backoff_base_s * 2 ** (self.consecutive_failures - 1),
                )
                _log.warning(
                    "deletion_relay_failed",
                    failures=self.consecutive_failures,
                    retry_in_s=round(delay, 3),
                    error=str(exc),
                )
                await asyncio.sleep(delay)
                continue
            self.consecutive_failures = 0
            if announced:
                _log.info("deletions_announced", count=announced)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
