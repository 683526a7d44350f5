"""Acknowledging a part of a document's indexing: ``document.indexed`` (adr/0010, 2026-12-06).

The document, vector and graph services each do one part of indexing a document (``stored``,
``embedded``, ``graphed``). When its part is done, a service says so; when its part failed for
good (the handler raised on the bus's last attempt), it says that instead and acknowledges the
event, so the job fails with a readable error rather than waiting behind a dead letter.
Ingestion completes a job only once every part of its document is done.

Publishing follows the consumer's write and precedes its ack: a publish that fails raises, the
bus redelivers the incoming event, the idempotent write is repeated and the acknowledgement is
published again (same event id, so ingestion's handling of a repeat changes nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from kglab_shared.bus.dispatch import current_delivery, describe_error
from kglab_shared.bus.port import EventBus
from kglab_shared.events import DocumentIndexed
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
T = TypeVar("T")


class IndexedPartPublisher:
    """Publishes ``document.indexed`` for one part, with ids derived from the document."""

    def __init__(self, bus: EventBus, *, part: str, source: str) -> None:
        self._bus = bus
        self.part = part
        self._source = source

    async def publish(self, owner_id: str, document_id: str, *, ok: bool) -> None:
        event = DocumentIndexed(document_id=document_id, owner_id=owner_id, part=self.part, ok=ok)
        outcome = "done" if ok else "failed"
        await self._bus.publish(
            event.envelope(
                source=self._source,
                subject=document_id,
                event_id=f"indexed:{self.part}:{outcome}:{document_id}",
            )
        )


async def report_part(
    publisher: IndexedPartPublisher, owner_id: str, document_id: str, work: Awaitable[T]
) -> T | None:
    """Run ``work`` (this service's part) and acknowledge it.

    Done: ``document.indexed`` with ``ok``. Raised before the last attempt: re-raised, so the
    bus retries. Raised on the last attempt: the failure is logged with its cause and
    announced (``ok`` False), and the event is acknowledged: the job fails and its partial
    document is removed, so replaying a dead letter could only bring half of it back.
    """
    try:
        result = await work
    except Exception as exc:
        if not current_delivery().is_last:
            raise
        _log.error(
            "document_part_failed",
            part=publisher.part,
            document_id=document_id,
            error=describe_error(exc),
            exc_info=exc,
        )
        await publisher.publish(owner_id, document_id, ok=False)
        return None
    await publisher.publish(owner_id, document_id, ok=True)
    return result
