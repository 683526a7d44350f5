"""The dead-letter gauge the "growing dead-letter queue" alert watches (issue 15): on both
buses, the bus's health check (run by readiness every 15 s) sets it to the messages parked in
the group's dead-letter queue."""

from __future__ import annotations

from kglab_shared.bus.port import RetryPolicy
from kglab_shared.events import EventEnvelope
from kglab_shared.metrics import REGISTRY
from tests.contract.test_event_bus import BusHarness, bus_factory, make_event, parked

__all__ = ["bus_factory"]  # the fixture, shared with the bus's own contract


async def test_the_health_check_reports_the_dead_letters_waiting(bus_factory: BusHarness) -> None:
    bus = await bus_factory.new_bus()

    async def always_fails(envelope: EventEnvelope) -> None:
        raise RuntimeError(f"bad event {envelope.data['n']}")

    group = f"gauged-{bus_factory.kind}"
    await bus.subscribe(group, ["gauged.#"], always_fails, retry=RetryPolicy(max_attempts=1))
    for number in range(1, 3):
        await bus.publish(make_event("gauged.event", n=number))
        await parked(bus, group, number)
    await bus.ping()
    assert REGISTRY.get_sample_value("kglab_dead_letter_messages", {"group": group}) == 2.0

    assert await bus.replay_dead_letters(group) == 2
    await parked(bus, group, 2)  # failed again, parked again: still two, not four
    await bus.ping()
    assert REGISTRY.get_sample_value("kglab_dead_letter_messages", {"group": group}) == 2.0
