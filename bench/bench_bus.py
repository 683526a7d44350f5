"""Event bus benchmark: throughput and end-to-end latency of each adapter, in one run.

    uv run python bench/bench_bus.py [--messages 20000] [--rate 500] [--seconds 10]

* throughput: publish ``--messages`` events with publisher confirms (many in flight, each
  awaited) while one consumer group acks them; messages/s until the last one is handled.
* latency: publish at a steady ``--rate`` for ``--seconds``; time from the publish call to the
  start of the handler, p50/p95/p99.

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
from kglab_shared.bus.port import EventBus
from kglab_shared.events import EventEnvelope

RESULTS = Path(__file__).parent / "results" / "bus.json"
THROUGHPUT_CAP_S = 60.0
IN_FLIGHT = 256
PREFETCH = 256


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

    await bus.subscribe(group, [f"{group}.#"], handle, prefetch=PREFETCH)
    ready()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_handled.wait(), timeout_s)
    return seen


def consumer_process_main(url: str, group: str, expected: int, timeout_s: float, pipe: Any) -> None:
    """Entry point of the consumer process: a separate service, as in a deployment."""
    from kglab_shared.bus.rabbitmq import RabbitMQBus

    async def run() -> Consumed:
        bus = RabbitMQBus(url, "kglab/bench-consumer")
        await bus.start()
        try:
            return await consume(bus, group, expected, timeout_s, lambda: pipe.send("ready"))
        finally:
            await bus.close()

    started_cpu = time.process_time()
    seen = run_loop(run())
    pipe.send((seen.handled, seen.last_at, seen.latencies, time.process_time() - started_cpu))


class ConsumerSide:
    """Runs the consuming group in this process or in a separate one."""

    def __init__(self, bus: EventBus, url: str | None, separate_process: bool) -> None:
        self._bus = bus
        self._url = url
        self.separate_process = separate_process

    @asynccontextmanager
    async def running(
        self, group: str, expected: int, timeout_s: float
    ) -> AsyncIterator[Callable[[], Awaitable[Consumed]]]:
        if not self.separate_process:
            ready = asyncio.Event()
            task = asyncio.create_task(consume(self._bus, group, expected, timeout_s, ready.set))
            await asyncio.wait_for(ready.wait(), 30)

            async def result() -> Consumed:
                return await task

            yield result
            return
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=consumer_process_main,
            args=(self._url, group, expected, timeout_s, child),
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
    bus: EventBus, consumers: ConsumerSide, group: str, messages: int, *, broker: bool
) -> dict[str, Any]:
    window = asyncio.Semaphore(IN_FLIGHT)
    failures = 0

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
        for i in range(messages):
            if time.monotonic() > deadline:
                break
            await window.acquire()
            tasks.append(asyncio.create_task(publish_one(i)))
        await asyncio.gather(*tasks)
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
        "published": len(tasks) - failures,
        "publish_failures": failures,
        "handled": seen.handled,
        "publish_seconds": round(published_s, 3),
        "seconds": round(total_s, 3),
        "publish_msgs_per_s": round((len(tasks) - failures) / published_s, 1),
        "msgs_per_s": round(seen.handled / total_s, 1),
        "capped": seen.handled < messages,
        "in_flight_publishes": IN_FLIGHT,
        "prefetch": PREFETCH,
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
) -> dict[str, Any]:
    bus = make_bus()
    await bus.start()
    consumers = ConsumerSide(bus, url, separate_process)
    tag = uuid.uuid4().hex[:6]
    try:
        print(f"[{name}] throughput: {args.messages} messages ...", flush=True)
        throughput = await measure_throughput(
            bus, consumers, f"bench_throughput_{tag}", args.messages, broker=name != "memory"
        )
        print(f"[{name}] latency: {args.rate}/s for {args.seconds}s ...", flush=True)
        latency = await measure_latency(
            bus, consumers, f"bench_latency_{tag}", args.rate, args.seconds
        )
    finally:
        await bus.close()
    where = "consumer in a second process" if separate_process else "one process"
    return {"adapter": name, "topology": where, "throughput": throughput, "latency": latency}


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


async def bus_publish_only(url: str, messages: int) -> dict[str, Any]:
    """RabbitMQBus.publish alone, IN_FLIGHT at a time, into a bound quorum queue."""
    import aio_pika

    from kglab_shared.bus.rabbitmq import RabbitMQBus

    name = f"bench_publish_{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    bus = RabbitMQBus(url, "kglab/bench")
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
        tasks: list[asyncio.Task[None]] = []
        for i in range(messages):
            if time.perf_counter() - started > THROUGHPUT_CAP_S:
                break
            await window.acquire()
            tasks.append(asyncio.create_task(publish_one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await bus.close()
        await connection.close()
    return {
        "adapter": f"RabbitMQBus.publish ({IN_FLIGHT} in flight, each confirm awaited)",
        "published": len(tasks),
        "seconds": round(elapsed, 3),
        "publish_msgs_per_s": round(len(tasks) / elapsed, 1),
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
        f"{'adapter':<12} {'publish msg/s':>14} {'e2e msg/s':>10} {'handled':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        t, lat = r["throughput"], r["latency"]
        print(
            f"{r['adapter']:<12} {t['publish_msgs_per_s']:>14,.0f} {t['msgs_per_s']:>10,.0f} "
            f"{t['handled']:>8} {lat['p50_ms']:>8.2f} {lat['p95_ms']:>8.2f} "
            f"{lat['p99_ms']:>8.2f} {lat['max_ms'] or 0:>8.2f}"
        )
    for extra in extras:
        print(f"{extra['adapter']}: {extra['publish_msgs_per_s']:,.0f} msg/s")
    print()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sequential-messages", type=int, default=2_000)
    args = parser.parse_args()
    if not (0 < args.messages <= 1_000_000 and 0 < args.rate <= 100_000 and args.seconds <= 120):
        parser.error("keep --messages ≤ 1,000,000, --rate ≤ 100,000 and --seconds ≤ 120")

    load_at_start = os.getloadavg()[0]
    results = [await run_adapter("memory", lambda: InProcessBus("kglab/bench"), args)]
    extras: list[dict[str, Any]] = []
    rabbitmq_version = None
    url = os.environ.get("KGLAB_RABBITMQ_URL")
    if url:
        from kglab_shared.bus.rabbitmq import RabbitMQBus

        async with rabbitmq_vhost(url) as (bench_url, rabbitmq_version):
            results.append(
                await run_adapter(
                    "rabbitmq",
                    lambda: RabbitMQBus(bench_url, "kglab/bench"),
                    args,
                    url=bench_url,
                    separate_process=True,
                )
            )
            results.append(
                await run_adapter(
                    "rabbitmq-1p", lambda: RabbitMQBus(bench_url, "kglab/bench"), args
                )
            )
            print("[rabbitmq] publish only: concurrent, then sequential ...", flush=True)
            extras.append(await bus_publish_only(bench_url, args.messages))
            extras.append(await aio_pika_sequential_confirms(bench_url, args.sequential_messages))
            pika_result = await asyncio.to_thread(
                pika_blocking_confirms, bench_url, args.sequential_messages
            )
            if pika_result is not None:
                extras.append(pika_result)
    else:
        print("KGLAB_RABBITMQ_URL is not set: RabbitMQ skipped.", flush=True)

    rabbit = next((r for r in results if r["adapter"] == "rabbitmq"), None)
    targets = {
        "rabbitmq_msgs_per_s_min": 2000,
        "rabbitmq_p99_ms_max_at_500_per_s": 50,
        "met": None
        if rabbit is None
        else (rabbit["throughput"]["msgs_per_s"] >= 2000 and rabbit["latency"]["p99_ms"] < 50),
    }
    report = {
        "benchmark": "event bus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(load_at_start), "rabbitmq_version": rabbitmq_version},
        "results": results,
        "sequential_publish": extras,
        "targets": targets,
    }
    print_table(results, extras)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if targets["met"] in (None, True) else 1


if __name__ == "__main__":
    raise SystemExit(run_loop(main()))
