"""Revocations every gateway must honour at once: signed-out sessions and revoked API keys.

The gateway verifies access tokens locally and caches API-key look-ups, so without help a
signed-out session would keep working until its access token expires (15 minutes) and a
revoked key until its cache entry does. The auth service therefore publishes each revocation
on a feed that every gateway replica follows (adr/0005, "Revocation"):

- ``session``: a session (a refresh-token family, the ``sid`` claim of its access tokens) is
  over; its access tokens are refused until they would have expired anyway.
- ``api_key``: forget what is cached about this key and ask auth again (which refuses it if it
  is revoked or its owner disabled).

Two adapters: Redis (a sorted set holds the live revocations so a follower that connects or
reconnects catches up, and pub/sub delivers new ones at once) and an in-process one that the
services of one process share (``make dev``), as they share the in-process event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from kglab_shared.logging import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

_log = get_logger(__name__)


class RevocationKind(StrEnum):
    SESSION = "session"
    API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: RevocationKind
    subject: str
    #: When the entry stops mattering (epoch seconds): every token it covers has expired.
    expires_at: float

    @property
    def member(self) -> str:
        return f"{self.kind.value}:{self.subject}"

    def message(self) -> str:
        return f"{self.member}@{self.expires_at:.3f}"

    @classmethod
    def parse(cls, member: str, expires_at: float) -> Revocation | None:
        kind, _, subject = member.partition(":")
        if not subject or kind not in RevocationKind.__members__.values():
            return None
        return cls(RevocationKind(kind), subject, expires_at)

    @classmethod
    def of_message(cls, text: str) -> Revocation | None:
        member, _, expires = text.rpartition("@")
        try:
            return cls.parse(member, float(expires))
        except ValueError:
            return None


Apply = Callable[[Revocation], None]
Signal = Callable[[], None]


class RevocationFeed(Protocol):
    async def publish(self, revocations: Sequence[Revocation]) -> None:
        """Record and announce; raises when the feed cannot take them (the caller's request
        fails rather than pretending the revocation is in force)."""

    async def follow(self, apply: Apply, *, on_sync: Signal, on_lost: Signal) -> None:
        """Run until cancelled: ``apply`` every live revocation, then ``on_sync``; then each new
        one as it is published. When the feed breaks: ``on_lost``, reconnect, catch up again."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryRevocationFeed:
    """In-process: a publish reaches every follower before it returns."""

    def __init__(self) -> None:
        self._live: dict[str, Revocation] = {}
        self._followers: list[Apply] = []

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        now = time.time()
        self._live = {k: r for k, r in self._live.items() if r.expires_at > now}
        for revocation in revocations:
            self._live[revocation.member] = revocation
            for apply in list(self._followers):
                apply(revocation)

    async def follow(self, apply: Apply, *, on_sync: Signal, on_lost: Signal) -> None:
        now = time.time()
        for revocation in list(self._live.values()):
            if revocation.expires_at > now:
                apply(revocation)
        self._followers.append(apply)
        on_sync()
        try:
            await asyncio.Event().wait()
        finally:
            self._followers.remove(apply)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


_process_feed: MemoryRevocationFeed | None = None


def process_revocation_feed() -> MemoryRevocationFeed:
    """The feed auth and the gateway share when they run in one process on embedded stores."""
    global _process_feed
    if _process_feed is None:
        _process_feed = MemoryRevocationFeed()
    return _process_feed


class RedisRevocationFeed:
    """A sorted set ``<prefix>revocations`` (member ``kind:subject``, score: expiry) holds what
    is live; the channel of the same name announces each new revocation."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        heartbeat_s: float = 1.0,
        owns_client: bool = True,
    ) -> None:
        self._redis = redis
        self.key = f"{prefix}revocations"
        self.channel = f"{prefix}revocations"
        self._heartbeat_s = heartbeat_s
        self._owns_client = owns_client

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        if not revocations:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {r.member: r.expires_at for r in revocations})
            pipe.zremrangebyscore(self.key, "-inf", time.time())
            pipe.publish(self.channel, "\n".join(r.message() for r in revocations))
            await pipe.execute()

    async def follow(self, apply: Apply, *, on_sync: Signal, on_lost: Signal) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe first, then read the set: a revocation published in between is
                # seen twice (harmless), never missed.
                await pubsub.subscribe(self.channel)
                live: list[tuple[Any, float]] = await self._redis.zrangebyscore(  # type: ignore[assignment]
                    self.key, time.time(), "+inf", withscores=True
                )
                for member, score in live:
                    text = member.decode() if isinstance(member, bytes) else str(member)
                    revocation = Revocation.parse(text, float(score))
                    if revocation is not None:
                        apply(revocation)
                on_sync()
                backoff = 0.1
                await self._listen(pubsub, apply)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _raise_if_cancelling(exc)
                on_lost()
                _log.warning("revocation_feed_lost", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, pubsub: object, apply: Apply) -> None:
        from redis.asyncio.client import PubSub

        assert isinstance(pubsub, PubSub)
        heard = pinged = time.monotonic()
        while True:
            _raise_if_cancelling(None)
            message = await pubsub.get_message(timeout=self._heartbeat_s / 2)
            now = time.monotonic()
            if message is None:
                # Silence is normal; a connection that died without a word is not: ping it,
                # and give up on it when the pong does not come back. Only an unanswered ping
                # counts: after the loop itself was held up (a busy process) nothing has been
                # asked yet, so it pings first instead of calling a live channel dead.
                if pinged > heard and now - pinged > 2 * self._heartbeat_s:
                    raise ConnectionError("the revocation channel went silent")
                if now - max(heard, pinged) > self._heartbeat_s:
                    await pubsub.ping()
                    pinged = now
                continue
            heard = now
            if message.get("type") != "message":
                continue
            data = message.get("data")
            text = data.decode() if isinstance(data, bytes) else str(data)
            for line in text.splitlines():
                revocation = Revocation.of_message(line)
                if revocation is not None:
                    apply(revocation)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()


def _raise_if_cancelling(cause: BaseException | None) -> None:
    """redis-py can turn a cancellation that lands inside a read into a timeout or a plain
    "no message": the request to stop is then consumed and the follower would listen forever
    (seen as a gateway that never finished shutting down). Honour it here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


def revocation_feed(redis_url: str | None, *, prefix: str) -> RevocationFeed:
    """Redis when there is one; otherwise the process's own feed (embedded, one process)."""
    if redis_url is None:
        return process_revocation_feed()
    from redis.asyncio import Redis

    return RedisRevocationFeed(Redis.from_url(redis_url, socket_timeout=5), prefix=prefix)
