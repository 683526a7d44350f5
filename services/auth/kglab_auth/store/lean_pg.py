"""The one hot read (a user by id, for GET /me) on a few asyncpg connections of its own.

Every authenticated page asks /me, and the user row must be read fresh each time (a disabled
account or a changed role shows at once). Through SQLAlchemy that read cost about 0.8 ms of
CPU (connection checkout and reset, events, statement caching, greenlet hops); straight on
asyncpg, with its prepared-statement cache, about 0.05 ms. The statement is fixed and takes
the id as a bind parameter; the connections are made from the engine's own connect arguments,
so they reach the same database with the same credentials and TLS. Nothing else uses them:
no transaction is ever opened on them, so they need no reset between uses.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from kglab_auth.domain import Role, User
from kglab_shared.errors import ServiceUnavailableError

_USER_BY_ID = (
    "SELECT id, email, password_hash, role, disabled, created_at, updated_at "
    "FROM users WHERE id = $1"
)
#: Failures that mean the connection is gone (server restart, network): drop it, answer 503.
_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    OSError,
)
_LOST_DETAIL = "The connection to the database was lost; retry the request."
_BUSY_DETAIL = "The database is busy; retry the request in a moment."


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class LeanUserReader:
    """At most ``size`` connections, opened on first use and kept; callers beyond that wait
    (up to ``acquire_timeout_s``, then a readable 503)."""

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        *,
        size: int = 4,
        acquire_timeout_s: float = 10.0,
    ) -> None:
        self._connect_kwargs = connect_kwargs
        self._size = size
        self._acquire_timeout_s = acquire_timeout_s
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._opened = 0
        self._closed = False

    @classmethod
    def for_engine(cls, engine: AsyncEngine, *, size: int = 4) -> LeanUserReader:
        """Connect the way ``engine`` (PostgreSQL on asyncpg) connects."""
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        assert not args, "the asyncpg dialect passes keyword arguments only"
        # Options of SQLAlchemy's adapter, not of asyncpg.connect.
        for option in ("async_creator_fn", "prepared_statement_cache_size"):
            kwargs.pop(option, None)
        kwargs.pop("prepared_statement_name_func", None)
        return cls(dict(kwargs), size=size)

    async def user_by_id(self, user_id: str) -> User | None:
        async with self._connection() as connection:
            row = await connection.fetchrow(_USER_BY_ID, user_id)
        if row is None:
            return None
        return User(
            id=row[0],
            email=row[1],
            password_hash=row[2],
            role=Role(row[3]),
            disabled=bool(row[4]),
            created_at=_aware(row[5]),
            updated_at=_aware(row[6]),
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self._acquire()
        try:
            yield connection
        except _LOST as exc:
            self._discard(connection)
            raise ServiceUnavailableError(_LOST_DETAIL, headers={"Retry-After": "1"}) from exc
        except asyncio.CancelledError:
            # Cancelled mid-statement: the protocol state is unknown, so never reuse it.
            self._discard(connection)
            raise
        except Exception:
            # A statement error leaves the connection usable (no transaction is ever open).
            self._release(connection)
            raise
        else:
            self._release(connection)

    async def _acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise ServiceUnavailableError(_BUSY_DETAIL, headers={"Retry-After": "1"})
            while self._idle:
                connection = self._idle.pop()
                if not connection.is_closed():
                    return connection
                self._opened -= 1
            if self._opened < self._size:
                return await self._open()
            handed = await self._wait()
            if handed is not None:
                return handed
            # None: a slot was freed (a connection was dropped); look again.

    async def _open(self) -> asyncpg.Connection:
        self._opened += 1
        try:
            return await asyncpg.connect(**self._connect_kwargs)
        except BaseException as exc:
            self._opened -= 1
            self._wake_one()
            if isinstance(exc, _LOST):
                raise ServiceUnavailableError(_LOST_DETAIL, headers={"Retry-After": "1"}) from exc
            raise

    async def _wait(self) -> asyncpg.Connection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
        self._waiters.append(waiter)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(
                    ServiceUnavailableError(_BUSY_DETAIL, headers={"Retry-After": "1"})
                )

        timer = loop.call_later(self._acquire_timeout_s, expire)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a free slot) just as this caller gave up: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._wake_one()
                else:
                    self._release(handed)
            raise
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _release(self, connection: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if self._closed:
            connection.terminate()
            self._opened -= 1
            return
        self._idle.append(connection)

    def _discard(self, connection: asyncpg.Connection) -> None:
        connection.terminate()
        self._opened -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._opened -= 1
            await connection.close(timeout=5)
