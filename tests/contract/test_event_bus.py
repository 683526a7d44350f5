"""The EventBus contract: one set of test bodies, run against every adapter.

``bus_factory`` gives a harness for the in-process bus and for RabbitMQ. Each RabbitMQ test runs
in a fresh virtual host created (and deleted) through the management API, so tests run in
parallel (pytest-xdist) and in any order. The outbox and idempotency tests run on SQLite and on
a fresh PostgreSQL database per test.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from opentelemetry import trace
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from structlog.testing import capture_logs

from kglab_shared.bus.dispatch import current_delivery
from kglab_shared.bus.factory import create_bus
from kglab_shared.bus.idempotency import (
    InMemoryProcessedEvents,
    ProcessedEvents,
    RedisProcessedEvents,
    SqlProcessedEvents,
    idempotent,
)
from kglab_shared.bus.memory import InProcessBroker, InProcessBus, topic_matches
from kglab_shared.bus.port import DeadLetter, EventBus, PublishError, RetryPolicy
from kglab_shared.correlation import get_correlation_id, set_correlation_id
from kglab_shared.events import EventEnvelope
from kglab_shared.outbox import OutboxRelay, add_to_outbox, create_outbox_table, outbox
from kglab_shared.tracing import configure_tracing
from tests import isolation
from tests.conftest import unique_name
from tests.waiting import wait_until

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.05, factor=4.0)


# -- helpers ---------------------------------------------------------------------------------


def make_event(event_type: str = "test.created", **data: Any) -> EventEnvelope:
    return EventEnvelope(type=event_type, source="kglab/tests", data=data or {"n": 1})


async def stays(predicate: Callable[[], bool], *, for_s: float = 0.5) -> None:
    """Check ``predicate`` keeps holding for ``for_s`` seconds (nothing unexpected arrives)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert predicate()
        await asyncio.sleep(0.02)


async def parked(bus: EventBus, group: str, count: int, timeout: float = 15.0) -> list[DeadLetter]:
    """Poll ``group``'s dead letters until there are ``count``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        letters = await bus.dead_letters(group)
        if len(letters) >= count:
            return letters
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(letters)} dead letters in {group}, expected {count}.")
        await asyncio.sleep(0.05)


@dataclass
class Inbox:
    """A handler that records what it receives."""

    events: list[EventEnvelope] = field(default_factory=list)

    async def __call__(self, envelope: EventEnvelope) -> None:
        self.events.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]

    @property
    def types(self) -> set[str]:
        return {e.type for e in self.events}


# -- adapters under test ---------------------------------------------------------------------


class RabbitMQManagement:
    """The few management HTTP API calls the tests need (virtual hosts, connections)."""

    def __init__(self, management_url: str) -> None:
        parts = httpx.URL(management_url)
        self.user = parts.username or "guest"
        base = f"{parts.scheme}://{parts.host}:{parts.port or 15672}"
        self._client = httpx.AsyncClient(
            base_url=base, auth=(self.user, parts.password or "guest"), timeout=10.0
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def create_vhost(self, vhost: str) -> None:
        name = quote(vhost, safe="")
        (await self._client.put(f"/api/vhosts/{name}")).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        response = await self._client.put(
            f"/api/permissions/{name}/{quote(self.user, safe='')}", json=permissions
        )
        response.raise_for_status()

    async def delete_vhost(self, vhost: str) -> None:
        response = await self._client.delete(f"/api/vhosts/{quote(vhost, safe='')}")
        if response.status_code != 404:
            response.raise_for_status()

    async def queue(self, vhost: str, queue: str) -> dict[str, Any]:
        response = await self._client.get(
            f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def close_connection(self, vhost: str, connection_name: str) -> None:
        """Close, from the broker's side, the connection a client opened with this name."""
        deadline = time.monotonic() + 15.0
        while True:
            response = await self._client.get(f"/api/vhosts/{quote(vhost, safe='')}/connections")
            response.raise_for_status()
            for connection in response.json():
                properties = connection.get("client_properties") or {}
                if properties.get("connection_name") == connection_name:
                    closed = await self._client.delete(
                        f"/api/connections/{quote(connection['name'], safe='')}",
                        headers={"X-Reason": "kglab contract test: simulated failure"},
                    )
                    if closed.status_code != 404:
                        closed.raise_for_status()
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"Connection {connection_name!r} never showed up.")
            await asyncio.sleep(0.1)


@dataclass
class BusHarness:
    """Makes connected buses for one test and knows how to make each one fail."""

    kind: str
    make: Callable[[], EventBus]
    crash_bus: Callable[[EventBus], Awaitable[None]]
    interrupt_bus: Callable[[EventBus], Awaitable[None]]
    buses: list[EventBus] = field(default_factory=list)

    async def new_bus(self) -> EventBus:
        bus = self.make()
        await bus.start()
        self.buses.append(bus)
        return bus

    async def crash(self, bus: EventBus) -> None:
        """Kill ``bus`` as a crashed process would: no ack, no clean shutdown."""
        await self.crash_bus(bus)

    async def interrupt(self, bus: EventBus) -> None:
        """Cut ``bus`` off from the broker for a moment; it recovers by itself."""
        await self.interrupt_bus(bus)

    async def close_all(self) -> None:
        for bus in self.buses:
            close: Callable[..., Awaitable[None]] = bus.close
            await close(timeout=1.0)


def amqp_url_for_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


