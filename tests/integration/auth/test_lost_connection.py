"""A database connection the server drops answers one readable 503, and the pool recovers."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from kglab_auth.store.sql import SqlAuthStore, async_database_url, create_engine
from kglab_shared.errors import ServiceUnavailableError


@pytest.mark.backend("postgres")
async def test_dropped_connections_fail_readably_then_recover(auth_database: str) -> None:
    store = SqlAuthStore(create_engine(auth_database))
    try:
        await store.migrate()
        async with store.reader() as repo:
            assert await repo.user_by_email("nobody@example.com") is None
        # The pool now holds an idle connection; the server drops it (as in a restart).
        admin = await asyncpg.connect(auth_database)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1

        with pytest.raises(ServiceUnavailableError, match="retry the request"):
            async with store.reader() as repo:
                await repo.user_by_email("nobody@example.com")
        # The dead connection was discarded: both kinds of unit of work work again.
        async with store.reader() as repo:
            assert await repo.user_by_email("nobody@example.com") is None
        async with store.transaction() as repo:
            assert await repo.list_users(after_email=None, limit=5) == []
    finally:
        await store.close()


@pytest.mark.backend("postgres")
async def test_an_exhausted_pool_is_a_readable_503(auth_database: str) -> None:
    engine = create_async_engine(
        async_database_url(auth_database), pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    store = SqlAuthStore(engine)
    try:
        await store.migrate()
        async with store.reader():
            # The only connection is taken: the next unit of work waits, then gives up readably.
            with pytest.raises(ServiceUnavailableError, match="busy") as caught:
                async with store.transaction():
                    pass
        assert caught.value.headers["Retry-After"] == "1"
        async with store.transaction() as repo:
            assert await repo.list_users(after_email=None, limit=1) == []
    finally:
        await store.close()
