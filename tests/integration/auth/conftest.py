"""Integration fixtures: a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.auth.servers import fresh_postgres_database


@pytest.fixture
async def auth_database(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_postgres_database(postgres_url) as url:
        yield url