def management_url(amqp_url: str) -> str:
    import os

    configured = os.environ.get("KGLAB_RABBITMQ_MANAGEMENT_URL")
    if configured:
        return configured
    parts = urlsplit(amqp_url)
    credentials = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "guest:guest"
    return f"http://{credentials}@{parts.hostname}:15672"


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.backend("rabbitmq"))])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[BusHarness]:
    if request.param == "memory":
        broker = InProcessBroker()

        async def crash_memory(bus: EventBus) -> None:
            assert isinstance(bus, InProcessBus)
            await bus.abort()

        async def interrupt_memory(_bus: EventBus) -> None:
            broker.set_available(False)
            await asyncio.sleep(0.1)
            broker.set_available(True)

        harness = BusHarness(
            kind="memory",
            make=lambda: InProcessBus("kglab/tests", broker=broker),
            crash_bus=crash_memory,
            interrupt_bus=interrupt_memory,
        )
        try:
            yield harness
        finally:
            await harness.close_all()
            broker.close()
        return

    from kglab_shared.bus.rabbitmq import RabbitMQBus

    rabbitmq_url: str = request.getfixturevalue("rabbitmq_url")
    management = RabbitMQManagement(management_url(rabbitmq_url))
    vhost = unique_name("kglab_test")
    await management.create_vhost(vhost)
    url = amqp_url_for_vhost(rabbitmq_url, vhost)

    async def crash_rabbitmq(bus: EventBus) -> None:
        assert isinstance(bus, RabbitMQBus)
        await management.close_connection(vhost, bus.connection_name)
        await bus.abort()  # a dead process does not reconnect

    async def interrupt_rabbitmq(bus: EventBus) -> None:
        assert isinstance(bus, RabbitMQBus)
        await management.close_connection(vhost, bus.connection_name)

    harness = BusHarness(
        kind="rabbitmq",
        make=lambda: RabbitMQBus(url, "kglab/tests", reconnect_interval_s=0.2),
        crash_bus=crash_rabbitmq,
        interrupt_bus=interrupt_rabbitmq,
    )
    harness.management = management  # type: ignore[attr-defined]
    harness.vhost = vhost  # type: ignore[attr-defined]
    try:
        yield harness
    finally:
        try:
            await harness.close_all()
        finally:
            await management.delete_vhost(vhost)
            await management.aclose()


@pytest.fixture
def captured_logs() -> Any:
    # Captured, not rendered: rendering tracebacks would distort the retry timings measured here.
    with capture_logs() as logs:
        yield logs


