"""The queue study of the research brief (``research/queues.py``) on the real servers: each
queue ends the failure scenario with the exact outcome, and redoes a crashed consumer's job."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from research.queues import (
    ALWAYS_FAILS,
    PostgresQueue,
    Queue,
    RabbitQueue,
    RedisStreamQueue,
    crash_scenario,
    failures_scenario,
)

QUEUES: dict[str, tuple[str, Callable[[str], Queue]]] = {
    "rabbitmq": ("rabbitmq_url", RabbitQueue),
    "redis": ("redis_url", RedisStreamQueue),
    "postgres": ("postgres_url", PostgresQueue),
}


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.backend(name)) for name in QUEUES])
def queue_factory(request: pytest.FixtureRequest) -> Callable[[], Queue]:
    fixture, make = QUEUES[request.param]
    url = request.getfixturevalue(fixture)
    return lambda: make(url)


async def test_failures_end_done_or_dead_lettered_with_the_planned_retries(
    queue_factory: Callable[[], Queue],
) -> None:
    queue = queue_factory()
    await queue.open()
    try:
        outcome = await failures_scenario(queue, timeout_s=30)
    finally:
        await queue.close()
    assert outcome["done"] == 96
    assert outcome["dead_lettered"] == sorted(ALWAYS_FAILS)
    assert outcome["jobs_with_wrong_call_count"] == {}
    assert outcome["handler_calls"] == outcome["expected_handler_calls"]


async def test_a_crashed_consumers_job_is_done_by_another(
    queue_factory: Callable[[], Queue],
) -> None:
    queue = queue_factory()
    await queue.open()
    try:
        outcome = await crash_scenario(queue, timeout_s=10)
    finally:
        await queue.close()
    assert outcome["taken_by_the_crashed_consumer"]
    assert outcome["done_by_another_consumer"], outcome
    assert outcome["seconds_after_the_crash"] < 5
