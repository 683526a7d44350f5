"""Event bus benchmark: throughput and end-to-end latency of each adapter, in one run.

    uv run python bench/bench_bus.py [--messages 20000] [--rate 500] [--seconds 10] [--rounds 1]

* throughput: publish ``--messages`` events with publisher confirms (many in flight, each
  awaited) while one consumer group acks them; messages/s until the last one is handled.
* latency: publish at a steady ``--rate`` for ``--seconds``; time from the publish call to the
  start of the handler, p50/p95/p99.

RabbitMQ runs in variants side by side, alternating for ``--rounds`` rounds so a busy neighbour
hurts both alike: ``baseline`` (the adapter as it was before the batching work: aio-pika's
``Exchange.publish`` per event, each holding the channel lock until its frame is written, and
one ``basic.ack`` per event), ``current`` (frame batches per loop turn, coalesced acks) with
``publish`` called concurrently, and ``current`` with ``publish_many`` (the outbox relay's
call). Then smaller sweeps: prefetch, the cost per event of the idempotency stores, of the
envelope's JSON and of the consumer span.

The RabbitMQ part runs when ``KGLAB_RABBITMQ_URL`` is set, in a virtual host of its own (made and
removed through ``KGLAB_RABBITMQ_MANAGEMENT_URL`` when set). With ``pika`` importable it also
times pika's BlockingConnection publishing with confirms, one message at a time, for the ADR.
Prints a table and writes ``bench/results/bus.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from machine import describe

from kglab_shared.bus.memory import InProcessBus
from kglab_shared.bus.port import EventBus, PublishError
from kglab_shared.events import EventEnvelope
from kglab_shared.logging import configure_logging

RESULTS = Path(__file__).parent / "results" / "bus.json"
THROUGHPUT_CAP_S = 60.0
IN_FLIGHT = 256
PREFETCH = 256


def rabbitmq_bus(variant: str, url: str, source: str) -> EventBus:
    """The RabbitMQ adapter as it is (``current``) or as it was (``baseline``)."""
    from kglab_shared.bus.rabbitmq import RabbitMQBus

    if variant == "current":
        return RabbitMQBus(url, source)
    if variant != "baseline":
        raise ValueError(variant)

    class BaselineRabbitMQBus(RabbitMQBus):
        """The publish and ack paths of the adapter before the batching work (commit 7233af7):
        aio-pika's ``Exchange.publish`` per event (aiormq holds the channel lock until the frame
        is written, then the event waits for its confirm), the relay's publish-one-at-a-time,
        and one ``basic.ack`` per handled event. The consumer span is skipped in both variants
        when tracing is off; its cost is measured on its own (``dispatch``)."""

        async def publish(self, event: EventEnvelope) -> None:
            import aio_pika
            from aio_pika.abc import DeliveryMode

            from kglab_shared.bus.dispatch import prepare_for_publish

            exchange = self._exchange
            if exchange is None or self._closing:
                raise PublishError("The bus is not started; call start() before publishing.")
            event = prepare_for_publish(event)
            message = aio_pika.Message(
                event.to_bytes(),
                headers=dict(event.trace),
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                message_id=event.id,
                correlation_id=event.correlation_id,
                timestamp=event.time,
                type=event.type,
                app_id=self.source,
            )
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    await exchange.publish(message, routing_key=event.type, mandatory=False)
            except Exception as exc:
                raise PublishError(f"not confirmed: {exc}") from exc

        async def publish_many(self, events: Any) -> None:
            for sent, event in enumerate(events):
                try:
                    await self.publish(event)
                except PublishError as exc:
                    raise PublishError(str(exc), confirmed=sent) from exc

        async def _ack(self, subscription: Any, message: Any) -> bool:
            try:
                await message.ack()
            except Exception:
                return False
            return True

    return BaselineRabbitMQBus(url, source)


def run_loop(main: Any) -> Any:
    """Run on uvloop, the event loop uvicorn picks for every service when it is installed (it
    is, through ``uvicorn[standard]``): the bus is measured on the loop it runs on."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(main)
    return uvloop.run(main)


