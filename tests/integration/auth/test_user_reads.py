"""The hot PostgreSQL read behind /me (asyncpg's pool): the right row, bounded connections,
readable 503s when the server drops its connections or every connection is busy, nothing
leaked by a cancelled caller, and recovery afterwards. Asserted on what PostgreSQL sees
(pg_stat_activity) and on what callers get, not on the pool's insides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from kglab_auth.domain import Role, User
from kglab_auth.store.sql import SqlAuthStore, create_engine
from kglab_auth.store.user_reads import PgUserReader, engine_connect_kwargs
from kglab_shared.errors import ServiceUnavailableError
from tests.waiting import wait_until

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


async def _count_other_backends(url: str, counted: str, *, where: str = "true") -> int:
    """``count(<counted>)`` over the database's other connections, from an admin connection."""
    admin = await asyncpg.connect(url)
    try:
        count: int = await admin.fetchval(
            f"SELECT count({counted}) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        )
        return count
    finally:
        await admin.close()


async def _connections(url: str) -> int:
    return await _count_other_backends(url, "*")


async def _terminate_other_backends(url: str) -> int:
    return await _count_other_backends(url, "pg_terminate_backend(pid)")


@asynccontextmanager
async def _users_locked(url: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold the users table so that every read of it waits (a statement in flight)."""
    admin = await asyncpg.connect(url)
    try:
        async with admin.transaction():
            await admin.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            yield admin
    finally:
        await admin.close()


async def _waiting_on_lock(url: str, count: int) -> None:
    """Until ``count`` statements wait for the lock (asked on a connection of its own: within
    the locking transaction pg_stat_activity would read the same snapshot every time)."""

    async def waiting() -> bool:
        found = await _count_other_backends(url, "*", where="wait_event_type = 'Lock'")
        return found >= count

    await wait_until(waiting, timeout_s=10)


async def test_reads_the_row_as_the_repository_does(auth_database: str) -> None:
    alice, bob = _user("alice"), _user("bob", disabled=True)
    store = await _store_with_users(auth_database, alice, bob)
    try:
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
        await store.engine.dispose()  # only the hot reader's connections remain
        ids = [users[i % len(users)].id for i in range(200)]
        read = await asyncio.gather(*(store.user_by_id(i) for i in ids))
        assert [u.id if u else None for u in read] == ids
        assert 1 <= await _connections(auth_database) <= 2
    finally:
        await store.close()
    assert await _connections(auth_database) == 0


async def test_idle_connections_the_server_dropped_are_replaced(auth_database: str) -> None:
    store = await _store_with_users(auth_database, _user("carol"))
    try:
        assert await store.user_by_id("carol") is not None
        await store.engine.dispose()
        assert await _terminate_other_backends(auth_database) >= 1

        async def gone() -> bool:
            return await _connections(auth_database) == 0

        await wait_until(gone)
        # The dead idle connection is noticed and replaced: the read still succeeds.
        assert await store.user_by_id("carol") is not None
        assert await _connections(auth_database) == 1
    finally:
        await store.close()


async def test_a_connection_lost_mid_statement_is_a_readable_503_then_recovers(
    auth_database: str,
) -> None:
    store = await _store_with_users(auth_database, _user("carol"))
    await store.engine.dispose()
    reader = PgUserReader.for_engine(store.engine, size=1)
    try:
        async with _users_locked(auth_database):
            read = asyncio.create_task(reader.user_by_id("carol"))
            await _waiting_on_lock(auth_database, 1)
            killed = await _count_other_backends(
                auth_database, "pg_terminate_backend(pid)", where="wait_event_type = 'Lock'"
            )
            assert killed == 1
            with pytest.raises(ServiceUnavailableError, match="retry the request") as caught:
                await read
        assert caught.value.headers["Retry-After"] == "1"
        found = await reader.user_by_id("carol")
        assert found is not None
        assert found.id == "carol"
        assert await _connections(auth_database) == 1
    finally:
        await reader.close()
        await store.close()


async def test_a_busy_reader_answers_503_and_a_cancelled_caller_leaks_nothing(
    auth_database: str,
) -> None:
    store = await _store_with_users(auth_database, _user("dave"))
    assert store.engine.dialect.driver == "asyncpg"
    await store.engine.dispose()
    reader = PgUserReader.for_engine(store.engine, size=1, acquire_timeout_s=0.2)
    try:
        async with _users_locked(auth_database):
            # The only connection is taken by a read the lock holds mid-statement...
            holding = asyncio.create_task(reader.user_by_id("dave"))
            await _waiting_on_lock(auth_database, 1)
            # ...so the next read waits, then gives up readably.
            with pytest.raises(ServiceUnavailableError, match="busy"):
                await reader.user_by_id("dave")
            # A waiting caller whose request goes away leaves nothing behind.
            waiting = asyncio.create_task(reader.user_by_id("dave"))
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # And so does one cancelled mid-statement: its connection is not reused half-read.
            holding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holding
        for _ in range(3):
            found = await reader.user_by_id("dave")
            assert found is not None
            assert found.id == "dave"
        assert await _connections(auth_database) == 1
    finally:
        await reader.close()
        await store.close()
    with pytest.raises(ServiceUnavailableError):
        await reader.user_by_id("dave")
    assert await _connections(auth_database) == 0


async def test_an_unreachable_server_is_a_readable_503(auth_database: str) -> None:
    store = await _store_with_users(auth_database)
    connect = {**engine_connect_kwargs(store.engine), "port": 1, "timeout": 2}
    reader = PgUserReader(connect)
    try:
        with pytest.raises(ServiceUnavailableError, match="retry the request"):
            await reader.user_by_id("anyone")
        # Nothing half-opened is kept: the next read tries afresh, and fails the same way.
        with pytest.raises(ServiceUnavailableError, match="retry the request"):
            await reader.user_by_id("anyone")
    finally:
        await reader.close()
        await store.close()
