"""The Redis search cache: a generation per owner, answers with a TTL, hot queries per owner.

Keys of one owner share a hash tag (``{owner}``), so each script touches one slot:

* ``…{owner}:gen``: the owner's generation, a number never used before: Redis' clock in
  microseconds when it is created or moved on (or the old value plus one if the clock is behind).
  Its TTL is renewed whenever an answer is stored, so it outlives its answers; losing it anyway
  (expiry, eviction) only starts a new generation: an empty cache, never an old answer.
* ``…{owner}:a:<generation>:<query key>``: one answer, written only while its generation is
  current (checked in the same script), expiring after ``ttl_s``.
* ``…{owner}:hot`` (sorted set, query key -> uses) and ``…{owner}:hotq`` (hash, query key ->
  its description): at most ``hot_tracked`` queries (the least used are dropped on insert,
  never the one being counted),
  aged by ``decay`` at every change, expiring after ``hot_ttl_s`` without a search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kglab_vector.cache.port import DEFAULT_DECAY, FORGET_BELOW, HotQuery

if TYPE_CHECKING:
    from redis.asyncio import Redis

_NOW_US = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

#: KEYS: gen; ARGV: gen TTL. The current generation, created if missing.
_GENERATION = (
    """
local g = redis.call('GET', KEYS[1])
if g then return g end
"""
    + _NOW_US
    + """
g = string.format('%.0f', now)
redis.call('SET', KEYS[1], g, 'EX', ARGV[1])
return g
"""
)

#: KEYS: gen; ARGV: gen TTL. Moves to a generation above both the old one and the clock.
_INVALIDATE = (
    _NOW_US
    + """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local g = string.format('%.0f', math.max(old + 1, now))
redis.call('SET', KEYS[1], g, 'EX', ARGV[1])
return g
"""
)

#: KEYS: gen, answer; ARGV: generation, value, answer TTL, gen TTL.
_PUT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

#: KEYS: hot, hotq; ARGV: query key, description, tracked, hot TTL.
_RECORD = """
redis.call('ZINCRBY', KEYS[1], 1, ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess > 0 then
  -- The least used go, but never the query just counted: a new one gets a chance to climb.
  local gone = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess)) do
    if member ~= ARGV[1] and #gone < excess then gone[#gone + 1] = member end
  end
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(gone))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

#: KEYS: hot, hotq; ARGV: limit, min score, decay, forget below, hot TTL.
#: Returns key, score, description triples, most used first; then ages every count.
_HOT = """
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[2], 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i = 1, #top, 2 do
  local description = redis.call('HGET', KEYS[2], top[i])
  if description then
    out[#out + 1] = top[i]
    out[#out + 1] = top[i + 1]
    out[#out + 1] = description
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', ARGV[3])
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
    redis.call('HDEL', KEYS[2], unpack(gone))
  end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return out
"""


class RedisSearchCache:
    name = "redis"

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "kglab:search:",
        ttl_s: int = 300,
        hot_tracked: int = 512,
        hot_ttl_s: int = 86_400,
        decay: float = DEFAULT_DECAY,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._hot_tracked = hot_tracked
        self._hot_ttl_s = hot_ttl_s
        self._decay = decay
        self._generation = redis.register_script(_GENERATION)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._put = redis.register_script(_PUT)
        self._record = redis.register_script(_RECORD)
        self._hot = redis.register_script(_HOT)

    def _owner(self, owner_id: str) -> str:
        return f"{self._prefix}{{{owner_id}}}:"

    def _generation_key(self, owner_id: str) -> str:
        return f"{self._owner(owner_id)}gen"

    def _entry_key(self, owner_id: str, generation: int, key: str) -> str:
        return f"{self._owner(owner_id)}a:{generation}:{key}"

    def _hot_keys(self, owner_id: str) -> list[str]:
        return [f"{self._owner(owner_id)}hot", f"{self._owner(owner_id)}hotq"]

    async def generation(self, owner_id: str) -> int:
        value = await self._generation(keys=[self._generation_key(owner_id)], args=[self._ttl_s])
        return int(value)

    async def get(self, owner_id: str, generation: int, key: str) -> bytes | None:
        return _bytes(await self._redis.get(self._entry_key(owner_id, generation, key)))

    async def lookup(
        self, owner_id: str, generation: int, key: str, description: bytes
    ) -> bytes | None:
        # One round trip: the answer and the count.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._entry_key(owner_id, generation, key))
            await self._record(
                keys=self._hot_keys(owner_id),
                args=[key, description, self._hot_tracked, self._hot_ttl_s],
                client=pipe,
            )
            value, _ = await pipe.execute()
        return _bytes(value)

    async def put(self, owner_id: str, generation: int, key: str, value: bytes) -> bool:
        stored = await self._put(
            keys=[self._generation_key(owner_id), self._entry_key(owner_id, generation, key)],
            args=[str(generation), value, self._ttl_s, self._ttl_s],
        )
        return bool(stored)

    async def invalidate(self, owner_id: str) -> int:
        value = await self._invalidate(keys=[self._generation_key(owner_id)], args=[self._ttl_s])
        return int(value)

    async def hot_queries(self, owner_id: str, limit: int, min_score: float) -> list[HotQuery]:
        if limit <= 0:
            return []
        flat: list[Any] = await self._hot(
            keys=self._hot_keys(owner_id),
            args=[
                limit,
                repr(float(min_score)),
                repr(self._decay),
                repr(FORGET_BELOW),
                self._hot_ttl_s,
            ],
        )
        return [
            HotQuery(_text(flat[i]), _bytes(flat[i + 2]) or b"", float(flat[i + 1]))
            for i in range(0, len(flat), 3)
        ]

    async def ping(self) -> None:
        await self._redis.ping()


def _bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