def machine(load_at_start: float) -> dict[str, Any]:
    # The load average says whether something else was competing for the CPUs during the run.
    return {
        "nproc": os.cpu_count(),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        **describe(),
    }


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class Consumed:
    """What a consumer saw: how many events, when the last one was handled, their latencies."""

    handled: int = 0
    last_at: float | None = None
    latencies: list[float] = field(default_factory=list)
    #: CPU seconds the consumer process used (only when it is a process of its own).
    cpu_s: float | None = None


def broker_cpu_seconds() -> float | None:
    """CPU time used so far by a RabbitMQ node on this machine (beam.smp), if there is one."""
    total, found = 0.0, False
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(beam.smp)" not in text:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        found = True
    return total if found else None


async def consume(
    bus: EventBus,
    group: str,
    expected: int,
    timeout_s: float,
    ready: Callable[[], None],
    prefetch: int = PREFETCH,
) -> Consumed:
    """Subscribe ``group`` and handle events until ``expected`` arrived or ``timeout_s`` passed.

    Times are ``time.monotonic()`` (CLOCK_MONOTONIC), comparable between processes.
    """
    seen = Consumed()
    all_handled = asyncio.Event()

    async def handle(envelope: EventEnvelope) -> None:
        now = time.monotonic()
        seen.handled += 1
        seen.last_at = now
        sent = envelope.data.get("sent")
        if sent is not None:
            seen.latencies.append(now - float(sent))
        if seen.handled >= expected:
            all_handled.set()

    await bus.subscribe(group, [f"{group}.#"], handle, prefetch=prefetch)
    ready()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_handled.wait(), timeout_s)
    return seen


def consumer_process_main(
    url: str,
    variant: str,
    prefetch: int,
    group: str,
    expected: int,
    timeout_s: float,
    pipe: Any,
) -> None:
    """Entry point of the consumer process: a separate service, as in a deployment."""

    configure_logging("kglab-bench-consumer", "INFO")

    async def run() -> Consumed:
        bus = rabbitmq_bus(variant, url, "kglab/bench-consumer")
        await bus.start()
        try:
            return await consume(
                bus, group, expected, timeout_s, lambda: pipe.send("ready"), prefetch
            )
        finally:
            await bus.close()

    started_cpu = time.process_time()
    seen = run_loop(run())
    pipe.send((seen.handled, seen.last_at, seen.latencies, time.process_time() - started_cpu))


class ConsumerSide:
    """Runs the consuming group in this process or in a separate one."""

    def __init__(
        self,
        bus: EventBus,
        url: str | None,
        separate_process: bool,
        variant: str = "current",
        prefetch: int = PREFETCH,
    ) -> None:
        self._bus = bus
        self._url = url
        self.separate_process = separate_process
        self.variant = variant
        self.prefetch = prefetch

    @asynccontextmanager
    async def running(
        self, group: str, expected: int, timeout_s: float
    ) -> AsyncIterator[Callable[[], Awaitable[Consumed]]]:
        if not self.separate_process:
            ready = asyncio.Event()
            task = asyncio.create_task(
                consume(self._bus, group, expected, timeout_s, ready.set, self.prefetch)
            )
            await asyncio.wait_for(ready.wait(), 30)

            async def result() -> Consumed:
                return await task

            yield result
            return
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=consumer_process_main,
            args=(self._url, self.variant, self.prefetch, group, expected, timeout_s, child),
            daemon=True,
        )
        process.start()
        try:
            if not await asyncio.to_thread(parent.poll, 60) or parent.recv() != "ready":
                raise RuntimeError("The consumer process did not start.")

            async def result() -> Consumed:
                if not await asyncio.to_thread(parent.poll, timeout_s + 30):
                    raise RuntimeError("The consumer process did not report.")
                handled, last_at, latencies, cpu_s = parent.recv()
                return Consumed(handled, last_at, latencies, cpu_s)

            yield result
        finally:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.terminate()
                await asyncio.to_thread(process.join, 10)


