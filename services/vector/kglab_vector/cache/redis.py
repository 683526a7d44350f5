"""The Redis search cache: one generation counter per owner, answers with a TTL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


class RedisSearchCache:
    name = "redis"

    def __init__(self, redis: Redis, *, prefix: str = "kglab:search:", ttl_s: int = 300) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _generation_key(self, owner_id: str) -> str:
        return f"{self._prefix}gen:{owner_id}"

    def _entry_key(self, owner_id: str, generation: int, key: str) -> str:
        return f"{self._prefix}answer:{owner_id}:{generation}:{key}"

    async def generation(self, owner_id: str) -> int:
        value = await self._redis.get(self._generation_key(owner_id))
        return int(value) if value is not None else 0

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        value: bytes | str | None = await self._redis.get(
            self._entry_key(owner_id, generation, key)
        )
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else value

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> None:
        await self._redis.set(self._entry_key(owner_id, generation, key), value, ex=self._ttl_s)

    async def invalidate(self, owner_id: str) -> None:
        await self._redis.incr(self._generation_key(owner_id))

    async def ping(self) -> None:
        await self._redis.ping()
