"""Three job queues side by side: RabbitMQ, Redis Streams, and a PostgreSQL table with
``SKIP LOCKED`` (the brief's "database table (MVP)").

Each runs the same three scenarios on the servers of ``make servers``:

1. **100 file jobs with injected failures**: 80 succeed at once, 10 fail once, 6 fail twice,
   4 always fail. Three retries with exponential backoff; after the third a job is dead-lettered.
   Every backend must end with 96 done and 4 dead, and each job handled exactly
   ``1 + failures`` times.
2. **Throughput and latency at load**: 2,000 no-op jobs, 4 consumers; jobs/s and the
   enqueue-to-done latency.
3. **A consumer crash**: a consumer takes a job and dies without finishing it; a second
   consumer starts. Is the job done, and how long after the crash?

What each keeps across a crash of the *server* is read from its configuration, not tested (it
would mean restarting a server others share).

The retry and dead-letter logic is written per backend in the smallest form each allows; it is a
study, not a library, and the product keeps RabbitMQ through ``kglab_shared.bus``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

RETRIES = 3
BACKOFF_S = 0.05  # 50, 100, 200 ms
LEASE_S = 1.0  # Redis pending idle time and PostgreSQL lease before another consumer reclaims
FAILURES = {**dict.fromkeys(range(80, 90), 1), **dict.fromkeys(range(90, 96), 2)}
ALWAYS_FAILS = set(range(96, 100))
Handler = Callable[[dict[str, Any]], Awaitable[None]]


class InjectedFailure(Exception):
    """A job's planned failure."""


@dataclass
class Tally:
    """What the failure scenario's handler saw."""

    calls: Counter[int] = field(default_factory=Counter)
    done: set[int] = field(default_factory=set)

    async def handle(self, job: dict[str, Any]) -> None:
        number = int(job["n"])
        self.calls[number] += 1
        if number in ALWAYS_FAILS or self.calls[number] <= FAILURES.get(number, 0):
            raise InjectedFailure(number)
        self.done.add(number)


class Queue(Protocol):
    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue(self, jobs: list[dict[str, Any]]) -> None: ...
    async def run(self, handler: Handler, consumers: int, until: Callable[[], bool]) -> None: ...
    async def dead(self) -> list[dict[str, Any]]: ...
    async def crash_one(self) -> dict[str, Any] | None:
        """Take one job and drop the connection without finishing it."""
        ...


def _backoff(attempt: int) -> float:
    return float(BACKOFF_S * 2 ** (attempt - 1))


# --- RabbitMQ -------------------------------------------------------------------------------


class RabbitQueue:
    """A work queue with manual acks; a failed job is republished to a delay queue whose
    per-message TTL dead-letters it back into the work queue; after the last retry it goes to a
    dead-letter queue. Unacked messages return to the queue when a consumer's channel closes."""

    name = "RabbitMQ"

    def __init__(self, url: str) -> None:
        self.url = url
        tag = uuid.uuid4().hex[:8]
        self.work, self.delay, self.dlq = (f"research.{tag}.{k}" for k in ("work", "delay", "dead"))
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        channel = await self.connection.channel()
        await channel.declare_queue(self.work, durable=True)
        await channel.declare_queue(self.dlq, durable=True)
        await channel.declare_queue(
            self.delay,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.work},
        )
        await channel.close()

    async def close(self) -> None:
        assert self.connection is not None
        channel = await self.connection.channel()
        for queue in (self.work, self.delay, self.dlq):
            await channel.queue_delete(queue)
        await self.connection.close()

    async def enqueue(self, jobs: list[dict[str, Any]]) -> None:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True)
        # Confirms awaited 256 at a time, as the product's bus publishes (bench/results/bus.json).
        for start in range(0, len(jobs), 256):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(json.dumps(job).encode(), delivery_mode=2), self.work
                    )
                    for job in jobs[start : start + 256]
                )
            )
        await channel.close()

    async def run(self, handler: Handler, consumers: int, until: Callable[[], bool]) -> None:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=consumers * 8)
        queue = await channel.get_queue(self.work)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            job = json.loads(message.body)
            try:
                await handler(job)
            except InjectedFailure:
                attempt = int(job.get("attempt", 0)) + 1
                job["attempt"] = attempt
                target, expiration = (
                    (self.delay, _backoff(attempt)) if attempt <= RETRIES else (self.dlq, None)
                )
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps(job).encode(), delivery_mode=2, expiration=expiration
                    ),
                    target,
                )
            await message.ack()

        tag = await queue.consume(on_message)
        while not until():
            await asyncio.sleep(0.01)
        await queue.cancel(tag)
        await channel.close()

    async def dead(self) -> list[dict[str, Any]]:
        assert self.connection is not None
        channel = await self.connection.channel()
        queue = await channel.get_queue(self.dlq)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            found.append(json.loads(message.body))
            await message.ack()
        await channel.close()
        return found

    async def crash_one(self) -> dict[str, Any] | None:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        queue = await channel.get_queue(self.work)
        message = await queue.get(fail=False)
        await connection.close()  # no ack: the broker requeues it
        return None if message is None else json.loads(message.body)