async def measure_throughput(
    bus: EventBus,
    consumers: ConsumerSide,
    group: str,
    messages: int,
    *,
    broker: bool,
    batch: bool = False,
) -> dict[str, Any]:
    """``batch``: ``publish_many`` of IN_FLIGHT events at a time, as the outbox relay calls it;
    else IN_FLIGHT concurrent ``publish`` calls, as concurrent requests of a service do."""
    window = asyncio.Semaphore(IN_FLIGHT)
    failures = 0

    async def publish_batch(first: int) -> None:
        nonlocal failures
        events = [
            EventEnvelope(type=f"{group}.tick", source="kglab/bench", data={"i": i})
            for i in range(first, min(messages, first + IN_FLIGHT))
        ]
        try:
            await bus.publish_many(events)
        except PublishError as exc:
            failures += len(events) - exc.confirmed

    async def publish_one(i: int) -> None:
        nonlocal failures
        try:
            await bus.publish(
                EventEnvelope(type=f"{group}.tick", source="kglab/bench", data={"i": i})
            )
        except Exception:
            failures += 1
        finally:
            window.release()

    async with consumers.running(group, messages, THROUGHPUT_CAP_S) as result:
        broker_cpu_at_start = broker_cpu_seconds() if broker else None
        cpu_at_start = time.process_time()
        started = time.monotonic()
        deadline = started + THROUGHPUT_CAP_S
        tasks: list[asyncio.Task[None]] = []
        attempted = 0
        if batch:
            for first in range(0, messages, IN_FLIGHT):
                if time.monotonic() > deadline:
                    break
                await publish_batch(first)
                attempted = min(messages, first + IN_FLIGHT)
        else:
            for i in range(messages):
                if time.monotonic() > deadline:
                    break
                await window.acquire()
                tasks.append(asyncio.create_task(publish_one(i)))
            await asyncio.gather(*tasks)
            attempted = len(tasks)
        published_s = time.monotonic() - started
        seen = await result()
        publisher_cpu_s = time.process_time() - cpu_at_start
        broker_cpu_at_end = broker_cpu_seconds() if broker else None
    total_s = (seen.last_at or time.monotonic()) - started
    per_message = 1e6 / max(1, seen.handled)
    cpu = {
        # In one process the publisher's CPU includes the consumer's.
        "publisher_us_per_msg": round(publisher_cpu_s * per_message),
        "consumer_us_per_msg": None if seen.cpu_s is None else round(seen.cpu_s * per_message),
        "broker_us_per_msg": None
        if broker_cpu_at_start is None or broker_cpu_at_end is None
        else round((broker_cpu_at_end - broker_cpu_at_start) * per_message),
    }
    spent = [v for v in cpu.values() if v is not None]
    if spent and (not consumers.separate_process or cpu["consumer_us_per_msg"] is not None):
        # What all CPUs could sustain if nothing else ran on them: a bound, not a measurement.
        cpu["all_cpus_bound_msgs_per_s"] = round((os.cpu_count() or 1) * 1e6 / sum(spent))
    return {
        "messages": messages,
        "publish_call": "publish_many" if batch else "publish",
        "published": attempted - failures,
        "publish_failures": failures,
        "handled": seen.handled,
        "publish_seconds": round(published_s, 3),
        "seconds": round(total_s, 3),
        "publish_msgs_per_s": round((attempted - failures) / published_s, 1),
        "msgs_per_s": round(seen.handled / total_s, 1),
        "capped": seen.handled < messages,
        "in_flight_publishes": IN_FLIGHT,
        "prefetch": consumers.prefetch,
        "cpu": cpu,
    }


async def measure_latency(
    bus: EventBus, consumers: ConsumerSide, group: str, rate: float, seconds: float
) -> dict[str, Any]:
    count = int(rate * seconds)
    failures = 0

    async def publish_one(i: int) -> None:
        nonlocal failures
        event = EventEnvelope(
            type=f"{group}.tick",
            source="kglab/bench",
            data={"i": i, "sent": time.monotonic()},
        )
        try:
            await bus.publish(event)
        except Exception:
            failures += 1

    async with consumers.running(group, count, seconds + 30.0) as result:
        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for i in range(count):
            # Paced by the clock, not by the previous confirm, so slow confirms show as latency.
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(publish_one(i)))
        await asyncio.gather(*tasks)
        achieved = count / (time.monotonic() - started)
        seen = await result()
    ordered = sorted(seen.latencies)
    to_ms = 1000.0
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": count - failures,
        "received": len(ordered),
        "achieved_rate_per_s": round(achieved, 1),
        "p50_ms": round(percentile(ordered, 0.50) * to_ms, 2),
        "p95_ms": round(percentile(ordered, 0.95) * to_ms, 2),
        "p99_ms": round(percentile(ordered, 0.99) * to_ms, 2),
        "max_ms": round(ordered[-1] * to_ms, 2) if ordered else None,
        "mean_ms": round(statistics.fmean(ordered) * to_ms, 2) if ordered else None,
    }


