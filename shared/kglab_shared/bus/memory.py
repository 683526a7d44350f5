"""``InProcessBus``: the event bus inside one process, with RabbitMQ's semantics.

Used by ``make dev`` (embedded backends) and by fast tests. It keeps what a consumer can rely
on with RabbitMQ so code that works here works there:

* topic routing: ``*`` matches one dot-separated word, ``#`` zero or more;
* one queue per consumer group: every group gets each matching event once, and within a group
  one consumer handles it;
* at-least-once: an event whose handler raises is delivered again after a backoff
  (:class:`RetryPolicy`), then parked in the group's dead-letter list, which can be listed and
  replayed; an event in a handler that is cancelled (crash, close timeout) goes back to the front
  of the queue;
* bounded prefetch: each subscription runs at most ``prefetch`` handlers at once;
* envelopes travel as bytes, so no two services share a mutable object and a payload that would
  not survive the wire fails at publish.

Several ``InProcessBus`` instances (several services in one process, or a test's "two
processes") share one :class:`InProcessBroker`; its queues outlive any one bus, like a broker's.
An event routed to no group is dropped, as RabbitMQ drops an unroutable message. A RabbitMQ
deployment has its durable queues before its producers run; a process that starts its services
one after another (``make dev``) has producers before every consumer has subscribed, so its
broker retains the events meanwhile (:meth:`InProcessBroker.retain`): a group bound late still
gets them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pydantic import ValidationError

from kglab_shared.bus.dispatch import describe_error, prepare_for_publish, run_handler
from kglab_shared.bus.port import (
    DeadLetter,
    EventHandler,
    PublishError,
    RetryPolicy,
    failure_log_fields,
)
from kglab_shared.events import EventEnvelope
from kglab_shared.logging import get_logger
from kglab_shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS_WAITING,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_PUBLISHED,
    EVENTS_RETRIED,
)

_log = get_logger(__name__)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""
    words = pattern.split(".")

    def skip_hashes(states: set[int]) -> set[int]:
        # A '#' may match zero words, so a state before it is also a state after it.
        expanded = set(states)
        pending = list(states)
        while pending:
            index = pending.pop()
            if index < len(words) and words[index] == "#" and index + 1 not in expanded:
                expanded.add(index + 1)
                pending.append(index + 1)
        return expanded

    states = skip_hashes({0})
    for word in routing_key.split("."):
        following: set[int] = set()
        for index in states:
            if index == len(words):
                continue
            if words[index] == "#":
                following.add(index)
            elif words[index] in ("*", word):
                following.add(index + 1)
        if not following:
            return False
        states = skip_hashes(following)
    return len(words) in states


@dataclass(frozen=True, slots=True)
class _Delivery:
    body: bytes
    event_type: str
    attempt: int = 1


@dataclass(slots=True)
class _Retained:
    body: bytes
    event_type: str
    #: The groups it was given to; a group bound later that matches gets it once, at binding.
    groups: set[str]


@dataclass(frozen=True, slots=True)
class _Parked:
    body: bytes
    attempts: int
    error: str
    dead_at: datetime


class _GroupQueue:
    """One consumer group's queue: ready deliveries, idle consumers waiting, parked ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.patterns: set[str] = set()
        self.ready: deque[_Delivery] = deque()
        self.parked: list[_Parked] = []
        self._waiters: deque[asyncio.Future[_Delivery]] = deque()

    def matches(self, event_type: str) -> bool:
        return any(topic_matches(pattern, event_type) for pattern in self.patterns)

    def put(self, delivery: _Delivery, *, front: bool = False) -> None:
        # Hand the delivery straight to an idle consumer, as a broker pushes to one with credit.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(delivery)
                return
        if front:
            self.ready.appendleft(delivery)
        else:
            self.ready.append(delivery)
        CONSUMER_LAG.labels(self.name).set(len(self.ready))

    async def take(self) -> _Delivery:
        if self.ready:
            delivery = self.ready.popleft()
            CONSUMER_LAG.labels(self.name).set(len(self.ready))
            return delivery
        waiter: asyncio.Future[_Delivery] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after the delivery was handed over but before it ran: give it back.
            if waiter.done() and not waiter.cancelled():
                self.put(waiter.result(), front=True)
            raise


