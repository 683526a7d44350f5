"""Job progress over Redis pub/sub: one channel per job, so any replica serving a job's
WebSocket hears the updates of whichever worker runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from kglab_ingestion.domain import ProgressUpdate
from kglab_shared.logging import get_logger

_log = get_logger(__name__)


class RedisProgressChannel:
    def __init__(self, redis: Redis, *, prefix: str = "kglab:jobs:") -> None:
        self._redis = redis
        self._prefix = prefix

    def channel(self, job_id: str) -> str:
        return f"{self._prefix}{job_id}:progress"

    async def publish(self, update: ProgressUpdate) -> None:
        await self._redis.publish(self.channel(update.job_id), update.to_json())

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[ProgressUpdate]]:
        pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel(job_id))

        async def updates() -> AsyncIterator[ProgressUpdate]:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    yield ProgressUpdate.from_json(message["data"])
                except (ValueError, KeyError) as exc:
                    _log.warning("progress_message_invalid", job_id=job_id, error=str(exc))

        try:
            yield updates()
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