async def run_adapter(
    name: str,
    make_bus: Callable[[], EventBus],
    args: argparse.Namespace,
    *,
    url: str | None = None,
    separate_process: bool = False,
    variant: str = "current",
    batch: bool = False,
    latency: bool = True,
    prefetch: int = PREFETCH,
    messages: int | None = None,
) -> dict[str, Any]:
    bus = make_bus()
    await bus.start()
    consumers = ConsumerSide(bus, url, separate_process, variant, prefetch)
    tag = uuid.uuid4().hex[:6]
    messages = messages or args.messages
    result: dict[str, Any] = {
        "adapter": name,
        "topology": "consumer in a second process" if separate_process else "one process",
    }
    try:
        print(f"[{name}] throughput: {messages} messages, prefetch {prefetch} ...", flush=True)
        result["throughput"] = await measure_throughput(
            bus,
            consumers,
            f"bench_throughput_{tag}",
            messages,
            broker=name != "memory",
            batch=batch,
        )
        if latency:
            print(f"[{name}] latency: {args.rate}/s for {args.seconds}s ...", flush=True)
            result["latency"] = await measure_latency(
                bus, consumers, f"bench_latency_{tag}", args.rate, args.seconds
            )
    finally:
        await bus.close()
    return result


async def idempotency_costs(events: int) -> list[dict[str, Any]]:
    """has + mark per new event, has per duplicate, for each ProcessedEvents store here."""
    import tempfile

    from sqlalchemy.ext.asyncio import create_async_engine

    from kglab_shared.bus.idempotency import (
        InMemoryProcessedEvents,
        ProcessedEvents,
        RedisProcessedEvents,
        SqlProcessedEvents,
        idempotent,
    )

    async def noop(_: EventEnvelope) -> None:
        return None

    async def measure(name: str, store: ProcessedEvents) -> dict[str, Any]:
        group = f"bench_{uuid.uuid4().hex[:8]}"
        handler = idempotent(noop, store, group)
        envelopes = [
            EventEnvelope(type="bench.idem", source="kglab/bench", data={}) for _ in range(events)
        ]
        started = time.perf_counter()
        for envelope in envelopes:
            await handler(envelope)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        for envelope in envelopes:
            await handler(envelope)
        duplicate_s = time.perf_counter() - started
        return {
            "store": name,
            "events": events,
            "new_event_us": round(first_s / events * 1e6),
            "duplicate_us": round(duplicate_s / events * 1e6),
        }

    rows = [await measure("memory", InMemoryProcessedEvents())]
    redis_url = os.environ.get("KGLAB_REDIS_URL")
    if redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        try:
            rows.append(await measure("redis", RedisProcessedEvents(client, prefix="kglab:bench:")))
        finally:
            await client.delete(*[k async for k in client.scan_iter("kglab:bench:*")] or ["-"])
            await client.aclose()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_async_engine(f"sqlite+aiosqlite:///{folder}/processed.sqlite")
        try:
            store = SqlProcessedEvents(engine)
            await store.create_table()
            rows.append(await measure("sqlite", store))
        finally:
            await engine.dispose()
    postgres_url = os.environ.get("KGLAB_POSTGRES_URL")
    if postgres_url:
        import asyncpg

        database = f"kglab_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
            parts = urlsplit(postgres_url)
            url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{database}", "", ""))
            engine = create_async_engine(url)
            try:
                store = SqlProcessedEvents(engine)
                await store.create_table()
                rows.append(await measure("postgresql", store))
            finally:
                await engine.dispose()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
            await admin.close()
    return rows