# --- Redis Streams --------------------------------------------------------------------------


class RedisStreamQueue:
    """A stream with a consumer group; a failed job is acked and re-added when its backoff is
    due (a sorted set of due times); after the last retry it goes to a dead stream. A job whose
    consumer died stays pending until another consumer claims it with XAUTOCLAIM after
    ``LEASE_S`` of idleness."""

    name = "Redis Streams"

    def __init__(self, url: str) -> None:
        self.url = url
        tag = uuid.uuid4().hex[:8]
        self.stream, self.delayed, self.dlq = (
            f"research:{tag}:{k}" for k in ("work", "delayed", "dead")
        )
        self.group = "workers"
        self.client: Any = None  # redis-py types its stream answers loosely

    async def open(self) -> None:
        self.client = aioredis.from_url(self.url)
        await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    async def close(self) -> None:
        assert self.client is not None
        await self.client.delete(self.stream, self.delayed, self.dlq)
        await self.client.aclose()

    async def enqueue(self, jobs: list[dict[str, Any]]) -> None:
        assert self.client is not None
        async with self.client.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xadd(self.stream, {"job": json.dumps(job)})
            await pipe.execute()

    async def _handle(self, handler: Handler, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        assert self.client is not None
        job = json.loads(fields[b"job"])
        try:
            await handler(job)
        except InjectedFailure:
            attempt = int(job.get("attempt", 0)) + 1
            job["attempt"] = attempt
            if attempt <= RETRIES:
                due = time.time() + _backoff(attempt)
                await self.client.zadd(self.delayed, {json.dumps(job): due})
            else:
                await self.client.xadd(self.dlq, {"job": json.dumps(job)})
        await self.client.xack(self.stream, self.group, entry_id)

    async def _mover(self, until: Callable[[], bool]) -> None:
        assert self.client is not None
        while not until():
            due = await self.client.zrangebyscore(self.delayed, 0, time.time())
            for raw in due:
                if await self.client.zrem(self.delayed, raw):
                    await self.client.xadd(self.stream, {"job": raw})
            await asyncio.sleep(0.01)

    async def run(self, handler: Handler, consumers: int, until: Callable[[], bool]) -> None:
        async def consumer(name: str) -> None:
            assert self.client is not None
            while not until():
                claimed = await self.client.xautoclaim(
                    self.stream, self.group, name, int(LEASE_S * 1000), count=1
                )
                entries = claimed[1]
                if not entries:
                    answer = await self.client.xreadgroup(
                        self.group, name, {self.stream: ">"}, count=1, block=50
                    )
                    entries = answer[0][1] if answer else []
                for entry_id, fields in entries:
                    await self._handle(handler, entry_id, fields)

        await asyncio.gather(self._mover(until), *(consumer(f"c{i}") for i in range(consumers)))

    async def dead(self) -> list[dict[str, Any]]:
        assert self.client is not None
        return [json.loads(f[b"job"]) for _, f in await self.client.xrange(self.dlq)]

    async def crash_one(self) -> dict[str, Any] | None:
        client: Any = aioredis.from_url(self.url)
        answer = await client.xreadgroup(self.group, "doomed", {self.stream: ">"}, count=1)
        await client.aclose()  # never acked: pending on "doomed" until claimed
        return json.loads(answer[0][1][0][1][b"job"]) if answer else None


# --- PostgreSQL -----------------------------------------------------------------------------


class PostgresQueue:
    """A table of jobs. A consumer claims the oldest due job with ``FOR UPDATE SKIP LOCKED``
    and holds a lease (``locked_until``); a failure puts it back with a later ``run_at``, the
    last one marks it dead. A job whose consumer died is claimed again when its lease ends."""

    name = "PostgreSQL SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url
        self.table = f"research_jobs_{uuid.uuid4().hex[:8]}"
        self.pool: Any = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=8)
        await self.pool.execute(
            f"""CREATE TABLE {self.table} (
                id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                status text NOT NULL DEFAULT 'queued', attempts int NOT NULL DEFAULT 0,
                run_at timestamptz NOT NULL DEFAULT now(), locked_until timestamptz)"""
        )
        await self.pool.execute(f"CREATE INDEX ON {self.table} (status, run_at)")

    async def close(self) -> None:
        assert self.pool is not None
        await self.pool.execute(f"DROP TABLE {self.table}")
        await self.pool.close()

    async def enqueue(self, jobs: list[dict[str, Any]]) -> None:
        assert self.pool is not None
        await self.pool.executemany(
            f"INSERT INTO {self.table} (payload) VALUES ($1::jsonb)",
            [(json.dumps(job),) for job in jobs],
        )

    def _claim_sql(self) -> str:
        return f"""UPDATE {self.table} SET status = 'running', attempts = attempts + 1,
                   locked_until = now() + make_interval(secs => $1)
                   WHERE id = (SELECT id FROM {self.table}
                               WHERE (status = 'queued' AND run_at <= now())
                                  OR (status = 'running' AND locked_until < now())
                               ORDER BY run_at FOR UPDATE SKIP LOCKED LIMIT 1)
                   RETURNING id, payload, attempts"""

    async def run(self, handler: Handler, consumers: int, until: Callable[[], bool]) -> None:
        assert self.pool is not None
        pool = self.pool

        async def consumer() -> None:
            while not until():
                row = await pool.fetchrow(self._claim_sql(), LEASE_S)
                if row is None:
                    await asyncio.sleep(0.01)
                    continue
                job = json.loads(row["payload"])
                try:
                    await handler(job)
                    await pool.execute(
                        f"UPDATE {self.table} SET status = 'done' WHERE id = $1", row["id"]
                    )
                except InjectedFailure:
                    retry = row["attempts"] <= RETRIES
                    await pool.execute(
                        f"""UPDATE {self.table} SET status = $2, locked_until = NULL,
                            run_at = now() + make_interval(secs => $3) WHERE id = $1""",
                        row["id"],
                        "queued" if retry else "dead",
                        _backoff(row["attempts"]),
                    )

        await asyncio.gather(*(consumer() for _ in range(consumers)))

    async def dead(self) -> list[dict[str, Any]]:
        assert self.pool is not None
        rows = await self.pool.fetch(f"SELECT payload FROM {self.table} WHERE status = 'dead'")
        return [json.loads(row["payload"]) for row in rows]

    async def crash_one(self) -> dict[str, Any] | None:
        connection = await asyncpg.connect(self.url)
        row = await connection.fetchrow(self._claim_sql(), LEASE_S)
        await connection.close()  # claimed and leased, never finished
        return None if row is None else json.loads(row["payload"])


