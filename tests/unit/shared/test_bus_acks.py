"""Coalesced acks of the RabbitMQ adapter: which ``basic.ack`` frames go to the channel.

The channel is a stand-in for aiormq's (an external library) that records the frames; the
broker-side behaviour (nothing redelivered, nothing acked twice) is proven by the contract
suite against a real RabbitMQ.
"""

from __future__ import annotations

import asyncio

from kglab_shared.bus.rabbitmq import _AckCoalescer


class RecordingChannel:
    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.fail = False

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        if self.fail:
            raise ConnectionError("channel closed")
        self.acks.append((delivery_tag, multiple))


def covered(acks: list[tuple[int, bool]], floor: int = 0) -> list[int]:
    """Every tag the frames acknowledge, as the broker reads them; fails on a double ack."""
    seen: list[int] = []
    for tag, multiple in acks:
        new = [t for t in range(floor + 1, tag + 1) if t not in seen] if multiple else [tag]
        assert tag not in seen, f"tag {tag} acked twice"
        seen.extend(new)
    return sorted(seen)


async def test_acks_finished_in_order_in_one_turn_become_one_multiple_ack() -> None:
    acks, channel = _AckCoalescer(), RecordingChannel()
    futures = [acks.ack(channel, tag) for tag in range(1, 6)]  # type: ignore[arg-type]
    assert all(await asyncio.gather(*futures))
    assert channel.acks == [(5, True)]


async def test_a_single_finished_event_gets_a_plain_ack() -> None:
    acks, channel = _AckCoalescer(), RecordingChannel()
    assert await acks.ack(channel, 1)  # type: ignore[arg-type]
    assert channel.acks == [(1, False)]


async def test_events_finished_behind_a_running_one_are_acked_one_by_one_at_once() -> None:
    acks, channel = _AckCoalescer(), RecordingChannel()
    later = [acks.ack(channel, tag) for tag in (2, 3, 4)]  # type: ignore[arg-type]
    assert all(await asyncio.gather(*later))  # not held back by tag 1
    assert channel.acks == [(2, False), (3, False), (4, False)]
    # Tag 1 finishes: the run 1..4 is settled; only 1 is new, so a plain ack, no repeat.
    assert await acks.ack(channel, 1)  # type: ignore[arg-type]
    assert channel.acks[-1] == (1, False)
    # Then 5 and 6 together: one multiple ack on top of the run, never re-acking 2..4.
    assert all(await asyncio.gather(acks.ack(channel, 5), acks.ack(channel, 6)))  # type: ignore[arg-type]
    assert channel.acks[-1] == (6, True)
    assert covered(channel.acks) == [1, 2, 3, 4, 5, 6]


async def test_a_nacked_tag_is_passed_over_but_not_acked() -> None:
    acks, channel = _AckCoalescer(), RecordingChannel()
    acks.settled(channel, 2)  # type: ignore[arg-type]  # nacked back to the queue
    assert all(await asyncio.gather(acks.ack(channel, 1), acks.ack(channel, 3)))  # type: ignore[arg-type]
    # A multiple ack up to 3 is safe: 2 was already settled by its nack (sent before).
    assert channel.acks == [(3, True)]


async def test_a_new_channel_restarts_the_count_and_drops_acks_for_the_old_one() -> None:
    acks, old, new = _AckCoalescer(), RecordingChannel(), RecordingChannel()
    stale = acks.ack(old, 7)  # type: ignore[arg-type]
    fresh = acks.ack(new, 1)  # type: ignore[arg-type]  # reconnected: tags start again
    assert await stale is False  # the broker requeued it with the old channel
    assert await fresh is True
    assert old.acks == []
    assert new.acks == [(1, False)]


async def test_a_failed_ack_is_reported_to_every_waiting_handler() -> None:
    acks, channel = _AckCoalescer(), RecordingChannel()
    channel.fail = True
    results = await asyncio.gather(*(acks.ack(channel, tag) for tag in (1, 2)))  # type: ignore[arg-type]
    assert results == [False, False]