async def envelope_costs(events: int) -> dict[str, Any]:
    """CPU per event of the envelope's JSON and of the consumer span, single-threaded."""
    from opentelemetry import trace

    from kglab_shared.bus.dispatch import _run_in_span, run_handler

    envelope = EventEnvelope(
        type="document.stored",
        source="kglab/bench",
        correlation_id="corr",
        data={"document_id": "d" * 32, "owner_id": "u" * 32, "title": "A title", "chunks": []},
    )
    body = envelope.to_bytes()
    started = time.perf_counter()
    for _ in range(events):
        envelope.to_bytes()
    encode = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(events):
        EventEnvelope.from_bytes(body)
    decode = time.perf_counter() - started

    async def noop(_: EventEnvelope) -> None:
        return None

    # One JSON log line per event (what an info line per duplicate cost), rendered as the
    # services render them, written to /dev/null.
    import structlog

    with open(os.devnull, "w") as devnull:
        logger = structlog.wrap_logger(
            structlog.PrintLogger(devnull),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
        )
        started = time.perf_counter()
        for _ in range(events):
            logger.info("event_duplicate_skipped", group="g", event_id=envelope.id, type="t")
        log_line = time.perf_counter() - started

    started = time.perf_counter()
    for _ in range(events):
        await run_handler(noop, envelope, "bench")
    fast = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(events):
        await _run_in_span(noop, envelope, "bench")
    with_span = time.perf_counter() - started
    return {
        "events": events,
        "body_bytes": len(body),
        "encode_us": round(encode / events * 1e6, 1),
        "decode_us": round(decode / events * 1e6, 1),
        "run_handler_us": round(fast / events * 1e6, 1),
        "run_handler_with_span_us": round(with_span / events * 1e6, 1),
        "json_log_line_us": round(log_line / events * 1e6, 1),
        "tracing": "off"
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        else "on",
    }


