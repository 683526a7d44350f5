"""The claimed-chunk reader waits out a holder that is restarting (no connection, 502/503/504)
instead of failing the event at once, and fails at once on anything else."""

from __future__ import annotations

import httpx
import pytest

from kglab_shared.claims import CLAIM_HEADER, ClaimedChunkReader, HolderUnavailableError

PAGE = {"items": [{"chunk_id": "c0", "position": 0, "text": "Ada wrote."}], "next_cursor": None}


def reader(answers: list[int | Exception], budget_s: float = 10.0) -> ClaimedChunkReader:
    remaining = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers[CLAIM_HEADER] == "the-claim"
        answer = remaining.pop(0) if remaining else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json=PAGE if answer == 200 else {"detail": "x"})

    return ClaimedChunkReader(
        "http://holder", unavailable_budget_s=budget_s, transport=httpx.MockTransport(handle)
    )


async def test_a_restarting_holder_is_waited_for() -> None:
    refused = httpx.ConnectError("connection refused")
    chunks = await reader([refused, 503, 502]).read("/chunks", "the-claim")
    assert chunks is not None
    assert [c.chunk_id for c in chunks] == ["c0"]


async def test_a_gone_document_reads_as_none() -> None:
    assert await reader([404]).read("/chunks", "the-claim") is None


async def test_another_error_fails_at_once_for_the_bus_to_retry() -> None:
    with pytest.raises(httpx.HTTPStatusError):
        await reader([500, 200]).read("/chunks", "the-claim")


async def test_a_holder_away_longer_than_the_budget_fails() -> None:
    with pytest.raises(HolderUnavailableError):
        await reader([503] * 50, budget_s=0.5).read("/chunks", "the-claim")
