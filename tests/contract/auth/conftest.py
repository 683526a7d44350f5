"""The contract suite: one set of test bodies, run against every wiring of the auth service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.auth.harness import WIRINGS, AuthHarness, auth_harness


@pytest.fixture(params=WIRINGS)
def wiring(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_urls(wiring: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if wiring == "embedded":
        return {}
    return {
        "postgres_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
    }


@pytest.fixture
async def auth(
    wiring: str, backend_urls: dict[str, str], tmp_path: Path
) -> AsyncIterator[AuthHarness]:
    async with auth_harness(wiring, tmp_path, **backend_urls) as harness:
        yield harness
