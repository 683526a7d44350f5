"""An expected retry is one log line with its reason; anything else keeps its traceback
(issue 13: a retryable URL failure logged a traceback per attempt)."""

from __future__ import annotations

from structlog.testing import capture_logs

from kglab_shared.bus import RetryLater, RetryPolicy
from kglab_shared.bus.memory import InProcessBus
from kglab_shared.events import EventEnvelope
from tests.waiting import wait_until


async def _failures_logged(error: Exception) -> list[dict[str, object]]:
    bus = InProcessBus("kglab/tests")
    await bus.start()
    calls: list[int] = []

    async def handler(envelope: EventEnvelope) -> None:
        calls.append(1)
        raise error

    with capture_logs() as logs:
        await bus.subscribe(
            "g", ["t.#"], handler, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01)
        )
        await bus.publish(EventEnvelope(type="t.x", source="kglab/tests", data={}))

        async def both_attempts_logged() -> bool:
            return sum(1 for e in logs if e["event"] == "event_handler_failed") >= 2

        await wait_until(both_attempts_logged)
        await bus.close()
    return [entry for entry in logs if entry["event"] == "event_handler_failed"]


async def test_an_expected_retry_logs_its_reason_without_a_traceback() -> None:
    logged = await _failures_logged(RetryLater("job j1 will be retried: the site timed out"))
    assert len(logged) == 2  # one line per attempt
    for entry in logged:
        assert "exc_info" not in entry
        assert entry["error"] == "job j1 will be retried: the site timed out"


async def test_an_unexpected_failure_keeps_its_traceback() -> None:
    logged = await _failures_logged(RuntimeError("bug"))
    assert all(isinstance(entry.get("exc_info"), RuntimeError) for entry in logged)