# --- scenarios ------------------------------------------------------------------------------


async def _until_or_timeout(condition: Callable[[], bool], timeout_s: float) -> Callable[[], bool]:
    deadline = time.monotonic() + timeout_s
    return lambda: condition() or time.monotonic() > deadline


async def failures_scenario(queue: Queue, timeout_s: float = 60) -> dict[str, Any]:
    tally = Tally()
    dead_seen: list[dict[str, Any]] = []
    await queue.enqueue([{"n": n} for n in range(100)])
    started = time.perf_counter()
    expected_calls = {n: 1 + FAILURES.get(n, 0) for n in range(96)} | dict.fromkeys(
        ALWAYS_FAILS, 1 + RETRIES
    )

    def finished() -> bool:
        return len(tally.done) == 96 and all(
            tally.calls[n] >= expected_calls[n] for n in ALWAYS_FAILS
        )

    until = await _until_or_timeout(finished, timeout_s)
    await queue.run(tally.handle, consumers=4, until=until)
    elapsed = time.perf_counter() - started
    # The last dead-lettering may land just after its final call: look for up to a second.
    for _ in range(100):
        dead_seen = await queue.dead()
        if len(dead_seen) >= len(ALWAYS_FAILS):
            break
        await asyncio.sleep(0.01)
    wrong_counts = {
        n: tally.calls[n] for n in expected_calls if tally.calls[n] != expected_calls[n]
    }
    return {
        "jobs": 100,
        "done": len(tally.done),
        "dead_lettered": sorted(int(job["n"]) for job in dead_seen),
        "handler_calls": sum(tally.calls.values()),
        "expected_handler_calls": sum(expected_calls.values()),
        "jobs_with_wrong_call_count": wrong_counts,
        "seconds": round(elapsed, 3),
        "correct": len(tally.done) == 96
        and sorted(int(job["n"]) for job in dead_seen) == sorted(ALWAYS_FAILS)
        and not wrong_counts,
    }