class InProcessBroker:
    """The queues, retry timers and dead-letter lists that the buses of one process share."""

    def __init__(self) -> None:
        self._groups: dict[str, _GroupQueue] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._available = True
        self._retainers = 0
        self._retained: list[_Retained] = []

    def set_available(self, available: bool) -> None:
        """Simulate a broker outage: while unavailable, every publish raises PublishError."""
        self._available = available

    @property
    def available(self) -> bool:
        return self._available

    def group(self, name: str) -> _GroupQueue:
        queue = self._groups.get(name)
        if queue is None:
            queue = self._groups[name] = _GroupQueue(name)
        return queue

    def retain(self) -> None:
        """Keep every event routed from now until :meth:`release`; a group bound meanwhile gets
        the kept events it matches first, in their order, as if its queue had existed already.

        For a process whose services start one after another: without it, an event published
        before its consumer's first subscription would reach no queue and be lost.
        """
        self._retainers += 1

    def release(self) -> None:
        """End one :meth:`retain` (every consumer is bound); the last one drops the kept events."""
        self._retainers = max(0, self._retainers - 1)
        if not self._retainers:
            self._retained.clear()

    def bind(self, name: str, patterns: Sequence[str]) -> _GroupQueue:
        """The group ``name``, bound to ``patterns`` too, given the retained events it now
        matches and did not have yet (before any later event: the order is kept)."""
        queue = self.group(name)
        queue.patterns.update(patterns)
        for kept in self._retained:
            if name not in kept.groups and queue.matches(kept.event_type):
                kept.groups.add(name)
                queue.put(_Delivery(body=kept.body, event_type=kept.event_type))
        return queue

    def route(self, event_type: str, body: bytes) -> None:
        if not self._available:
            raise PublishError("The in-process broker is unavailable; the event was not sent.")
        groups: set[str] = set()
        for queue in self._groups.values():
            if queue.matches(event_type):
                queue.put(_Delivery(body=body, event_type=event_type))
                groups.add(queue.name)
        if self._retainers:
            self._retained.append(_Retained(body=body, event_type=event_type, groups=groups))

    def retry_later(self, group: _GroupQueue, delivery: _Delivery, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        again = replace(delivery, attempt=delivery.attempt + 1)

        def fire() -> None:
            self._timers.discard(handle)
            group.put(again)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def close(self) -> None:
        """Drop pending retries (an in-process broker keeps nothing across restarts)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()


@dataclass(eq=False, slots=True)
class _Subscription:
    queue: _GroupQueue
    handler: EventHandler
    retry: RetryPolicy
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    busy: set[asyncio.Task[None]] = field(default_factory=set)
    stopping: bool = False


class InProcessBus:
    """An :class:`~kglab_shared.bus.port.EventBus` whose broker lives in this process."""

    def __init__(
        self,
        source: str = "kglab",
        *,
        broker: InProcessBroker | None = None,
        close_timeout_s: float = 10.0,
    ) -> None:
        self.source = source
        self.broker = broker if broker is not None else InProcessBroker()
        self._owns_broker = broker is None
        self._close_timeout_s = close_timeout_s
        self._subscriptions: list[_Subscription] = []
        self._started = False
        self._closed = False

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("This bus was closed; create a new one.")
        self._started = True

    async def publish(self, event: EventEnvelope) -> None:
        if not self._started or self._closed:
            raise PublishError("The bus is not started; call start() before publishing.")
        self._route(event)
        # A real publish waits for the broker; yield so a publishing loop cannot starve consumers.
        await asyncio.sleep(0)

    async def publish_many(self, events: Sequence[EventEnvelope]) -> None:
        """Route ``events`` in order; on a failure, PublishError counts the routed prefix."""
        if not self._started or self._closed:
            raise PublishError("The bus is not started; call start() before publishing.")
        for confirmed, event in enumerate(events):
            try:
                self._route(event)
            except Exception as exc:
                raise PublishError(
                    f"Routed {confirmed} of {len(events)} events, not event {event.id} "
                    f"({event.type}): {type(exc).__name__}: {exc}",
                    confirmed=confirmed,
                ) from exc
        await asyncio.sleep(0)

    def _route(self, event: EventEnvelope) -> None:
        event = prepare_for_publish(event)
        body = event.to_bytes()
        # Parse it back as a consumer on another machine would: what does not survive fails here.
        EventEnvelope.from_bytes(body)
        self.broker.route(event.type, body)
        EVENTS_PUBLISHED.labels(event.type).inc()

    async def subscribe(
        self,
        group: str,
        patterns: Sequence[str],
        handler: EventHandler,
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 16,
    ) -> None:
        if not self._started or self._closed:
            raise RuntimeError("The bus is not started; call start() before subscribing.")
        if not patterns:
            raise ValueError("A subscription needs at least one routing pattern.")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1.")
        queue = self.broker.bind(group, patterns)
        subscription = _Subscription(queue=queue, handler=handler, retry=retry or RetryPolicy())
        for number in range(prefetch):
            subscription.workers.append(
                asyncio.create_task(self._work(subscription), name=f"kglab-bus-{group}-{number}")
            )
        self._subscriptions.append(subscription)

    async def _work(self, subscription: _Subscription) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not subscription.stopping:
            delivery = await subscription.queue.take()
            subscription.busy.add(task)
            try:
                await self._process(subscription, delivery)
            finally:
                subscription.busy.discard(task)

    async def _process(self, subscription: _Subscription, delivery: _Delivery) -> None:
        queue = subscription.queue
        try:
            envelope = EventEnvelope.from_bytes(delivery.body)
        except ValidationError as exc:  # cannot happen for bodies this bus wrote; kept as a guard
            self._park(queue, delivery, f"The event could not be decoded: {exc}")
            return
        try:
            await run_handler(
                subscription.handler,
                envelope,
                queue.name,
                attempt=delivery.attempt,
                max_attempts=subscription.retry.max_attempts,
            )
        except asyncio.CancelledError:
            # Not acknowledged: the event goes back to the queue for another consumer.
            queue.put(delivery, front=True)
            raise
        except Exception as exc:
            self._after_failure(subscription, delivery, envelope, exc)
            return
        EVENTS_CONSUMED.labels(queue.name, delivery.event_type).inc()

    def _after_failure(
        self,
        subscription: _Subscription,
        delivery: _Delivery,
        envelope: EventEnvelope,
        exc: Exception,
    ) -> None:
        queue, retry = subscription.queue, subscription.retry
        last = delivery.attempt >= retry.max_attempts
        _log.warning(
            "event_handler_failed",
            group=queue.name,
            event_id=envelope.id,
            event_type=envelope.type,
            attempt=delivery.attempt,
            max_attempts=retry.max_attempts,
            will_retry=not last,
            correlation_id=envelope.correlation_id,
            **failure_log_fields(exc),
        )
        if last:
            self._park(queue, delivery, describe_error(exc))
        else:
            EVENTS_RETRIED.labels(queue.name, delivery.event_type).inc()
            self.broker.retry_later(queue, delivery, retry.delay_after(delivery.attempt))

    def _park(self, queue: _GroupQueue, delivery: _Delivery, error: str) -> None:
        queue.parked.append(
            _Parked(
                body=delivery.body,
                attempts=delivery.attempt,
                error=error,
                dead_at=datetime.now(UTC),
            )
        )
        EVENTS_DEAD_LETTERED.labels(queue.name, delivery.event_type).inc()

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for parked in self.broker.group(group).parked[:limit]:
            letters.append(
                DeadLetter(
                    envelope=EventEnvelope.from_bytes(parked.body),
                    group=group,
                    attempts=parked.attempts,
                    error=parked.error,
                    dead_at=parked.dead_at,
                )
            )
        return letters

    async def replay_dead_letters(self, group: str) -> int:
        queue = self.broker.group(group)
        parked, queue.parked = queue.parked, []
        for letter in parked:
            envelope = EventEnvelope.from_bytes(letter.body)
            queue.put(_Delivery(body=letter.body, event_type=envelope.type))
        return len(parked)

    async def ping(self) -> None:
        if self._closed:
            raise ConnectionError("The in-process bus is closed.")
        if not self.broker.available:
            raise ConnectionError("The in-process broker is unavailable.")
        # Readiness runs this periodically: the dead-letter gauge follows the parked lists.
        for queue in {subscription.queue for subscription in self._subscriptions}:
            DEAD_LETTERS_WAITING.labels(queue.name).set(len(queue.parked))

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking events, let in-flight handlers finish (``timeout``), requeue the rest."""
        if self._closed:
            return
        self._closed = True
        wait_s = self._close_timeout_s if timeout is None else timeout
        busy: set[asyncio.Task[None]] = set()
        for subscription in self._subscriptions:
            subscription.stopping = True
            for worker in subscription.workers:
                if worker in subscription.busy:
                    busy.add(worker)
                else:
                    worker.cancel()
        if busy and wait_s > 0:
            _, pending = await asyncio.wait(busy, timeout=wait_s)
            if pending:
                _log.warning("bus_close_timeout", in_flight=len(pending), timeout_s=wait_s)
        await self._cancel_workers()
        if self._owns_broker:
            self.broker.close()

    async def abort(self) -> None:
        """Stop at once, as a crashed process would: in-flight events go back to their queues."""
        if self._closed:
            return
        self._closed = True
        for subscription in self._subscriptions:
            subscription.stopping = True
        await self._cancel_workers()
        if self._owns_broker:
            self.broker.close()

    async def _cancel_workers(self) -> None:
        workers = [w for s in self._subscriptions for w in s.workers]
        for worker in workers:
            worker.cancel()
        for outcome in await asyncio.gather(*workers, return_exceptions=True):
            if isinstance(outcome, Exception):
                _log.error("bus_worker_failed", exc_info=outcome)
        self._subscriptions.clear()
