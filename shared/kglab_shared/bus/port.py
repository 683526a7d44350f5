"""The ``EventBus`` port: what every service may ask of the message bus.

Delivery is at-least-once. A handler that returns normally acknowledges the event; a handler
that raises has it redelivered after a backoff (``RetryPolicy``); after the last attempt the
event is parked in the group's dead-letter queue, where it can be inspected and replayed.
Handlers must therefore be idempotent (see :mod:`kglab_shared.bus.idempotency`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kglab_shared.events import EventEnvelope

EventHandler = Callable[[EventEnvelope], Awaitable[None]]


class PublishError(RuntimeError):
    """The broker did not confirm the event; the caller must treat it as not sent.

    From :meth:`EventBus.publish_many`, ``confirmed`` says how many of the leading events were
    confirmed (a contiguous prefix); every later one must be treated as not sent, although the
    broker may have accepted some of them (sending them again is safe: consumers are idempotent).
    """

    def __init__(self, message: str, *, confirmed: int = 0) -> None:
        super().__init__(message)
        self.confirmed = confirmed


class RetryLater(Exception):
    """A handler's expected "not now": redelivered like any failure, but logged as one line
    with the reason, not a traceback (the handler has said what happened)."""


def failure_log_fields(exc: BaseException) -> dict[str, object]:
    """What the adapters log about a handler's failure: the reason alone for an expected
    retry, the traceback for anything else."""
    if isinstance(exc, RetryLater):
        return {"error": str(exc)}
    return {"exc_info": exc}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.5
    factor: float = 4.0

    def delay_after(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (attempts count from 1)."""
        return self.base_delay_s * self.factor ** (attempt - 1)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    envelope: EventEnvelope
    group: str
    attempts: int
    error: str
    dead_at: datetime


class EventBus(Protocol):
    async def start(self) -> None:
        """Connect and declare the topology; idempotent."""

    async def close(self) -> None:
        """Stop consumers (in-flight handlers finish or are redelivered) and disconnect."""

    async def publish(self, event: EventEnvelope) -> None:
        """Return once the broker has accepted the event durably, else raise PublishError."""

    async def publish_many(self, events: Sequence[EventEnvelope]) -> None:
        """Publish ``events`` in order, many confirms in flight at once; return once every one
        was accepted durably, else raise PublishError whose ``confirmed`` counts the leading
        events that were. Cheaper per event than calling :meth:`publish` in turn."""

    async def subscribe(
        self,
        group: str,
        patterns: Sequence[str],
        handler: EventHandler,
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 16,
    ) -> None:
        """Deliver every event whose type matches a pattern to one member of ``group``."""

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        """The events parked for ``group``, oldest first, without removing them."""

    async def replay_dead_letters(self, group: str) -> int:
        """Send every parked event of ``group`` back to it; return how many."""

    async def ping(self) -> None:
        """Raise if the bus cannot be used (for /ready)."""
