"""SQLAlchemy engines and Alembic migrations, the same way for every service that keeps
relational state: PostgreSQL (asyncpg) in production, SQLite (aiosqlite) embedded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, column, event, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from kglab_shared.settings import ServiceSettings

if TYPE_CHECKING:
    from alembic.config import Config


def unavailable_detail(exc: BaseException) -> str | None:
    """A sentence for the caller when ``exc`` means the database is out of reach for now (the
    request may simply be retried), else None. The shared error handler answers these with
    503 and Retry-After instead of a 500."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # SQLAlchemy has already discarded the dead connection; the next one is fresh.
        return "The connection to the database was lost; retry the request."
    if isinstance(exc, PoolTimeoutError):
        return "The database is busy; retry the request in a moment."
    return None


def async_database_url(url: str) -> str:
    """postgresql:// → postgresql+asyncpg://, sqlite:// → sqlite+aiosqlite://."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def create_engine(
    url: str,
    *,
    sqlite_pragmas: Sequence[str] = ("busy_timeout=5000",),
    pool_size: int = 20,
    max_overflow: int = 0,
    pool_timeout: float = 10,
    pre_ping: bool = False,
) -> AsyncEngine:
    """An engine for ``url``; on SQLite each new connection runs ``PRAGMA`` ``sqlite_pragmas``.

    PostgreSQL pools are fixed-size by default: under load, requests wait briefly for a pooled
    connection rather than opening and closing extra ones (connection churn showed up as the
    top cost when profiling auth). ``pre_ping`` costs a round trip per checkout.
    """
    async_url = async_database_url(url)
    # Looked up at each call, not imported: with tracing on, OpenTelemetry's SQLAlchemy
    # instrumentation replaces it after this module is imported, and every engine made
    # afterwards records a span per statement (kglab_shared.tracing).
    create_async_engine = sqlalchemy_asyncio.create_async_engine
    if async_url.startswith("sqlite"):
        engine = create_async_engine(async_url)
        pragmas = [f"PRAGMA {pragma}" for pragma in sqlite_pragmas]

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            for statement in pragmas:
                cursor.execute(statement)
            cursor.close()

        return engine
    return create_async_engine(
        async_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        pool_pre_ping=pre_ping,
    )


def alembic_config(connection: Connection, migrations_dir: Path) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["connection"] = connection
    return config


async def current_revision(
    engine: AsyncEngine, version_table: str = "alembic_version"
) -> str | None:
    """The revision recorded in ``version_table`` (the one the service's Alembic environment
    names: services sharing a database keep theirs apart), or None before any migration."""
    query: Select[Any] = select(column("version_num")).select_from(table(version_table))
    async with engine.connect() as connection:
        try:
            row = (await connection.execute(query)).first()
        except DBAPIError:
            return None  # no alembic_version table yet
    return str(row[0]) if row else None


async def run_migrations(
    engine: AsyncEngine,
    migrations_dir: Path,
    *,
    lock_id: int,
    head: str | None = None,
    version_table: str = "alembic_version",
    revision: str = "head",
    down: bool = False,
) -> None:
    """Apply (or with ``down`` revert) migrations programmatically, on either dialect.

    Replicas starting together serialise on a PostgreSQL advisory lock (``lock_id``). When
    ``head`` is given and the database is already there (per ``version_table``, which must be
    the one the migrations' env.py configures), Alembic is not even imported (about a second
    of start-up).
    """
    if (
        not down
        and revision == "head"
        and head
        and await current_revision(engine, version_table) == head
    ):
        return
    from alembic import command

    def _run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        config = alembic_config(connection, migrations_dir)
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_run)


async def migrate_and_exit(
    settings: ServiceSettings,
    url: str,
    create_engine: Callable[[str], AsyncEngine],
    run_migrations: Callable[[AsyncEngine], Awaitable[None]],
) -> None:
    """``python -m kglab_<service>.migrate``: apply a service's migrations and return. The
    chart runs it as a pre-install/pre-upgrade hook Job (ADR 0027), so a failing migration
    stops the release before a new pod starts; each service's start-up migrates too (a no-op
    at head, serialised by a lock) for compose and ``make stack``."""
    from kglab_shared.logging import configure_logging, get_logger

    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    engine = create_engine(url)
    try:
        await run_migrations(engine)
    finally:
        await engine.dispose()
    get_logger(__name__).info("migrations_applied", service=settings.service_name)
