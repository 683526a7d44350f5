"""``RabbitMQBus``: the event bus on RabbitMQ, through aio-pika.

Topology (declared by :meth:`RabbitMQBus.subscribe`, all durable)::

    kglab.events (topic) --pattern--> <group>                quorum; what the group consumes
    handler raised, attempt n < max:  <group>.retry.<ms>ms    quorum, TTL = backoff after
                                                              attempt n; dead-letters back
                                                              to <group> (at-least-once)
    handler raised, last attempt:     <group>.dlq             quorum; inspected and replayed

Guarantees:

* ``publish`` returns only after the broker confirmed the persistent message (publisher
  confirms). A nack, a timeout or a lost connection raises :class:`PublishError`: an event is
  never reported sent when it may not be. Concurrent publishes share the channel with their
  confirms in flight together (the frame is handed to the connection's writer without waiting
  for the socket; only the confirm is awaited). ``publish_many`` sends a whole batch before
  awaiting the confirms, a bounded window at a time, and reports the confirmed prefix.
* Consumers ack manually, after the handler returned, or after a failed event was safely
  (confirmed) copied to its retry or dead-letter queue. A consumer that dies before acking has
  its events redelivered by the broker. Acks are coalesced per event-loop turn
  (:class:`_AckCoalescer`): one ``basic.ack`` with ``multiple`` for the contiguous run of
  settled deliveries, single acks for events finished out of order, so a slow handler never
  holds back the acks (and the prefetch credit) of the others.
* Prefetch bounds how many events one subscription handles at once.
* The group queue has a delivery limit as a last resort for an event that keeps killing its
  consumer before it can ack; such an event is dead-lettered to ``<group>.dlq`` by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from pydantic import ValidationError

from kglab_shared.bus.dispatch import describe_error, prepare_for_publish, run_handler
from kglab_shared.bus.port import (
    DeadLetter,
    EventHandler,
    PublishError,
    RetryPolicy,
    failure_log_fields,
)
from kglab_shared.events import EXCHANGE, EventEnvelope
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

#: Which attempt this delivery is (1 when absent).
ATTEMPT_HEADER = "x-kglab-attempt"
#: Set on messages in a dead-letter queue.
ERROR_HEADER = "x-kglab-error"
DEAD_AT_HEADER = "x-kglab-dead-at"
#: Headers the broker adds when it dead-letters or requeues; not copied when we republish.
_BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)
_JSON = "application/json"
_PERSISTENT = int(DeliveryMode.PERSISTENT)
#: How many confirms ``publish_many`` keeps in flight at once.
PUBLISH_WINDOW = 256


def dead_letter_queue(group: str) -> str:
    return f"{group}.dlq"


def retry_queue(group: str, delay_ms: int) -> str:
    # The delay is in the name, so changing a RetryPolicy declares new queues instead of
    # failing on a queue whose TTL argument differs.
    return f"{group}.retry.{delay_ms}ms"


def group_queue_arguments(group: str, delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(group),
    }


_DLQ_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    # Browsing (get, then requeue) counts as a redelivery; RabbitMQ 4 drops a quorum-queue
    # message after 20 by default. Parked events must stay until someone replays them.
    "x-delivery-limit": 1_000_000,
}
#: Up to this many parked events, a browse reads them all so requeueing keeps their order.
BROWSE_ALL_MAX = 10_000


def retry_queue_arguments(group: str, delay_ms: int) -> dict[str, Any]:
    # Quorum with at-least-once dead-lettering: the broker moves an expired copy back to the
    # group's queue with its own publisher confirms, so a retry is not lost between the two
    # (that strategy requires reject-publish overflow; no length limit is set, so it never
    # rejects).
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": group,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _header_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(errors="replace")
    return str(value)


def _header_int(headers: Mapping[str, Any], name: str, default: int) -> int:
    value = headers.get(name)
    try:
        return int(_header_text(value) or default)
    except ValueError:
        return default


def _death_reason(headers: Mapping[str, Any]) -> str | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return _header_text(deaths[0].get("reason"))
    return _header_text(headers.get("x-first-death-reason"))


class _NotConfirmed(Exception):
    def __init__(self, confirmed: int) -> None:
        super().__init__(confirmed)
        self.confirmed = confirmed


@dataclass(eq=False, slots=True)
class _Outgoing:
    """One event waiting for the next write; ``ticket`` receives its confirm future."""

    routing_key: str
    properties: Basic.Properties
    body: bytes
    ticket: asyncio.Future[asyncio.Future[Any]]


#: The aiormq ``Channel`` attributes :class:`_PublishBatcher` writes through.
_CHANNEL_API = ("lock", "delivery_tag", "confirmations", "write_queue", "max_content_size")


def batching_supported(channel: object) -> bool:
    """Whether ``channel`` (an aiormq channel) has what :class:`_PublishBatcher` relies on."""
    return all(hasattr(channel, name) for name in _CHANNEL_API) and hasattr(
        channel, "create_future"
    )


class _PublishBatcher:
    """Writes every event published during one event-loop turn as one frame batch.

    aiormq's ``basic_publish`` takes the channel lock, marshals and queues one message, and
    awaits its confirm, per call: about 0.4 ms of CPU per event here. This does what it does for
    all the events queued since the last turn at once: marshals them (outside the lock, so an
    unencodable header fails alone and before anything is sent), then, under the channel lock,
    numbers them with consecutive delivery tags, registers a confirm future per tag (created by
    the channel, so a channel close rejects them) and queues one write. The broker's confirms,
    single or ``multiple``, resolve the futures as for ``basic_publish``: about 0.08 ms of CPU
    per event, measured in ``bench/bench_bus.py``.
    """

    def __init__(self, get_channel: Any) -> None:
        self._get_channel = get_channel
        self._pending: list[_Outgoing] = []
        self._task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        """Stop a write still waiting for the channel (the bus is closing); its callers fail."""
        if self._task is not None:
            self._task.cancel()
        for outgoing in self._pending:
            if not outgoing.ticket.done():
                outgoing.ticket.set_exception(PublishError("The bus is closed."))
        self._pending = []

    def submit(self, outgoing: _Outgoing) -> None:
        self._pending.append(outgoing)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kglab-bus-publish")

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                # A caller that gave up (timeout, cancelled) before the write is not sent.
                batch = [o for o in batch if not o.ticket.done()]
                if batch:
                    await self._write(batch)
        finally:
            self._task = None

    async def _write(self, batch: list[_Outgoing]) -> None:
        try:
            channel: aiormq.Channel = await self._get_channel()
            number = channel.number
            size = channel.max_content_size
            frames: list[Any] = []
            for outgoing in batch:
                body = outgoing.body
                frames.append(Basic.Publish(exchange=EXCHANGE, routing_key=outgoing.routing_key))
                frames.append(ContentHeader(properties=outgoing.properties, body_size=len(body)))
                frames.extend(ContentBody(body[i : i + size]) for i in range(0, len(body), size))
            payload = ChannelFrame.marshall(channel_number=number, frames=frames)
            async with channel.lock:
                # No await from here to the put: the tags and the frames stay in step.
                confirms: list[asyncio.Future[Any]] = []
                for _ in batch:
                    channel.delivery_tag += 1
                    confirm = channel.create_future()
                    channel.confirmations[channel.delivery_tag] = confirm
                    confirms.append(confirm)
                await channel.write_queue.put(payload)
        except BaseException as exc:
            for outgoing in batch:
                if not outgoing.ticket.done():
                    outgoing.ticket.set_exception(
                        exc if isinstance(exc, Exception) else PublishError("Cancelled.")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for outgoing, confirm in zip(batch, confirms, strict=True):
            if not outgoing.ticket.done():
                outgoing.ticket.set_result(confirm)


class _AckCoalescer:
    """Acks of one consumer channel, sent together once per event-loop turn.

    Every delivery tag up to ``floor`` is settled (acked, or nacked back to the queue). When
    handlers finish, the tags they finished are acked at the next turn of the loop: those that
    join the contiguous settled run from ``floor`` with one ``basic.ack`` whose ``multiple``
    flag covers the run, the others (finished while an earlier delivery is still running) one by
    one, so a slow handler never holds back the acks, and so the prefetch credit, of the rest.
    ``multiple`` acks every unsettled tag up to it, so it is only used for a run in which every
    tag is known to be settled; tags start at 1 on each channel and rise by one per delivery,
    and a robust reconnect opens a new channel, which restarts the count here too.
    """

    #: Settled tags kept above a gap (a delivery still running); beyond this the oldest are
    #: forgotten, which only costs coalescing (later acks go one by one), never correctness.
    MAX_TRACKED = 65_536

    __slots__ = ("_channel", "_floor", "_flush", "_pending", "_settled")

    def __init__(self) -> None:
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._floor = 0
        self._settled: set[int] = set()
        self._pending: dict[int, asyncio.Future[bool]] = {}
        self._flush: asyncio.Task[None] | None = None

    def ack(self, channel: aiormq.abc.AbstractChannel, tag: int) -> asyncio.Future[bool]:
        """Ack ``tag`` soon; the future says whether the ack was handed to the connection."""
        self._use(channel)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[tag] = future
        if self._flush is None:
            self._flush = asyncio.create_task(self._send())
        return future

    def settled(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        """``tag`` was settled another way (nacked): later runs may pass over it."""
        self._use(channel)
        self._settled.add(tag)

    def _use(self, channel: aiormq.abc.AbstractChannel) -> None:
        if channel is self._channel:
            return
        # A new channel (reconnect): its tags start again. Acks still pending were for the
        # old, closed channel; the broker has requeued those deliveries already.
        for future in self._pending.values():
            if not future.done():
                future.set_result(False)
        self._pending = {}
        self._settled.clear()
        self._floor = 0
        self._channel = channel

    async def _send(self) -> None:
        pending, self._pending = self._pending, {}
        channel = self._channel
        self._flush = None
        settled = self._settled
        settled.update(pending)
        floor = self._floor
        while floor + 1 in settled:
            floor += 1
            settled.discard(floor)
        self._floor = floor
        if len(settled) > self.MAX_TRACKED:
            for tag in sorted(settled)[: len(settled) - self.MAX_TRACKED]:
                settled.discard(tag)
        in_run = [tag for tag in pending if tag <= floor]
        singles = [tag for tag in pending if tag > floor]
        ok = channel is not None
        try:
            if channel is not None:
                if in_run:
                    # The highest newly finished tag of the run: never one acked before.
                    await channel.basic_ack(max(in_run), multiple=len(in_run) > 1, wait=False)
                for tag in singles:
                    await channel.basic_ack(tag, wait=False)
        except Exception as exc:
            ok = False
            _log.warning("event_ack_failed", events=len(pending), error=str(exc))
        for future in pending.values():
            if not future.done():
                future.set_result(ok)


@dataclass(eq=False, slots=True)
class _Subscription:
    group: str
    handler: EventHandler
    retry: RetryPolicy
    channel: AbstractRobustChannel
    queue: AbstractQueue
    consumer_tag: str = ""
    retry_queues: dict[int, str] = field(default_factory=dict)
    acks: _AckCoalescer = field(default_factory=_AckCoalescer)
    #: Prometheus children by event type, so the hot path skips ``labels()``.
    consumed: dict[str, Any] = field(default_factory=dict)


class RabbitMQBus:
    """An :class:`~kglab_shared.bus.port.EventBus` on RabbitMQ (aio-pika, robust connection)."""

    def __init__(
        self,
        url: str,
        source: str = "kglab",
        *,
        connection_name: str | None = None,
        publish_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        reconnect_interval_s: float = 1.0,
        close_timeout_s: float = 10.0,
        lag_interval_s: float = 15.0,
        delivery_limit: int = 20,
    ) -> None:
        self.url = url
        self.source = source
        self.connection_name = connection_name or f"{source}-{uuid.uuid4().hex[:8]}"
        self._publish_timeout_s = publish_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._close_timeout_s = close_timeout_s
        self._lag_interval_s = lag_interval_s
        self._delivery_limit = delivery_limit
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._admin_channel: AbstractRobustChannel | None = None
        self._subscriptions: list[_Subscription] = []
        self._published: dict[str, Any] = {}
        self._batcher: _PublishBatcher | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._lag_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._start_lock:
            if self._closing:
                raise RuntimeError("This bus was closed; create a new one.")
            if self._connection is not None:
                return
            connection = await aio_pika.connect_robust(
                self.url,
                client_properties={"connection_name": self.connection_name},
                reconnect_interval=self._reconnect_interval_s,
                timeout=self._connect_timeout_s,
            )
            try:
                self._publish_channel = await connection.channel(publisher_confirms=True)
                self._exchange = await self._publish_channel.declare_exchange(
                    EXCHANGE, ExchangeType.TOPIC, durable=True
                )
                self._admin_channel = await connection.channel(publisher_confirms=False)
                if batching_supported(await self._publish_channel.get_underlay_channel()):
                    self._batcher = _PublishBatcher(self._confirming_channel)
                else:  # pragma: no cover - another aiormq version
                    _log.warning("bus_publish_batching_unavailable")
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            self._lag_task = asyncio.create_task(self._report_lag(), name="kglab-bus-lag")

    async def close(self, timeout: float | None = None) -> None:
        """Stop consuming, let in-flight handlers finish (``timeout``), then disconnect.

        Handlers still running at the timeout are cancelled; their events were not acked and
        the broker redelivers them.
        """
        if self._closing:
            return
        self._closing = True
        wait_s = self._close_timeout_s if timeout is None else timeout
        await self._stop_lag_task()
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(wait_s, 5.0) or 0.5):
                    await subscription.queue.cancel(subscription.consumer_tag)
        in_flight = set(self._in_flight)
        if in_flight and wait_s > 0:
            _, pending = await asyncio.wait(in_flight, timeout=wait_s)
            if pending:
                _log.warning("bus_close_timeout", in_flight=len(pending), timeout_s=wait_s)
        await self._disconnect()

    async def abort(self) -> None:
        """Drop the connection at once, as a crashed process would; unacked events return."""
        if self._closing:
            return
        self._closing = True
        await self._stop_lag_task()
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._batcher is not None:
            self._batcher.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing cancels handlers still running; the broker requeues what they held.
            with contextlib.suppress(Exception):
                await connection.close()
        for task in list(self._in_flight):
            task.cancel()
        self._subscriptions.clear()

    async def _stop_lag_task(self) -> None:
        task, self._lag_task = self._lag_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, event: EventEnvelope) -> None:
        if self._exchange is None or self._closing:
            raise PublishError("The bus is not started; call start() before publishing.")
        event = prepare_for_publish(event)
        outgoing = self._outgoing(event)
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._confirmed([outgoing])
        except Exception as exc:
            if isinstance(exc, _NotConfirmed) and isinstance(exc.__cause__, Exception):
                exc = exc.__cause__
            raise PublishError(
                f"RabbitMQ did not confirm event {event.id} ({event.type}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._count_published(event.type)

    async def publish_many(self, events: Sequence[EventEnvelope]) -> None:
        """Publish in order, up to :data:`PUBLISH_WINDOW` confirms in flight; see the port."""
        if self._exchange is None or self._closing:
            raise PublishError("The bus is not started; call start() before publishing.")
        encoded: list[_Outgoing] = []
        failure: Exception | None = None
        for event in events:
            try:
                encoded.append(self._outgoing(prepare_for_publish(event)))
            except Exception as exc:  # not serialisable: send what comes before it
                failure = exc
                break
        confirmed = 0
        for start in range(0, len(encoded), PUBLISH_WINDOW):
            window = encoded[start : start + PUBLISH_WINDOW]
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    confirmed += await self._confirmed(window)
            except _NotConfirmed as exc:
                confirmed += exc.confirmed
                event_type = window[exc.confirmed].routing_key
                cause = exc.__cause__
                raise PublishError(
                    f"RabbitMQ confirmed {confirmed} of {len(events)} events, not the next "
                    f"({event_type}): {type(cause).__name__}: {cause}",
                    confirmed=confirmed,
                ) from cause
            except Exception as exc:  # the timeout: nothing after ``confirmed`` is known
                raise PublishError(
                    f"RabbitMQ confirmed {confirmed} of {len(events)} events, then none within "
                    f"{self._publish_timeout_s} s: {type(exc).__name__}: {exc}",
                    confirmed=confirmed,
                ) from exc
            for outgoing in window:
                self._count_published(outgoing.routing_key)
        if failure is not None:
            raise PublishError(
                f"Event {confirmed + 1} of {len(events)} could not be encoded: "
                f"{type(failure).__name__}: {failure}",
                confirmed=confirmed,
            ) from failure

    def _outgoing(self, event: EventEnvelope) -> _Outgoing:
        return _Outgoing(
            routing_key=event.type,
            properties=Basic.Properties(
                headers=dict(event.trace),
                content_type=_JSON,
                delivery_mode=_PERSISTENT,
                message_id=event.id,
                correlation_id=event.correlation_id,
                timestamp=event.time,
                message_type=event.type,
                app_id=self.source,
            ),
            body=event.to_bytes(),
            ticket=asyncio.get_running_loop().create_future(),
        )

    async def _confirmed(self, batch: list[_Outgoing]) -> int:
        """Send ``batch`` and wait for every confirm; return how many (all), else raise
        :class:`_NotConfirmed` with the confirmed prefix. Unsent ones are withdrawn if the
        caller stops waiting."""
        done = 0
        try:
            if self._batcher is not None:
                for outgoing in batch:
                    self._batcher.submit(outgoing)
                for outgoing in batch:
                    try:
                        await (await outgoing.ticket)
                    except Exception as exc:
                        raise _NotConfirmed(done) from exc
                    done += 1
            else:
                channel = await self._confirming_channel()
                outcomes = await asyncio.gather(
                    *(self._send(channel, outgoing) for outgoing in batch),
                    return_exceptions=True,
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise _NotConfirmed(done) from outcome
                    done += 1
        finally:
            for outgoing in batch:
                if not outgoing.ticket.done():
                    outgoing.ticket.cancel()
        return done

    async def _confirming_channel(self) -> aiormq.Channel:
        channel = self._publish_channel
        if channel is None or self._closing:
            raise PublishError("The bus is closed.")
        # Waits while a robust reconnect is in progress (bounded by the caller's timeout).
        return cast(aiormq.Channel, await channel.get_underlay_channel())

    async def _send(self, channel: aiormq.Channel, outgoing: _Outgoing) -> None:
        """One event through aiormq's ``basic_publish`` (when batching is not available).

        ``wait=False`` hands the frame to the connection's writer and waits for the confirm at
        once, instead of holding the channel lock until the socket took the bytes.
        """
        await channel.basic_publish(
            outgoing.body,
            exchange=EXCHANGE,
            routing_key=outgoing.routing_key,
            properties=outgoing.properties,
            mandatory=False,
            wait=False,
        )

    def _count_published(self, event_type: str) -> None:
        child = self._published.get(event_type)
        if child is None:
            child = self._published[event_type] = EVENTS_PUBLISHED.labels(event_type)
        child.inc()

    async def _send_to_queue(self, queue_name: str, message: aio_pika.Message) -> None:
        """Publish (with confirm) straight to one queue through the default exchange."""
        channel = self._publish_channel
        if channel is None:
            raise PublishError("The bus is closed.")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await channel.default_exchange.publish(
                    message, routing_key=queue_name, mandatory=False
                )
        except Exception as exc:
            raise PublishError(
                f"RabbitMQ did not confirm the copy to {queue_name}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- consuming -------------------------------------------------------------------------

    async def subscribe(
        self,
        group: str,
        patterns: Sequence[str],
        handler: EventHandler,
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 16,
    ) -> None:
        connection = self._connection
        if connection is None or self._closing:
            raise RuntimeError("The bus is not started; call start() before subscribing.")
        if not patterns:
            raise ValueError("A subscription needs at least one routing pattern.")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1.")
        policy = retry or RetryPolicy()
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        await channel.declare_exchange(EXCHANGE, ExchangeType.TOPIC, durable=True)
        await channel.declare_queue(
            dead_letter_queue(group), durable=True, arguments=_DLQ_ARGUMENTS
        )
        queue = await channel.declare_queue(
            group, durable=True, arguments=group_queue_arguments(group, self._delivery_limit)
        )
        for pattern in patterns:
            await queue.bind(EXCHANGE, routing_key=pattern)
        subscription = _Subscription(
            group=group, handler=handler, retry=policy, channel=channel, queue=queue
        )
        for attempt in range(1, policy.max_attempts):
            delay_ms = max(1, round(policy.delay_after(attempt) * 1000))
            name = retry_queue(group, delay_ms)
            await channel.declare_queue(
                name, durable=True, arguments=retry_queue_arguments(group, delay_ms)
            )
            subscription.retry_queues[attempt] = name
        subscription.consumer_tag = await queue.consume(partial(self._on_message, subscription))
        self._subscriptions.append(subscription)

    async def _on_message(
        self, subscription: _Subscription, message: AbstractIncomingMessage
    ) -> None:
        # aio-pika runs each delivery in its own task; closing the channel cancels it.
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(subscription, message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _process(self, subscription: _Subscription, message: AbstractIncomingMessage) -> None:
        group = subscription.group
        headers: dict[str, Any] = dict(message.headers or {})
        attempt = _header_int(headers, ATTEMPT_HEADER, 1)
        try:
            envelope = EventEnvelope.from_bytes(message.body)
        except ValidationError as exc:
            _log.error(
                "event_undecodable", group=group, message_id=message.message_id, error=str(exc)
            )
            await self._park(subscription, message, headers, attempt, f"Undecodable: {exc}")
            return
        try:
            await run_handler(
                subscription.handler,
                envelope,
                group,
                attempt=attempt,
                max_attempts=subscription.retry.max_attempts,
            )
        except Exception as exc:
            last = attempt >= subscription.retry.max_attempts
            _log.warning(
                "event_handler_failed",
                group=group,
                event_id=envelope.id,
                event_type=envelope.type,
                attempt=attempt,
                max_attempts=subscription.retry.max_attempts,
                will_retry=not last,
                correlation_id=envelope.correlation_id,
                **failure_log_fields(exc),
            )
            if last:
                await self._park(subscription, message, headers, attempt, describe_error(exc))
            else:
                await self._schedule_retry(subscription, message, headers, attempt)
            return
        if await self._ack(subscription, message):
            child = subscription.consumed.get(envelope.type)
            if child is None:
                child = subscription.consumed[envelope.type] = EVENTS_CONSUMED.labels(
                    group, envelope.type
                )
            child.inc()

    def _copy(
        self, message: AbstractIncomingMessage, headers: Mapping[str, Any], **extra: Any
    ) -> aio_pika.Message:
        kept = {k: v for k, v in headers.items() if k not in _BROKER_HEADERS}
        kept.update(extra)
        return aio_pika.Message(
            message.body,
            headers=kept,
            content_type=message.content_type or _JSON,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            type=message.type,
            app_id=message.app_id,
        )

    async def _schedule_retry(
        self,
        subscription: _Subscription,
        message: AbstractIncomingMessage,
        headers: Mapping[str, Any],
        attempt: int,
    ) -> None:
        target = subscription.retry_queues[attempt]
        try:
            await self._send_to_queue(
                target, self._copy(message, headers, **{ATTEMPT_HEADER: attempt + 1})
            )
        except PublishError as exc:
            # The copy is not safe, so the original must stay: hand it back to the broker.
            _log.error("event_retry_not_scheduled", group=subscription.group, error=str(exc))
            await self._requeue(subscription, message)
            return
        if await self._ack(subscription, message):
            EVENTS_RETRIED.labels(subscription.group, message.type or "").inc()

    async def _park(
        self,
        subscription: _Subscription,
        message: AbstractIncomingMessage,
        headers: Mapping[str, Any],
        attempt: int,
        error: str,
    ) -> None:
        copy = self._copy(
            message,
            headers,
            **{
                ATTEMPT_HEADER: attempt,
                ERROR_HEADER: error,
                DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
            },
        )
        try:
            await self._send_to_queue(dead_letter_queue(subscription.group), copy)
        except PublishError as exc:
            _log.error("event_not_dead_lettered", group=subscription.group, error=str(exc))
            await self._requeue(subscription, message)
            return
        if await self._ack(subscription, message):
            EVENTS_DEAD_LETTERED.labels(subscription.group, message.type or "").inc()

    async def _ack(self, subscription: _Subscription, message: AbstractIncomingMessage) -> bool:
        """Ack (coalesced with the acks of this loop turn); False if it could not be sent, in
        which case the broker redelivers the event."""
        try:
            channel = message.channel
            tag = message.delivery_tag
            if tag is None:
                raise aiormq.exceptions.ChannelInvalidStateError("no delivery tag")
        except Exception as exc:
            _log.warning(
                "event_settle_failed", ack=True, message_id=message.message_id, error=str(exc)
            )
            return False
        return await subscription.acks.ack(channel, tag)

    async def _requeue(self, subscription: _Subscription, message: AbstractIncomingMessage) -> None:
        """Nack for redelivery. On a dead channel the broker requeues the event anyway."""
        try:
            channel = message.channel
            await message.nack(requeue=True)
        except Exception as exc:
            _log.warning(
                "event_settle_failed", ack=False, message_id=message.message_id, error=str(exc)
            )
            return
        if message.delivery_tag is not None:
            subscription.acks.settled(channel, message.delivery_tag)

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        """Browse ``<group>.dlq`` without consuming: get without ack, then requeue.

        A quorum queue puts requeued messages at its back, so the browse reads every parked
        message (up to :data:`BROWSE_ALL_MAX`) and returns them all: the queue ends in its
        original order. Beyond that many only ``limit`` are read, and the order rotates.
        """
        channel = await self._temporary_channel()
        letters: list[DeadLetter] = []
        read = 0
        try:
            queue = await channel.declare_queue(
                dead_letter_queue(group), durable=True, arguments=_DLQ_ARGUMENTS, robust=False
            )
            waiting = queue.declaration_result.message_count or 0
            if waiting > BROWSE_ALL_MAX:
                _log.warning("dead_letter_browse_partial", group=group, parked=waiting)
            to_read = waiting if waiting <= BROWSE_ALL_MAX else min(waiting, limit)
            for _ in range(to_read):
                message = await queue.get(no_ack=False, fail=False, timeout=self._publish_timeout_s)
                if message is None:
                    break
                read += 1
                if len(letters) < limit:
                    letter = self._dead_letter(group, message)
                    if letter is not None:
                        letters.append(letter)
        finally:
            # Closing the channel requeues every message read above, in order.
            with contextlib.suppress(Exception):
                await channel.close()
        await self._await_requeued(dead_letter_queue(group), read)
        return letters

    async def _await_requeued(self, queue_name: str, count: int) -> None:
        """Wait (bounded) until the broker has put ``count`` browsed messages back.

        The broker applies the requeue after the channel is closed; without this wait a browse
        or replay right after a browse could see an empty queue.
        """
        channel = self._admin_channel
        if count == 0 or channel is None:
            return
        deadline = asyncio.get_running_loop().time() + 5.0
        while True:
            queue = await channel.declare_queue(
                queue_name, durable=True, arguments=_DLQ_ARGUMENTS, robust=False
            )
            ready = queue.declaration_result.message_count or 0
            if ready >= count or asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.01)

    @staticmethod
    def _dead_letter(group: str, message: AbstractIncomingMessage) -> DeadLetter | None:
        headers: dict[str, Any] = dict(message.headers or {})
        try:
            envelope = EventEnvelope.from_bytes(message.body)
        except ValidationError:
            _log.error("dead_letter_undecodable", group=group, message_id=message.message_id)
            return None
        error = _header_text(headers.get(ERROR_HEADER))
        if error is None:
            reason = _death_reason(headers) or "unknown"
            error = f"Dead-lettered by the broker ({reason}), e.g. a consumer kept crashing."
        dead_at_text = _header_text(headers.get(DEAD_AT_HEADER))
        try:
            dead_at = datetime.fromisoformat(dead_at_text) if dead_at_text else None
        except ValueError:
            dead_at = None
        return DeadLetter(
            envelope=envelope,
            group=group,
            attempts=_header_int(headers, ATTEMPT_HEADER, 1),
            error=error,
            dead_at=dead_at or message.timestamp or datetime.now(UTC),
        )

    async def replay_dead_letters(self, group: str) -> int:
        """Move every parked event back to ``<group>`` with a fresh attempt count."""
        channel = await self._temporary_channel()
        replayed = 0
        try:
            await channel.declare_queue(
                group,
                durable=True,
                arguments=group_queue_arguments(group, self._delivery_limit),
                robust=False,
            )
            queue = await channel.declare_queue(
                dead_letter_queue(group), durable=True, arguments=_DLQ_ARGUMENTS, robust=False
            )
            # Bounded by what is parked now, so events that fail again are not replayed twice.
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False, timeout=self._publish_timeout_s)
                if message is None:
                    break
                headers = {
                    k: v
                    for k, v in dict(message.headers or {}).items()
                    if k not in (ERROR_HEADER, DEAD_AT_HEADER)
                }
                await self._send_to_queue(
                    group, self._copy(message, headers, **{ATTEMPT_HEADER: 1})
                )
                await message.ack()
                replayed += 1
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return replayed

    async def _temporary_channel(self) -> AbstractRobustChannel:
        connection = self._connection
        if connection is None or self._closing:
            raise RuntimeError("The bus is not started.")
        return await connection.channel(publisher_confirms=False)

    # -- health and lag --------------------------------------------------------------------

    async def ping(self) -> None:
        connection = self._connection
        if connection is None or self._closing or connection.is_closed:
            raise ConnectionError("RabbitMQ is not connected.")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._refresh_lag()
        except Exception as exc:
            raise ConnectionError(f"RabbitMQ did not answer: {type(exc).__name__}: {exc}") from exc

    async def _refresh_lag(self) -> None:
        channel = self._admin_channel
        if channel is None:
            raise ConnectionError("RabbitMQ is not connected.")
        for group in {s.group for s in self._subscriptions}:
            queue = await channel.declare_queue(
                group,
                durable=True,
                arguments=group_queue_arguments(group, self._delivery_limit),
                robust=False,
            )
            CONSUMER_LAG.labels(group).set(queue.declaration_result.message_count or 0)
            parked = await channel.declare_queue(
                dead_letter_queue(group), durable=True, arguments=_DLQ_ARGUMENTS, robust=False
            )
            DEAD_LETTERS_WAITING.labels(group).set(parked.declaration_result.message_count or 0)

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(self._lag_interval_s)
            try:
                await self._refresh_lag()
            except Exception as exc:
                _log.info("consumer_lag_unavailable", error=str(exc))