@asynccontextmanager
async def rabbitmq_vhost(url: str) -> AsyncIterator[tuple[str, str | None]]:
    """A throwaway virtual host when the management API is known, else the URL's own."""
    management = os.environ.get("KGLAB_RABBITMQ_MANAGEMENT_URL")
    if not management:
        yield url, None
        return
    parts = httpx.URL(management)
    vhost = f"kglab_bench_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(
        base_url=f"{parts.scheme}://{parts.host}:{parts.port or 15672}",
        auth=(parts.username, parts.password),
        timeout=10.0,
    ) as client:
        (await client.put(f"/api/vhosts/{vhost}")).raise_for_status()
        (
            await client.put(
                f"/api/permissions/{vhost}/{quote(parts.username, safe='')}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            )
        ).raise_for_status()
        overview = (await client.get("/api/overview")).json()
        amqp = urlsplit(url)
        try:
            yield (
                urlunsplit((amqp.scheme, amqp.netloc, f"/{vhost}", "", "")),
                overview.get("rabbitmq_version"),
            )
        finally:
            await client.delete(f"/api/vhosts/{vhost}")


def pika_blocking_confirms(url: str, messages: int) -> dict[str, Any] | None:
    """pika's BlockingConnection with confirms: one message at a time, the loop blocked."""
    try:
        import pika
    except ImportError:
        return None
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = f"bench_pika_{uuid.uuid4().hex[:8]}"
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        body = EventEnvelope(type="bench.pika", source="kglab/bench", data={"i": 0}).to_bytes()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        timings: list[float] = []
        started = time.perf_counter()
        for _ in range(messages):
            if time.perf_counter() - started > THROUGHPUT_CAP_S:
                break
            before = time.perf_counter()
            channel.basic_publish("", queue, body, properties, mandatory=True)
            timings.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
        channel.queue_delete(queue)
    finally:
        connection.close()
    timings.sort()
    return {
        "adapter": "pika BlockingConnection (publish with confirms, sequential)",
        "published": len(timings),
        "seconds": round(elapsed, 3),
        "publish_msgs_per_s": round(len(timings) / elapsed, 1),
        "confirm_p50_ms": round(percentile(timings, 0.5) * 1000, 3),
        "confirm_p99_ms": round(percentile(timings, 0.99) * 1000, 3),
        "note": "each publish blocks the thread (and an asyncio event loop on it) until confirmed",
    }


async def bus_publish_only(
    url: str, messages: int, variant: str = "current", batch: bool = False
) -> dict[str, Any]:
    """The bus's publish alone (IN_FLIGHT at a time, or publish_many of IN_FLIGHT) into a
    bound quorum queue; CPU per event of this process."""
    import aio_pika

    name = f"bench_publish_{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    bus = rabbitmq_bus(variant, url, "kglab/bench")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await bus.start()
        await queue.bind("kglab.events", routing_key=f"{name}.#")
        window = asyncio.Semaphore(IN_FLIGHT)

        async def publish_one(i: int) -> None:
            try:
                await bus.publish(
                    EventEnvelope(type=f"{name}.tick", source="kglab/bench", data={"i": i})
                )
            finally:
                window.release()

        started = time.perf_counter()
        cpu_at_start = time.process_time()
        tasks: list[asyncio.Task[None]] = []
        sent = 0
        for first in range(0, messages, IN_FLIGHT if batch else 1):
            if time.perf_counter() - started > THROUGHPUT_CAP_S:
                break
            if batch:
                last = min(messages, first + IN_FLIGHT)
                await bus.publish_many(
                    [
                        EventEnvelope(type=f"{name}.tick", source="kglab/bench", data={"i": i})
                        for i in range(first, last)
                    ]
                )
                sent = last
            else:
                await window.acquire()
                tasks.append(asyncio.create_task(publish_one(first)))
                sent += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_at_start
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await bus.close()
        await connection.close()
    call = f"publish_many({IN_FLIGHT})" if batch else f"publish ({IN_FLIGHT} in flight)"
    return {
        "adapter": f"{variant} {call}",
        "published": sent,
        "seconds": round(elapsed, 3),
        "publish_msgs_per_s": round(sent / elapsed, 1),
        "publisher_us_per_msg": round(cpu_s / max(1, sent) * 1e6),
    }


async def aio_pika_sequential_confirms(url: str, messages: int) -> dict[str, Any]:
    """aio-pika publishing one message at a time, each confirm awaited before the next."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue_name = f"bench_seq_{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = EventEnvelope(type="bench.seq", source="kglab/bench", data={"i": 0}).to_bytes()
        started = time.perf_counter()
        sent = 0
        for _ in range(messages):
            if time.perf_counter() - started > THROUGHPUT_CAP_S:
                break
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )
            sent += 1
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return {
        "adapter": "aio-pika (publish with confirms, sequential)",
        "published": sent,
        "seconds": round(elapsed, 3),
        "publish_msgs_per_s": round(sent / elapsed, 1),
    }


def print_table(results: list[dict[str, Any]], extras: list[dict[str, Any]]) -> None:
    header = (
        f"{'adapter':<34} {'pub msg/s':>9} {'e2e msg/s':>9} {'cpu us/msg pub+con+broker':>26} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        t, lat = r["throughput"], r.get("latency")
        cpu = t["cpu"]
        spent = "+".join(
            "-" if cpu.get(k) is None else str(cpu[k])
            for k in ("publisher_us_per_msg", "consumer_us_per_msg", "broker_us_per_msg")
        )
        latency = (
            f"{lat['p50_ms']:>7.2f} {lat['p99_ms']:>7.2f} {lat['max_ms'] or 0:>7.2f}"
            if lat
            else f"{'':>7} {'':>7} {'':>7}"
        )
        label = f"{r['adapter']} (p{t['prefetch']})" + (f" #{r['round']}" if "round" in r else "")
        print(
            f"{label:<34} {t['publish_msgs_per_s']:>9,.0f} {t['msgs_per_s']:>9,.0f} "
            f"{spent:>26} {latency}"
        )
    for extra in extras:
        cpu = extra.get("publisher_us_per_msg")
        note = f", {cpu} us CPU/msg" if cpu is not None else ""
        print(f"{extra['adapter']}: {extra['publish_msgs_per_s']:,.0f} msg/s{note}")
    print()


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each current variant against the baseline of the same round."""
    out = []
    for base in (r for r in results if r["adapter"] == "rabbitmq baseline"):
        for other in results:
            if other.get("round") != base.get("round") or not other["adapter"].startswith(
                "rabbitmq current"
            ):
                continue
            b, o = base["throughput"], other["throughput"]
            row: dict[str, Any] = {
                "round": base.get("round"),
                "variant": other["adapter"],
                "e2e_msgs_per_s_ratio": round(o["msgs_per_s"] / b["msgs_per_s"], 2),
                "publisher_cpu_ratio": round(
                    o["cpu"]["publisher_us_per_msg"] / b["cpu"]["publisher_us_per_msg"], 2
                ),
            }
            for side in ("consumer_us_per_msg", "broker_us_per_msg"):
                if o["cpu"].get(side) and b["cpu"].get(side):
                    row[side.replace("_us_per_msg", "_cpu_ratio")] = round(
                        o["cpu"][side] / b["cpu"][side], 2
                    )
            if "latency" in other and "latency" in base:
                row["p99_ms"] = [base["latency"]["p99_ms"], other["latency"]["p99_ms"]]
                row["p50_ms"] = [base["latency"]["p50_ms"], other["latency"]["p50_ms"]]
            out.append(row)
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sweep-messages", type=int, default=5_000)
    parser.add_argument("--sequential-messages", type=int, default=2_000)
    parser.add_argument("--idempotency-events", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (0 < args.messages <= 1_000_000 and 0 < args.rate <= 100_000 and args.seconds <= 120):
        parser.error("keep --messages ≤ 1,000,000, --rate ≤ 100,000 and --seconds ≤ 120")
    if not 1 <= args.rounds <= 5:
        parser.error("keep --rounds between 1 and 5")

    configure_logging("kglab-bench", "INFO")  # as a service: debug lines cost nothing
    load_at_start = os.getloadavg()[0]
    results = [await run_adapter("memory", lambda: InProcessBus("kglab/bench"), args)]
    extras: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    rabbitmq_version = None
    url = os.environ.get("KGLAB_RABBITMQ_URL")
    if url:
        async with rabbitmq_vhost(url) as (bench_url, rabbitmq_version):
            for number in range(1, args.rounds + 1):
                for variant, batch in (("baseline", False), ("current", False), ("current", True)):
                    name = f"rabbitmq {variant}" + (" publish_many" if batch else "")
                    run = await run_adapter(
                        name,
                        lambda variant=variant: rabbitmq_bus(variant, bench_url, "kglab/bench"),
                        args,
                        url=bench_url,
                        separate_process=True,
                        variant=variant,
                        batch=batch,
                        latency=not batch,
                    )
                    results.append({**run, "round": number})
            for prefetch in (16, 64, 256):
                sweep.append(
                    await run_adapter(
                        "rabbitmq current",
                        lambda: rabbitmq_bus("current", bench_url, "kglab/bench"),
                        args,
                        url=bench_url,
                        separate_process=True,
                        latency=False,
                        prefetch=prefetch,
                        messages=args.sweep_messages,
                    )
                )
            print("[rabbitmq] publish only: concurrent, batched, sequential ...", flush=True)
            for variant, batch in (("baseline", False), ("current", False), ("current", True)):
                extras.append(
                    await bus_publish_only(bench_url, args.sweep_messages, variant, batch)
                )
            extras.append(await aio_pika_sequential_confirms(bench_url, args.sequential_messages))
            pika_result = await asyncio.to_thread(
                pika_blocking_confirms, bench_url, args.sequential_messages
            )
            if pika_result is not None:
                extras.append(pika_result)
    else:
        print("KGLAB_RABBITMQ_URL is not set: RabbitMQ skipped.", flush=True)

    print("[idempotency stores, envelope JSON, consumer span] ...", flush=True)
    idempotency = await idempotency_costs(args.idempotency_events)
    envelope = await envelope_costs(20_000)

    current = [r for r in results if r["adapter"] == "rabbitmq current"]
    batched = [r for r in results if r["adapter"] == "rabbitmq current publish_many"]
    targets: dict[str, Any] = {
        "rabbitmq_msgs_per_s_min": 2000,
        "rabbitmq_p99_ms_max_at_500_per_s": 50,
        "met": None,
    }
    if current:
        best = max(r["throughput"]["msgs_per_s"] for r in current)
        p99 = min(r["latency"]["p99_ms"] for r in current)
        targets.update(
            publish_msgs_per_s=best,
            publish_many_msgs_per_s=max(r["throughput"]["msgs_per_s"] for r in batched),
            p99_ms=p99,
            met=best >= 2000 and p99 < 50,
        )
    report = {
        "benchmark": "event bus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(load_at_start), "rabbitmq_version": rabbitmq_version},
        "results": results,
        "against_baseline": ratios(results),
        "prefetch_sweep": sweep,
        "publish_only": extras,
        "idempotency_store_per_event": idempotency,
        "envelope_and_span_per_event": envelope,
        "targets": targets,
    }
    print_table(results + sweep, extras)
    for row in report["against_baseline"]:
        print(f"against baseline: {row}")
    for row in idempotency:
        print(f"idempotency: {row}")
    print(f"envelope/span: {envelope}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0 if targets["met"] in (None, True) else 1


if __name__ == "__main__":
    raise SystemExit(run_loop(main()))