# -- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("document.*", "document.stored", True),
        ("document.*", "document", False),
        ("document.*", "document.parts.removed", False),
        ("document.#", "document", True),
        ("document.#", "document.parts.removed", True),
        ("#", "anything.at.all", True),
        ("*.job.*", "ingestion.job.requested", True),
        ("*.job.*", "ingestion.job", False),
        ("#.removed", "document.parts.removed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c.y", False),
        ("document.stored", "document.stored", True),
        ("document.stored", "document.deleted", False),
    ],
)
def test_topic_matching_follows_amqp_rules(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


async def test_events_reach_groups_whose_patterns_match(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()
    inboxes = {
        "docs": (["document.*"], Inbox()),
        "everything": (["#"], Inbox()),
        "ingestion": (["ingestion.#"], Inbox()),
        "jobs": (["*.job.*"], Inbox()),
        "two-patterns": (["document.deleted", "ingestion"], Inbox()),
    }
    for group, (patterns, inbox) in inboxes.items():
        await bus.subscribe(group, patterns, inbox)
    types = ["document.stored", "document.parts.removed", "ingestion.job.requested", "ingestion"]
    types.append("document.deleted")
    for event_type in types:
        await bus.publish(make_event(event_type))

    expected = {
        "docs": {"document.stored", "document.deleted"},
        "everything": set(types),
        "ingestion": {"ingestion.job.requested", "ingestion"},
        "jobs": {"ingestion.job.requested"},
        "two-patterns": {"document.deleted", "ingestion"},
    }
    for group, wanted in expected.items():
        inbox = inboxes[group][1]
        await wait_until(
            lambda inbox=inbox, wanted=wanted: inbox.types == wanted, what=group, timeout_s=15
        )
    await stays(lambda: all(len(inboxes[g][1].events) == len(w) for g, w in expected.items()))


async def test_each_group_gets_every_event_and_its_consumers_share_them(
    bus_factory: BusHarness,
) -> None:
    first, second, other = [await bus_factory.new_bus() for _ in range(3)]
    shared_a, shared_b, audit = Inbox(), Inbox(), Inbox()

    def slow(inbox: Inbox) -> Callable[[EventEnvelope], Awaitable[None]]:
        async def handle(envelope: EventEnvelope) -> None:
            await asyncio.sleep(0.01)
            await inbox(envelope)

        return handle

    await first.subscribe("indexer", ["document.#"], slow(shared_a), prefetch=1)
    await second.subscribe("indexer", ["document.#"], slow(shared_b), prefetch=1)
    await other.subscribe("audit", ["document.#"], audit)
    publisher = await bus_factory.new_bus()
    published = [make_event("document.stored", n=i) for i in range(30)]
    for event in published:
        await publisher.publish(event)

    everything = {e.id for e in published}
    await wait_until(
        lambda: len(shared_a.events) + len(shared_b.events) >= 30, what="indexer", timeout_s=15
    )
    await wait_until(lambda: len(audit.events) >= 30, what="audit", timeout_s=15)
    await stays(lambda: len(shared_a.events) + len(shared_b.events) == 30, for_s=0.3)
    indexer_ids = shared_a.ids + shared_b.ids
    assert Counter(indexer_ids) == Counter(everything)  # each once, none twice
    assert shared_a.events  # both members of the group did work
    assert shared_b.events
    assert sorted(audit.ids) == sorted(everything)


# -- at-least-once ----------------------------------------------------------------------------


async def test_event_of_a_consumer_that_crashes_before_acking_is_redelivered(
    bus_factory: BusHarness,
) -> None:
    doomed = await bus_factory.new_bus()
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def stuck(envelope: EventEnvelope) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.id)

    await doomed.subscribe("graph", ["document.stored"], stuck, prefetch=1)
    publisher = await bus_factory.new_bus()
    event = make_event("document.stored")
    await publisher.publish(event)
    await asyncio.wait_for(started.wait(), 15)

    survivor = await bus_factory.new_bus()
    inbox = Inbox()
    await survivor.subscribe("graph", ["document.stored"], inbox)
    await stays(lambda: not inbox.events, for_s=0.2)  # unacked, so nobody else has it yet

    await bus_factory.crash(doomed)
    release.set()
    await wait_until(
        lambda: inbox.ids == [event.id], what="redelivery to the new consumer", timeout_s=15
    )
    await stays(lambda: inbox.ids == [event.id], for_s=0.3)
    assert finished == []


async def test_close_lets_in_flight_handlers_finish_and_requeues_after_timeout(
    bus_factory: BusHarness,
) -> None:
    worker = await bus_factory.new_bus()
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(envelope: EventEnvelope) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(envelope.id)

    await worker.subscribe("vector", ["document.stored"], slow, prefetch=1)
    publisher = await bus_factory.new_bus()
    first = make_event("document.stored")
    await publisher.publish(first)
    await asyncio.wait_for(started.wait(), 15)
    close: Callable[..., Awaitable[None]] = worker.close
    await close(timeout=5.0)
    assert finished == [first.id]  # close waited for it

    blocked = await bus_factory.new_bus()
    started.clear()

    async def forever(_: EventEnvelope) -> None:
        started.set()
        await asyncio.sleep(3600)

    await blocked.subscribe("vector", ["document.stored"], forever, prefetch=1)
    second = make_event("document.stored")
    await publisher.publish(second)
    await asyncio.wait_for(started.wait(), 15)
    began = time.monotonic()
    close = blocked.close
    await close(timeout=0.2)
    assert time.monotonic() - began < 5.0

    inbox = Inbox()
    successor = await bus_factory.new_bus()
    await successor.subscribe("vector", ["document.stored"], inbox)
    await wait_until(lambda: inbox.ids == [second.id], what="the unfinished event", timeout_s=15)
    await stays(lambda: inbox.ids == [second.id], for_s=0.3)  # the finished one stays acked


async def test_prefetch_bounds_concurrent_handlers(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()
    running = 0
    peak = 0
    done: list[str] = []

    async def handle(envelope: EventEnvelope) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(envelope.id)

    await bus.subscribe("bounded", ["load.#"], handle, prefetch=2)
    for _ in range(10):
        await bus.publish(make_event("load.test"))
    await wait_until(lambda: len(done) == 10, what="all ten handled", timeout_s=15)
    assert peak == 2


async def test_poison_event_is_dead_lettered_after_three_attempts_and_can_be_replayed(
    bus_factory: BusHarness, captured_logs: list[dict[str, Any]]
) -> None:
    bus = await bus_factory.new_bus()
    attempts: list[float] = []
    healthy = False
    handled: list[str] = []

    async def handle(envelope: EventEnvelope) -> None:
        if not healthy:
            attempts.append(time.monotonic())
            raise ValueError(f"cannot index {envelope.data['n']}")
        handled.append(envelope.id)

    await bus.subscribe("poisoned", ["document.*"], handle, retry=FAST_RETRY)
    poison = make_event("document.stored", n=7).model_copy(update={"correlation_id": "corr-7"})
    await bus.publish(poison)

    await wait_until(lambda: len(attempts) == 3, what="three attempts", timeout_s=15)
    letters = await parked(bus, "poisoned", 1)
    assert [letter.envelope.id for letter in letters] == [poison.id]
    letter = letters[0]
    assert letter.attempts == 3
    assert letter.group == "poisoned"
    assert "cannot index 7" in letter.error
    assert isinstance(letter.dead_at, datetime)
    assert letter.envelope == poison

    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= FAST_RETRY.delay_after(1) * 0.9
    assert gaps[1] >= FAST_RETRY.delay_after(2) * 0.9
    assert gaps[1] > gaps[0]
    await stays(lambda: len(attempts) == 3, for_s=0.5)  # no fourth attempt

    failures = [e for e in captured_logs if e.get("event") == "event_handler_failed"]
    assert [f["attempt"] for f in failures] == [1, 2, 3]
    assert {f["correlation_id"] for f in failures} == {"corr-7"}

    # Inspecting does not consume.
    assert [x.envelope.id for x in await bus.dead_letters("poisoned")] == [poison.id]

    healthy = True
    assert await bus.replay_dead_letters("poisoned") == 1
    await wait_until(lambda: handled == [poison.id], what="the replayed event", timeout_s=15)
    assert await bus.dead_letters("poisoned") == []


async def test_a_handler_knows_which_attempt_it_runs_and_whether_it_is_the_last(
    bus_factory: BusHarness,
) -> None:
    # What lets a consumer report a failure for good (document.indexed, ok false) on its last
    # attempt instead of leaving only a dead letter.
    bus = await bus_factory.new_bus()
    seen: list[tuple[int, int, bool]] = []

    async def handle(envelope: EventEnvelope) -> None:
        delivery = current_delivery()
        seen.append((delivery.attempt, delivery.max_attempts, delivery.is_last))
        if not delivery.is_last:
            raise ValueError("not yet")

    await bus.subscribe("attempts", ["document.*"], handle, retry=FAST_RETRY)
    await bus.publish(make_event("document.stored"))
    await wait_until(lambda: len(seen) == 3, what="three attempts", timeout_s=15)
    assert seen == [(1, 3, False), (2, 3, False), (3, 3, True)]
    await stays(lambda: len(seen) == 3, for_s=0.3)
    assert await bus.dead_letters("attempts") == []
    # Outside a handler: a single, last attempt.
    assert current_delivery().is_last


async def test_dead_letters_are_listed_oldest_first_and_browsing_keeps_them(
    bus_factory: BusHarness,
    captured_logs: list[dict[str, Any]],
) -> None:
    bus = await bus_factory.new_bus()

    async def always_fails(envelope: EventEnvelope) -> None:
        raise RuntimeError(f"bad event {envelope.data['n']}")

    once = RetryPolicy(max_attempts=1, base_delay_s=0.05)
    await bus.subscribe("strict", ["bad.#"], always_fails, retry=once)
    events = [make_event("bad.event", n=i) for i in range(4)]
    for number, event in enumerate(events, start=1):
        await bus.publish(event)
        await parked(bus, "strict", number)
    ids = [e.id for e in events]
    assert [x.envelope.id for x in await bus.dead_letters("strict", limit=2)] == ids[:2]
    for _ in range(3):  # browsing, fully or partly, neither consumes nor reorders
        assert [x.envelope.id for x in await bus.dead_letters("strict")] == ids
        assert [x.envelope.id for x in await bus.dead_letters("strict", limit=1)] == ids[:1]
    assert {x.attempts for x in await bus.dead_letters("strict")} == {1}

    # Replayed events that fail again are parked again, once each, not replayed in a loop.
    assert await bus.replay_dead_letters("strict") == 4
    letters = await parked(bus, "strict", 4)
    await stays(lambda: True, for_s=0.3)
    assert sorted(x.envelope.id for x in await bus.dead_letters("strict")) == sorted(ids)
    assert len(letters) == 4


async def test_idempotent_handler_runs_once_per_event_id(
    bus_factory: BusHarness, captured_logs: list[dict[str, Any]]
) -> None:
    bus = await bus_factory.new_bus()
    store = InMemoryProcessedEvents()
    runs: list[str] = []
    deliveries: list[str] = []
    fail_next = True

    async def project(envelope: EventEnvelope) -> None:
        nonlocal fail_next
        runs.append(envelope.id)
        if fail_next:
            fail_next = False
            raise RuntimeError("first attempt fails")

    guarded = idempotent(project, store, "projector")

    async def counted(envelope: EventEnvelope) -> None:
        deliveries.append(envelope.id)
        await guarded(envelope)

    await bus.subscribe("projector", ["document.stored"], counted, retry=FAST_RETRY)
    event = make_event("document.stored")
    await bus.publish(event)
    # A failed run is not recorded, so the retry runs the handler again.
    await wait_until(lambda: len(runs) == 2, what="retry after failure", timeout_s=15)
    await wait_until(lambda: len(deliveries) == 2, what="second delivery", timeout_s=15)
    assert await store.has("projector", event.id)

    await bus.publish(event)  # a duplicate: same id
    await bus.publish(event)
    await wait_until(lambda: len(deliveries) == 4, what="both duplicates delivered", timeout_s=15)
    await stays(lambda: runs == [event.id, event.id], for_s=0.3)
    assert await bus.dead_letters("projector") == []


# -- batch publish and coalesced acks ---------------------------------------------------------


async def test_publish_many_delivers_every_event_in_order(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()
    inbox = Inbox()
    await bus.subscribe("ordered", ["batch.#"], inbox, prefetch=1)
    events = [make_event("batch.tick", n=i) for i in range(300)]  # more than one window
    await bus.publish_many(events)
    await bus.publish_many([])  # nothing to do
    await wait_until(lambda: len(inbox.events) == 300, what="the whole batch", timeout_s=15)
    assert inbox.ids == [e.id for e in events]
    await stays(lambda: len(inbox.events) == 300, for_s=0.2)


async def test_publish_many_fills_in_the_callers_correlation_id(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()
    inbox = Inbox()
    await bus.subscribe("inspector", ["test.#"], inbox)
    set_correlation_id("from-the-relay")
    try:
        await bus.publish_many([make_event(), make_event()])
    finally:
        set_correlation_id(None)
    await wait_until(lambda: len(inbox.events) == 2, timeout_s=15)
    assert {e.correlation_id for e in inbox.events} == {"from-the-relay"}


async def test_publish_many_reports_the_confirmed_prefix_when_an_event_cannot_be_sent(
    bus_factory: BusHarness,
) -> None:
    bus = await bus_factory.new_bus()
    inbox = Inbox()
    await bus.subscribe("partial", ["batch.#"], inbox, prefetch=1)
    good = [make_event("batch.tick", n=i) for i in range(3)]
    unencodable = make_event("batch.tick", n=object())
    with pytest.raises(PublishError) as raised:
        await bus.publish_many([*good, unencodable, make_event("batch.tick", n=9)])
    assert raised.value.confirmed == 3
    await wait_until(
        lambda: len(inbox.events) == 3, what="the events before the bad one", timeout_s=15
    )
    assert inbox.ids == [e.id for e in good]
    await stays(lambda: len(inbox.events) == 3, for_s=0.3)  # nothing after it was sent

    closed = await bus_factory.new_bus()
    close: Callable[..., Awaitable[None]] = closed.close
    await close(timeout=1.0)
    with pytest.raises(PublishError) as raised:
        await closed.publish_many(good)
    assert raised.value.confirmed == 0


async def test_publish_many_during_an_outage_loses_no_confirmed_event(
    bus_factory: BusHarness,
) -> None:
    consumer = await bus_factory.new_bus()
    inbox = Inbox()
    await consumer.subscribe("audit", ["outage.#"], inbox, prefetch=64)
    publisher = await bus_factory.new_bus()
    confirmed: list[str] = []
    partial: list[int] = []

    async def send_batch() -> None:
        batch = [make_event("outage.tick") for _ in range(20)]
        try:
            await publisher.publish_many(batch)
        except PublishError as exc:
            partial.append(exc.confirmed)
            confirmed.extend(e.id for e in batch[: exc.confirmed])
        else:
            confirmed.extend(e.id for e in batch)

    for _ in range(5):
        await send_batch()
    before = len(confirmed)
    assert before == 100
    await bus_factory.interrupt(publisher)
    deadline = time.monotonic() + 30
    while len(confirmed) < before + 100 and time.monotonic() < deadline:
        await send_batch()
        await asyncio.sleep(0.01)
    assert len(confirmed) >= before + 100, "publishing did not recover"
    assert all(0 <= count < 20 for count in partial)
    await wait_until(lambda: set(confirmed) <= set(inbox.ids), timeout_s=30, what="all confirmed")


async def test_a_slow_handler_does_not_hold_back_the_acks_of_later_events(
    bus_factory: BusHarness,
) -> None:
    """Acks are coalesced, but an event finished while an earlier one still runs is acked at
    once: its prefetch slot is freed and it is not redelivered when the slow one is."""
    doomed = await bus_factory.new_bus()
    release = asyncio.Event()
    finished: list[str] = []
    slow_started = asyncio.Event()

    async def handle(envelope: EventEnvelope) -> None:
        if envelope.data["n"] == 0:
            slow_started.set()
            await release.wait()
        finished.append(envelope.id)

    await doomed.subscribe("mixed", ["mixed.#"], handle, prefetch=4)
    publisher = await bus_factory.new_bus()
    stuck = make_event("mixed.job", n=0)
    await publisher.publish(stuck)
    await asyncio.wait_for(slow_started.wait(), 15)
    rest = [make_event("mixed.job", n=i) for i in range(1, 21)]
    await publisher.publish_many(rest)
    # Five times the prefetch: only possible if each finished event's ack freed its slot.
    await wait_until(
        lambda: len(finished) == 20, what="the events behind the slow one", timeout_s=15
    )
    assert sorted(finished) == sorted(e.id for e in rest)

    await bus_factory.crash(doomed)
    release.set()
    inbox = Inbox()
    successor = await bus_factory.new_bus()
    await successor.subscribe("mixed", ["mixed.#"], inbox)
    await wait_until(
        lambda: inbox.ids == [stuck.id], what="only the unfinished event again", timeout_s=15
    )
    await stays(lambda: inbox.ids == [stuck.id], for_s=0.5)


async def test_many_concurrent_handlers_are_each_acked_once(bus_factory: BusHarness) -> None:
    """Events finishing in a shuffled order, many per loop turn: every one is acked (nothing
    comes back after a restart) and none twice (a double ack would close the channel)."""
    worker = await bus_factory.new_bus()
    handled: list[str] = []

    async def handle(envelope: EventEnvelope) -> None:
        await asyncio.sleep((envelope.data["n"] * 7919 % 13) / 1000)
        handled.append(envelope.id)

    await worker.subscribe("shuffled", ["shuffle.#"], handle, prefetch=32)
    publisher = await bus_factory.new_bus()
    events = [make_event("shuffle.tick", n=i) for i in range(400)]
    await publisher.publish_many(events)
    await wait_until(lambda: len(handled) == 400, what="all handled", timeout_s=15)
    assert sorted(handled) == sorted(e.id for e in events)
    close: Callable[..., Awaitable[None]] = worker.close
    await close(timeout=5.0)
    successor = await bus_factory.new_bus()
    inbox = Inbox()
    await successor.subscribe("shuffled", ["shuffle.#"], inbox)
    await stays(lambda: not inbox.events, for_s=0.5)


# -- envelope ---------------------------------------------------------------------------------


async def test_envelope_fields_correlation_id_and_trace_survive_the_trip(
    bus_factory: BusHarness,
) -> None:
    configure_tracing("kglab-tests")
    bus = await bus_factory.new_bus()
    seen: list[tuple[EventEnvelope, str | None, int]] = []

    async def handle(envelope: EventEnvelope) -> None:
        span = trace.get_current_span().get_span_context()
        seen.append((envelope, get_correlation_id(), span.trace_id))

    await bus.subscribe("inspector", ["document.extracted"], handle)
    trace_id = uuid.uuid4().hex
    event = EventEnvelope(
        type="document.extracted",
        source="kglab/ingestion",
        subject="doc-42",
        correlation_id="req-1234",
        schema_version=2,
        data={"title": "Ünïcødé ✓", "nested": {"list": [1, 2.5, None, True]}, "n": 3},
        trace={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    await bus.publish(event)
    await wait_until(lambda: len(seen) == 1, what="delivery", timeout_s=15)
    received, correlation_id, span_trace_id = seen[0]
    assert received == event
    assert received.time == event.time
    assert correlation_id == "req-1234"
    assert f"{span_trace_id:032x}" == trace_id  # the consumer span continues the trace
    assert get_correlation_id() is None  # not leaked out of the handler


async def test_publish_fills_in_the_callers_correlation_id(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()
    inbox = Inbox()
    await bus.subscribe("inspector", ["test.#"], inbox)
    set_correlation_id("from-the-request")
    try:
        await bus.publish(make_event())
    finally:
        set_correlation_id(None)
    await wait_until(lambda: len(inbox.events) == 1, timeout_s=15)
    assert inbox.events[0].correlation_id == "from-the-request"


# -- outages ----------------------------------------------------------------------------------


async def test_publish_during_an_outage_is_confirmed_or_raises_never_lost(
    bus_factory: BusHarness,
) -> None:
    consumer = await bus_factory.new_bus()
    inbox = Inbox()
    await consumer.subscribe("audit", ["outage.#"], inbox, prefetch=64)
    publisher = await bus_factory.new_bus()
    confirmed: list[str] = []
    failed: list[str] = []
    confirmed_after_interruption: list[str] = []
    interrupted = False
    stop = False

    async def keep_publishing() -> None:
        for _ in range(5000):  # bounded; normally stopped much earlier
            if stop:
                return
            event = make_event("outage.tick")
            try:
                await publisher.publish(event)
            except PublishError:
                failed.append(event.id)
            else:
                confirmed.append(event.id)
                if interrupted:
                    confirmed_after_interruption.append(event.id)
            await asyncio.sleep(0.002)

    publishers = [asyncio.create_task(keep_publishing()) for _ in range(4)]
    try:
        await wait_until(
            lambda: len(confirmed) >= 40, what="publishing before the outage", timeout_s=15
        )
        await bus_factory.interrupt(publisher)
        interrupted = True
        await wait_until(
            lambda: len(confirmed_after_interruption) >= 40, timeout_s=30, what="recovery"
        )
    finally:
        stop = True
        await asyncio.gather(*publishers)

    # Every event reported as sent is delivered; failed ones may or may not be.
    await wait_until(lambda: set(confirmed) <= set(inbox.ids), timeout_s=30, what="all confirmed")
    assert not set(confirmed) & set(failed)


# -- RabbitMQ specifics -----------------------------------------------------------------------


@pytest.mark.backend("rabbitmq")
async def test_rabbitmq_topology_and_message_properties(rabbitmq_url: str) -> None:
    import aio_pika

    from kglab_shared.bus.rabbitmq import RabbitMQBus

    management = RabbitMQManagement(management_url(rabbitmq_url))
    vhost = unique_name("kglab_test")
    await management.create_vhost(vhost)
    url = amqp_url_for_vhost(rabbitmq_url, vhost)
    bus = RabbitMQBus(url, "kglab/tests")
    try:
        await bus.start()
        # The installed aiormq has what the frame-batching publish path writes through.
        assert bus._batcher is not None
        await bus.subscribe("graph", ["document.*"], Inbox(), retry=FAST_RETRY)
        group = await management.queue(vhost, "graph")
        assert group["type"] == "quorum"
        assert group["durable"] is True
        assert (await management.queue(vhost, "graph.dlq"))["type"] == "quorum"
        for delay_ms in (50, 200):
            retry = await management.queue(vhost, f"graph.retry.{delay_ms}ms")
            assert retry["type"] == "quorum"
            assert retry["arguments"]["x-message-ttl"] == delay_ms
            assert retry["arguments"]["x-dead-letter-strategy"] == "at-least-once"
            assert retry["arguments"]["x-dead-letter-routing-key"] == "graph"

        # A raw queue on the exchange shows what travels on the wire.
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            tap = await channel.declare_queue(exclusive=True)
            await tap.bind("kglab.events", routing_key="#")
            event = make_event("document.stored").model_copy(
                update={
                    "correlation_id": "corr-wire",
                    "trace": {"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"},
                }
            )
            await bus.publish(event)
            message = await tap.get(timeout=5)
            await message.ack()
        finally:
            await connection.close()
        assert message.message_id == event.id
        assert message.correlation_id == "corr-wire"
        assert message.type == "document.stored"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == "document.stored"
        assert (message.headers or {})["traceparent"] == event.trace["traceparent"]
        assert EventEnvelope.from_bytes(message.body) == event
        await bus.ping()
    finally:
        await bus.close(timeout=1.0)
        await management.delete_vhost(vhost)
        await management.aclose()


async def test_factory_builds_each_kind() -> None:
    broker = InProcessBroker()
    bus = create_bus("memory", None, "kglab/tests", broker=broker)
    assert isinstance(bus, InProcessBus)
    from kglab_shared.bus.rabbitmq import RabbitMQBus

    assert isinstance(create_bus("rabbitmq", "amqp://u:p@127.0.0.1:1/", "x"), RabbitMQBus)
    with pytest.raises(ValueError, match="needs a URL"):
        create_bus("rabbitmq", None, "x")
    with pytest.raises(ValueError, match="memory, rabbitmq"):
        create_bus("kafka", None, "x")


# -- databases: outbox and processed events ---------------------------------------------------


def asyncpg_url(url: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    path = f"/{database}" if database else parts.path
    return urlunsplit(("postgresql+asyncpg", parts.netloc, path, parts.query, ""))


@asynccontextmanager
async def fresh_postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards; yields its SQLAlchemy (asyncpg) URL."""
    async with isolation.fresh_postgres_database(postgres_url) as url:
        yield asyncpg_url(url)


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.backend("postgres"))])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'kglab.sqlite'}"
        else:
            postgres_url: str = request.getfixturevalue("postgres_url")
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url))
        engine = create_async_engine(url)
        stack.push_async_callback(engine.dispose)
        await create_outbox_table(engine)
        yield engine


widgets_metadata = MetaData()
widgets = Table(
    "widgets",
    widgets_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)


@pytest.fixture
async def outbox_setup(
    engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[Any], InProcessBus, Inbox]]:
    async with engine.begin() as connection:
        await connection.run_sync(widgets_metadata.create_all)
    bus = InProcessBus("kglab/tests", broker=InProcessBroker())
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("outbox-reader", ["#"], inbox, prefetch=1)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False), bus, inbox
    finally:
        await bus.close(timeout=1.0)


async def unsent(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int((await connection.execute(query)).scalar_one())


async def test_outbox_row_and_event_commit_together(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    relay = OutboxRelay(engine, bus)
    event = make_event("widget.created", name="gear")
    async with sessions() as session, session.begin():
        await session.execute(insert(widgets).values(id=1, name="gear"))
        await add_to_outbox(session, event)
        assert await relay.run_once() == 0  # not committed: nothing to send yet
    assert await relay.run_once() == 1
    await wait_until(lambda: inbox.ids == [event.id], timeout_s=15)
    async with engine.connect() as connection:
        row = (await connection.execute(select(outbox))).one()
        assert (await connection.execute(select(widgets.c.name))).scalar_one() == "gear"
    assert row.event_id == event.id
    assert row.published_at is not None
    assert row.attempts == 1
    assert row.last_error is None
    assert inbox.events[0] == event
    assert await relay.run_once() == 0  # marked: not sent twice


async def test_rolled_back_transaction_publishes_nothing(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    relay = OutboxRelay(engine, bus)

    async def create_widget_then_fail() -> None:
        async with sessions() as session, session.begin():
            await session.execute(insert(widgets).values(id=1, name="gear"))
            await add_to_outbox(session, make_event("widget.created"))
            raise RuntimeError("business rule violated")

    with pytest.raises(RuntimeError, match="business rule"):
        await create_widget_then_fail()
    assert await relay.run_once() == 0
    await stays(lambda: not inbox.events, for_s=0.2)
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(outbox))).scalar() == 0
        assert (await connection.execute(select(func.count()).select_from(widgets))).scalar() == 0


class RelayCrashed(BaseException):
    """The relay process dies: nothing after this point runs, not even error handling."""


@dataclass
class CrashAfterPublish:
    """A bus whose relay dies right after the broker confirmed, before the row is marked."""

    bus: EventBus

    async def publish(self, event: EventEnvelope) -> None:
        await self.bus.publish(event)
        raise RelayCrashed

    async def publish_many(self, events: list[EventEnvelope]) -> None:
        await self.bus.publish_many(events)
        raise RelayCrashed


@dataclass
class ConfirmsOnly:
    """A bus on which the broker confirms the first ``confirmed`` events of a batch only."""

    bus: EventBus
    confirmed: int

    async def publish(self, event: EventEnvelope) -> None:
        await self.bus.publish(event)

    async def publish_many(self, events: list[EventEnvelope]) -> None:
        await self.bus.publish_many(events[: self.confirmed])
        if len(events) > self.confirmed:
            raise PublishError("The broker nacked the next event.", confirmed=self.confirmed)


@dataclass
class PublishOnly:
    """A bus wrapper with no batch call (as a wrapper in a service might be)."""

    bus: EventBus

    async def publish(self, event: EventEnvelope) -> None:
        await self.bus.publish(event)


async def test_relay_crash_between_publish_and_mark_republishes_not_loses(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    event = make_event("widget.created")
    async with sessions() as session, session.begin():
        await add_to_outbox(session, event)
    crashing = OutboxRelay(engine, CrashAfterPublish(bus))  # type: ignore[arg-type]
    with pytest.raises(RelayCrashed):
        await crashing.run_once()
    assert await unsent(engine) == 1  # the mark never committed

    restarted = OutboxRelay(engine, bus)
    assert await restarted.run_once() == 1
    await wait_until(
        lambda: inbox.ids == [event.id, event.id], what="the republished event", timeout_s=15
    )
    assert await unsent(engine) == 0


async def test_relay_marks_the_confirmed_prefix_of_a_partly_failed_batch(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    events = [make_event("widget.created", n=i) for i in range(6)]
    async with sessions() as session, session.begin():
        for event in events:
            await add_to_outbox(session, event)
    partial = OutboxRelay(engine, ConfirmsOnly(bus, confirmed=2))  # type: ignore[arg-type]
    with pytest.raises(PublishError, match="published 2 event"):
        await partial.run_once()
    assert await unsent(engine) == 4
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox).order_by(outbox.c.id))).all()
    assert [r.published_at is not None for r in rows] == [True, True] + [False] * 4
    assert "nacked" in (rows[2].last_error or "")
    assert rows[2].attempts == 1
    assert [r.attempts for r in rows[3:]] == [0, 0, 0]  # not tried: they wait behind it

    assert await OutboxRelay(engine, bus).run_once() == 4
    await wait_until(lambda: len(inbox.events) == 6, timeout_s=15)
    assert inbox.ids == [e.id for e in events]


async def test_relay_publishes_one_by_one_through_a_bus_without_a_batch_call(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    events = [make_event("widget.created", n=i) for i in range(3)]
    async with sessions() as session, session.begin():
        for event in events:
            await add_to_outbox(session, event)
    relay = OutboxRelay(engine, PublishOnly(bus))  # type: ignore[arg-type]
    assert await relay.run_once() == 3
    await wait_until(lambda: inbox.ids == [e.id for e in events], timeout_s=15)
    assert await unsent(engine) == 0


async def test_relay_publishes_a_batch_through_each_bus(
    bus_factory: BusHarness, tmp_path: Any
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.sqlite'}")
    try:
        await create_outbox_table(engine)
        bus = await bus_factory.new_bus()
        inbox = Inbox()
        await bus.subscribe("relay-reader", ["widget.#"], inbox, prefetch=1)
        events = [make_event("widget.created", n=i) for i in range(30)]
        sessions = async_sessionmaker(engine)
        async with sessions() as session, session.begin():
            for event in events:
                await add_to_outbox(session, event)
        relay = OutboxRelay(engine, bus, batch_size=25)
        assert [await relay.run_once() for _ in range(3)] == [25, 5, 0]
        await wait_until(lambda: len(inbox.events) == 30, what="the relayed events", timeout_s=15)
        assert inbox.ids == [e.id for e in events]
        assert await unsent(engine) == 0
    finally:
        await engine.dispose()


async def test_relay_publishes_in_creation_order(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    events = [make_event("widget.created", n=i) for i in range(12)]
    for event in events:
        async with sessions() as session, session.begin():
            await add_to_outbox(session, event)
    relay = OutboxRelay(engine, bus, batch_size=5)
    assert [await relay.run_once() for _ in range(4)] == [5, 5, 2, 0]
    await wait_until(lambda: len(inbox.events) == 12, timeout_s=15)
    assert inbox.ids == [e.id for e in events]


async def test_relay_backs_off_while_the_bus_is_down_then_catches_up(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    bus.broker.set_available(False)
    relay = OutboxRelay(engine, bus, poll_interval_s=0.05, backoff_base_s=0.05, backoff_max_s=0.2)
    event = make_event("widget.created")
    async with sessions() as session, session.begin():
        await add_to_outbox(session, event)
    relay.start()
    try:
        await wait_until(
            lambda: relay.consecutive_failures >= 3, what="failed attempts", timeout_s=15
        )
        async with engine.connect() as connection:
            row = (await connection.execute(select(outbox))).one()
        assert row.attempts >= 3
        assert "unavailable" in (row.last_error or "")
        assert row.published_at is None
        bus.broker.set_available(True)
        await wait_until(
            lambda: inbox.ids == [event.id], what="publish after recovery", timeout_s=15
        )
    finally:
        await relay.stop()
    assert await unsent(engine) == 0


async def test_notified_relay_publishes_right_after_commit_and_stops_cleanly(
    engine: AsyncEngine, outbox_setup: tuple[async_sessionmaker[Any], InProcessBus, Inbox]
) -> None:
    sessions, bus, inbox = outbox_setup
    relay = OutboxRelay(engine, bus, poll_interval_s=60.0)
    waiting = make_event("widget.waiting")
    async with sessions() as session, session.begin():
        await add_to_outbox(session, waiting)  # no notify: the relay's first poll sends it
    relay.start()
    try:
        await wait_until(lambda: inbox.ids == [waiting.id], what="the first poll")
        # The relay has polled and now sleeps for a minute: only the notify can wake it.
        event = make_event("widget.created")
        began = time.monotonic()
        async with sessions() as session, session.begin():
            await add_to_outbox(session, event, notify=relay.notify)
        await wait_until(
            lambda: inbox.ids == [waiting.id, event.id], timeout_s=5, what="notified publish"
        )
        assert time.monotonic() - began < 2.0
    finally:
        stopping = time.monotonic()
        await relay.stop(timeout=5.0)
        assert time.monotonic() - stopping < 2.0


@pytest.mark.backend("postgres")
async def test_concurrent_relays_on_postgresql_share_rows_without_duplicates(
    postgres_database: str,
) -> None:
    engine = create_async_engine(postgres_database)
    bus = InProcessBus("kglab/tests", broker=InProcessBroker())
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("reader", ["#"], inbox, prefetch=1)
    try:
        await create_outbox_table(engine)
        sessions = async_sessionmaker(engine)
        events = [make_event("widget.created", n=i) for i in range(60)]
        async with sessions() as session, session.begin():
            for event in events:
                await add_to_outbox(session, event)
        relays = [OutboxRelay(engine, bus, batch_size=7) for _ in range(3)]

        async def drain(relay: OutboxRelay) -> int:
            total = 0
            for _ in range(100):
                sent = await relay.run_once()
                total += sent
                if sent == 0 and await unsent(engine) == 0:
                    break
                await asyncio.sleep(0)
            return total

        totals = await asyncio.gather(*(drain(r) for r in relays))
        assert sum(totals) == 60
        await wait_until(lambda: len(inbox.events) == 60, timeout_s=15)
        assert Counter(inbox.ids) == Counter(e.id for e in events)
    finally:
        await bus.close(timeout=1.0)
        await engine.dispose()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.backend("redis")),
        "sql-sqlite",
        pytest.param("sql-postgres", marks=pytest.mark.backend("postgres")),
    ]
)
async def processed_events(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[ProcessedEvents]:
    if request.param == "memory":
        yield InMemoryProcessedEvents()
    elif request.param == "redis":
        from redis.asyncio import Redis

        client = Redis.from_url(request.getfixturevalue("redis_url"))
        prefix = f"{unique_name('kglab_test')}:"
        try:
            yield RedisProcessedEvents(client, prefix=prefix, ttl_s=60)
        finally:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=100)]
            if keys:
                await client.delete(*keys)
            await client.aclose()
    else:
        async with AsyncExitStack() as stack:
            if request.param == "sql-sqlite":
                url = f"sqlite+aiosqlite:///{tmp_path / 'processed.sqlite'}"
            else:
                postgres_url: str = request.getfixturevalue("postgres_url")
                url = await stack.enter_async_context(fresh_postgres_database(postgres_url))
            engine = create_async_engine(url)
            stack.push_async_callback(engine.dispose)
            store = SqlProcessedEvents(engine)
            await store.create_table()
            yield store


async def test_processed_events_remember_ids_per_group(processed_events: ProcessedEvents) -> None:
    assert not await processed_events.has("graph", "event-1")
    await processed_events.mark("graph", "event-1")
    await processed_events.mark("graph", "event-1")  # marking twice is harmless
    assert await processed_events.has("graph", "event-1")
    assert not await processed_events.has("vector", "event-1")  # groups are independent
    assert not await processed_events.has("graph", "event-2")


async def test_idempotent_wrapper_marks_only_after_success(
    processed_events: ProcessedEvents,
) -> None:
    runs: list[str] = []

    async def flaky(envelope: EventEnvelope) -> None:
        runs.append(envelope.id)
        if len(runs) == 1:
            raise RuntimeError("transient")

    handle = idempotent(flaky, processed_events, "graph")
    event = make_event()
    with pytest.raises(RuntimeError):
        await handle(event)
    assert not await processed_events.has("graph", event.id)
    await handle(event)
    await handle(event)
    assert runs == [event.id, event.id]
    assert await processed_events.has("graph", event.id)
