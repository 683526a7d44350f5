"""The one hot read (a user by id, for GET /me) on asyncpg's own pool, beside the engine.

Every authenticated page asks /me, and the user row must be read fresh each time (a disabled
account or a changed role shows at once). Through SQLAlchemy that read cost about 0.8 ms of
CPU (connection checkout and reset, events, statement caching, greenlet hops); straight on an
asyncpg pool, with its prepared-statement cache, a tenth of that (bench/bench_auth_pool.py,
adr/0018). The statement is fixed and takes the id as a bind parameter; the pool connects with
the engine's own connect arguments, so it reaches the same database with the same credentials
and TLS. No transaction or session state is ever left on these connections, so the pool's
reset between uses is skipped (``reset=``); a connection cancelled or broken mid-statement is
still closed by the pool, never reused.
"""

from __future__ import annotations

import asyncio
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
#: Failures that mean the connection is gone (server restart, network) or the pool is shut.
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


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Only the fixed read runs here: no transaction, SET, LISTEN or advisory lock to undo."""


def engine_connect_kwargs(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg's connect arguments for the database ``engine`` (PostgreSQL on asyncpg) uses."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    assert not args, "the asyncpg dialect passes keyword arguments only"
    # Options of SQLAlchemy's adapter, not of asyncpg.connect.
    for option in ("async_creator_fn", "prepared_statement_cache_size"):
        kwargs.pop(option, None)
    kwargs.pop("prepared_statement_name_func", None)
    return dict(kwargs)


class PgUserReader:
    """At most ``size`` connections (opened on first use); a caller beyond that waits up to
    ``acquire_timeout_s``, then gets a readable 503, as does one whose connection breaks."""

    def __init__(
        self, connect_kwargs: dict[str, Any], *, size: int = 4, acquire_timeout_s: float = 10.0
    ) -> None:
        self._acquire_timeout_s = acquire_timeout_s
        self._pool_kwargs = {
            "min_size": 0,
            "max_size": size,
            "reset": _nothing_to_reset,
            **connect_kwargs,
        }
        self._started = asyncio.Lock()
        self._live: asyncpg.Pool | None = None
        self._closed = False

    @classmethod
    def for_engine(
        cls, engine: AsyncEngine, *, size: int = 4, acquire_timeout_s: float = 10.0
    ) -> PgUserReader:
        return cls(engine_connect_kwargs(engine), size=size, acquire_timeout_s=acquire_timeout_s)

    async def user_by_id(self, user_id: str) -> User | None:
        pool = await self._ready()
        try:
            async with pool.acquire(timeout=self._acquire_timeout_s) as connection:
                row = await connection.fetchrow(_USER_BY_ID, user_id)
        except TimeoutError as exc:
            raise ServiceUnavailableError(_BUSY_DETAIL, headers={"Retry-After": "1"}) from exc
        except _LOST as exc:
            raise ServiceUnavailableError(_LOST_DETAIL, headers={"Retry-After": "1"}) from exc
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

    async def _ready(self) -> asyncpg.Pool:
        if self._live is not None:
            return self._live
        # Made on first use, in the running loop; min_size=0, so that opens no connection.
        async with self._started:
            if self._closed:
                raise ServiceUnavailableError(_BUSY_DETAIL, headers={"Retry-After": "1"})
            if self._live is None:
                self._live = await asyncpg.create_pool(**self._pool_kwargs)
            return self._live

    async def close(self) -> None:
        async with self._started:
            self._closed = True
            live, self._live = self._live, None
        if live is None:
            return
        try:
            await asyncio.wait_for(live.close(), timeout=5)
        except TimeoutError:
            live.terminate()
