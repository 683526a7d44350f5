"""The lean PostgreSQL read behind /me: the right row, bounded connections, readable 503s when
the server drops its connections or every connection is busy, and recovery afterwards."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from kglab_auth.domain import Role, User
from kglab_auth.store.lean_pg import LeanUserReader
from kglab_auth.store.sql import SqlAuthStore, create_engine
from kglab_shared.errors import ServiceUnavailableError

pytestmark = pytest.mark.backend("postgres")


def _user(user_id: str, *, disabled: bool = False) -> User:
    now = datetime(2026, 3, 2, 9, 14, 5, 112000, tzinfo=UTC)
    return User(user_id, f"{user_id}@example.com", None, Role.USER, disabled, now, now)


async def _store_with_users(url: str, *users: User) -> SqlAuthStore:
    store = SqlAuthStore(create_engine(url), hot_read_connections=2)
    await store.migrate()
    async with store.transaction() as repo:
        for user in users:
            await repo.add_user(user)
    return store


async def _count_other_backends(url: str, counted: str) -> int:
    """``count(<counted>)`` over the database's other connections, from an admin connection."""
    admin = await asyncpg.connect(url)
    try:
        count: int = await admin.fetchval(
            f"SELECT count({counted}) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return count
    finally:
        await admin.close()


async def _connections_named_by(url: str) -> int:
    return await _count_other_backends(url, "*")


async def test_reads_the_row_as_the_repository_does(auth_database: str) -> None:
    alice, bob = _user("alice"), _user("bob", disabled=True)
    store = await _store_with_users(auth_database, alice, bob)
    try:
        assert store._lean is not None, "PostgreSQL reads /me on the lean path"
        async with store.reader() as repo:
            assert await store.user_by_id("alice") == await repo.user_by_id("alice") == alice
            assert await store.user_by_id("bob") == await repo.user_by_id("bob") == bob
        assert await store.user_by_id("nobody") is None
        assert await store.user_by_id("alice' OR '1'='1") is None
        # Fresh each time: a change committed now is read now.
        async with store.transaction() as repo:
            changed = _user("alice", disabled=True)
            await repo.save_user(changed)
        read = await store.user_by_id("alice")
        assert read is not None
        assert read.disabled is True
        assert read.created_at.tzinfo is not None
    finally:
        await store.close()


async def test_many_concurrent_reads_share_a_bounded_set_of_connections(
    auth_database: str,
) -> None:
    users = [_user(f"user{i}") for i in range(10)]
    store = await _store_with_users(auth_database, *users)
    try:
        await store.engine.dispose()  # only the lean reader's connections remain
        ids = [users[i % len(users)].id for i in range(200)]
        read = await asyncio.gather(*(store.user_by_id(i) for i in ids))
        assert [u.id if u else None for u in read] == ids
        assert store._lean is not None
        assert store._lean._opened <= 2
        assert await _connections_named_by(auth_database) <= 2
    finally:
        await store.close()


async def _terminate_other_backends(url: str) -> int:
    return await _count_other_backends(url, "pg_terminate_backend(pid)")


async def test_idle_connections_the_server_dropped_are_replaced(auth_database: str) -> None:
    store = await _store_with_users(auth_database, _user("carol"))
    try:
        assert await store.user_by_id("carol") is not None
        assert await _terminate_other_backends(auth_database) >= 1
        await asyncio.sleep(0.2)  # the termination notice reaches the idle connection
        # The dead idle connection is noticed and replaced: the read still succeeds.
        assert await store.user_by_id("carol") is not None
        assert store._lean is not None
        assert store._lean._opened == 1
    finally:
        await store.close()


async def test_a_connection_lost_mid_statement_is_a_readable_503_then_recovers(
    auth_database: str,
) -> None:
    store = await _store_with_users(auth_database, _user("carol"))
    reader = LeanUserReader.for_engine(store.engine, size=1)
    try:

        async def statement_killed_midway() -> None:
            async with reader._connection() as connection:
                slow = asyncio.create_task(connection.execute("SELECT pg_sleep(10)"))
                await asyncio.sleep(0.3)
                await store.engine.dispose()
                assert await _terminate_other_backends(auth_database) >= 1
                await slow

        with pytest.raises(ServiceUnavailableError, match="retry the request") as caught:
            await statement_killed_midway()
        assert caught.value.headers["Retry-After"] == "1"
        assert reader._opened == 0
        found = await reader.user_by_id("carol")
        assert found is not None
        assert found.id == "carol"
    finally:
        await reader.close()
        await store.close()


async def test_a_busy_reader_answers_503_and_a_cancelled_waiter_leaks_nothing(
    auth_database: str,
) -> None:
    store = await _store_with_users(auth_database, _user("dave"))
    assert store.engine.dialect.driver == "asyncpg"
    reader = LeanUserReader.for_engine(store.engine, size=1)
    reader._acquire_timeout_s = 0.2
    try:
        async with reader._connection():
            # The only connection is taken: a read waits, then gives up readably.
            with pytest.raises(ServiceUnavailableError, match="busy"):
                await reader.user_by_id("dave")
            # A waiter whose request goes away leaves the queue.
            waiting = asyncio.create_task(reader.user_by_id("dave"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert not reader._waiters
        found = await reader.user_by_id("dave")
        assert found is not None
        assert found.id == "dave"
        assert reader._opened == 1
    finally:
        await reader.close()
        await store.close()
    with pytest.raises(ServiceUnavailableError):
        await reader.user_by_id("dave")


async def test_an_unreachable_server_is_a_readable_503(auth_database: str) -> None:
    store = await _store_with_users(auth_database)
    reader = LeanUserReader.for_engine(store.engine)
    reader._connect_kwargs = {**reader._connect_kwargs, "port": 1, "timeout": 2}
    try:
        with pytest.raises(ServiceUnavailableError, match="retry the request"):
            await reader.user_by_id("anyone")
        assert reader._opened == 0
    finally:
        await reader.close()
        await store.close()
