"""Job progress within one process (``make dev``): a queue per subscriber."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kglab_ingestion.domain import ProgressUpdate

#: Updates a slow subscriber may fall behind by; older ones are dropped (the final one is kept
#: because the socket re-reads the job's state when it ends).
_QUEUE_SIZE = 256


class InProcessProgressChannel:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[ProgressUpdate]]] = defaultdict(set)

    async def publish(self, update: ProgressUpdate) -> None:
        for queue in list(self._subscribers.get(update.job_id, ())):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(update)

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[ProgressUpdate]]:
        queue: asyncio.Queue[ProgressUpdate] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers[job_id].add(queue)

        async def updates() -> AsyncIterator[ProgressUpdate]:
            while True:
                yield await queue.get()

        try:
            yield updates()
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[job_id]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
