"""Bus wrappers that inject faults, for the fault tests of each producer."""

from __future__ import annotations

from collections.abc import Sequence

from kglab_shared.bus.port import DeadLetter, EventBus, EventHandler, PublishError, RetryPolicy
from kglab_shared.events import EventEnvelope


class PublishFailsOnce:
    """A bus whose first publish of ``event_type`` is not confirmed, as when the broker is
    away (or the process crashed) just after the write."""

    def __init__(self, inner: EventBus, event_type: str = "document.stored") -> None:
        self.inner = inner
        self.event_type = event_type
        self.failed = False

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, event: EventEnvelope) -> None:
        if event.type == self.event_type and not self.failed:
            self.failed = True
            raise PublishError("The broker did not confirm the event.")
        await self.inner.publish(event)

    async def subscribe(
        self,
        group: str,
        patterns: Sequence[str],
        handler: EventHandler,
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 16,
    ) -> None:
        # Retry quickly so the test does not wait for the production backoff.
        await self.inner.subscribe(
            group, patterns, handler, retry=RetryPolicy(base_delay_s=0.05), prefetch=prefetch
        )

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(group, limit)

    async def replay_dead_letters(self, group: str) -> int:
        return await self.inner.replay_dead_letters(group)

    async def ping(self) -> None:
        await self.inner.ping()