async def load_scenario(queue: Queue, jobs: int = 2000, timeout_s: float = 60) -> dict[str, Any]:
    latencies: list[float] = []

    async def handle(job: dict[str, Any]) -> None:
        latencies.append(time.time() - float(job["t"]))

    now = time.time()
    started = time.perf_counter()
    await queue.enqueue([{"n": n, "t": now} for n in range(jobs)])
    enqueued = time.perf_counter() - started
    # Latency from each job's own enqueue: re-stamp per batch is not possible after the fact,
    # so the figure includes time spent queued behind earlier jobs (a backlog drain).
    until = await _until_or_timeout(lambda: len(latencies) >= jobs, timeout_s)
    await queue.run(handle, consumers=4, until=until)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "jobs": jobs,
        "handled": len(latencies),
        "enqueue_s": round(enqueued, 3),
        "drain_s": round(elapsed, 3),
        "jobs_per_s": round(len(latencies) / elapsed, 1),
        "backlog_latency_p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "backlog_latency_p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 1)
        if ordered
        else None,
    }


async def crash_scenario(queue: Queue, timeout_s: float = 10) -> dict[str, Any]:
    await queue.enqueue([{"n": 1}])
    taken = await queue.crash_one()
    crashed = time.perf_counter()
    done_after: list[float] = []

    async def handle(job: dict[str, Any]) -> None:
        done_after.append(time.perf_counter() - crashed)

    until = await _until_or_timeout(lambda: bool(done_after), timeout_s)
    await queue.run(handle, consumers=1, until=until)
    return {
        "taken_by_the_crashed_consumer": taken is not None,
        "done_by_another_consumer": bool(done_after),
        "seconds_after_the_crash": round(done_after[0], 3) if done_after else None,
        "lost": not done_after,
    }


SERVER_DURABILITY = {
    "RabbitMQ": "durable queues and persistent messages (delivery_mode 2) with publisher "
    "confirms: a confirmed job survives a broker crash",
    "Redis Streams": "depends on persistence: `make servers` runs Redis with appendonly no and "
    "no snapshots, so a Redis crash loses every queued job; with appendfsync everysec up to "
    "one second of jobs",
    "PostgreSQL SKIP LOCKED": "a committed INSERT is in the WAL: a crash loses nothing committed",
}


async def study(urls: dict[str, str]) -> list[dict[str, Any]]:
    results = []
    factories: list[Callable[[], Queue]] = [
        lambda: RabbitQueue(urls["rabbitmq"]),
        lambda: RedisStreamQueue(urls["redis"]),
        lambda: PostgresQueue(urls["postgres"]),
    ]
    for make in factories:
        entry: dict[str, Any] = {}
        for scenario in (failures_scenario, load_scenario, crash_scenario):
            queue = make()
            await queue.open()
            try:
                entry[scenario.__name__.removesuffix("_scenario")] = await scenario(queue)
            finally:
                await queue.close()
        entry = {"queue": queue.name, **entry, "server_crash": SERVER_DURABILITY[queue.name]}
        results.append(entry)
    return results


def server_urls() -> dict[str, str] | None:
    names = {
        "rabbitmq": "KGLAB_RABBITMQ_URL",
        "redis": "KGLAB_REDIS_URL",
        "postgres": "KGLAB_POSTGRES_URL",
    }
    urls = {key: os.environ.get(var, "") for key, var in names.items()}
    return urls if all(urls.values()) else None
