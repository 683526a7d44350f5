"""The in-process broker while a process starts its services one after another: an event
published before its consumer group first subscribes is kept for it, not lost (``make dev``'s
start-up race), and given once, in order; outside that window an unroutable event is dropped,
as RabbitMQ drops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kglab_shared.bus.memory import InProcessBroker, InProcessBus
from kglab_shared.events import EventEnvelope
from tests.waiting import wait_until


def event(event_type: str, n: int) -> EventEnvelope:
    return EventEnvelope(type=event_type, source="kglab/tests", data={"n": n})


class Inbox:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, envelope: EventEnvelope) -> None:
        self.seen.append((envelope.type, envelope.data["n"]))


def holds(inbox: Inbox, count: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return len(inbox.seen) >= count

    return reached


@pytest.fixture
async def broker() -> AsyncIterator[InProcessBroker]:
    broker = InProcessBroker()
    yield broker
    broker.close()


async def started(broker: InProcessBroker) -> InProcessBus:
    bus = InProcessBus("kglab/tests", broker=broker)
    await bus.start()
    return bus


async def test_an_event_published_before_its_group_subscribes_reaches_it_while_retained(
    broker: InProcessBroker,
) -> None:
    producer, early, late = [await started(broker) for _ in range(3)]
    first, second = Inbox(), Inbox()
    broker.retain()
    await early.subscribe("ingestion", ["ingestion.#"], first)
    await producer.publish(event("document.extracted", 1))  # no group is bound to it yet
    await producer.publish(event("ingestion.job.requested", 2))
    await producer.publish(event("document.extracted", 3))

    # The document service subscribes after both were published, as in make dev.
    await late.subscribe("document", ["document.extracted"], second, prefetch=1)
    await producer.publish(event("document.extracted", 4))
    await wait_until(holds(second, 3))
    assert second.seen == [("document.extracted", n) for n in (1, 3, 4)]  # in order
    # A group that had the event when it was published does not get it again.
    await late.subscribe("ingestion", ["ingestion.#"], first)
    await asyncio.sleep(0.05)
    assert first.seen == [("ingestion.job.requested", 2)]

    broker.release()
    for bus in (producer, early, late):
        await bus.close()


async def test_without_retention_an_unroutable_event_is_dropped(broker: InProcessBroker) -> None:
    producer, consumer = await started(broker), await started(broker)
    inbox = Inbox()
    broker.retain()
    broker.release()  # every consumer bound: what was kept is dropped, nothing more is kept
    await producer.publish(event("document.extracted", 1))
    await consumer.subscribe("document", ["document.extracted"], inbox)
    await producer.publish(event("document.extracted", 2))
    await wait_until(holds(inbox, 1))
    await asyncio.sleep(0.05)
    assert inbox.seen == [("document.extracted", 2)]
    for bus in (producer, consumer):
        await bus.close()


async def test_retention_lasts_until_the_last_retainer_releases(broker: InProcessBroker) -> None:
    producer, consumer = await started(broker), await started(broker)
    inbox = Inbox()
    broker.retain()
    broker.retain()
    await producer.publish(event("document.extracted", 1))
    broker.release()
    await consumer.subscribe("document", ["document.extracted"], inbox)
    await wait_until(holds(inbox, 1))
    assert inbox.seen == [("document.extracted", 1)]
    broker.release()
    for bus in (producer, consumer):
        await bus.close()
