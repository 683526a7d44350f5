"""The SQL adapter (SQLAlchemy 2 async): PostgreSQL via asyncpg, SQLite via aiosqlite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kglab_auth.domain import (
    ApiKey,
    OAuthState,
    PasswordReset,
    RefreshToken,
    Role,
    SigningKeyRecord,
    User,
)
from kglab_auth.store import tables as t
from kglab_auth.store.port import DuplicateEmailError
from kglab_auth.store.user_reads import PgUserReader
from kglab_shared import sql as shared_sql
from kglab_shared.errors import ServiceUnavailableError
from kglab_shared.sql import async_database_url, current_revision, sqlite_url

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "SqlAuthStore",
    "async_database_url",
    "create_engine",
    "current_revision",
    "run_migrations",
    "sqlite_url",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The newest migration (a test holds it equal to alembic's own head). A database already
#: there is left alone without importing alembic, which costs about a second at start-up.
HEAD_REVISION = "0002"
# Serialises concurrent start-ups of several replicas migrating one PostgreSQL database.
_MIGRATION_LOCK_ID = 0x6B676C6162  # "kglab"


def create_engine(url: str) -> AsyncEngine:
    # No pre-ping: a connection the server dropped fails its request with a readable 503 (see
    # SqlAuthStore) and is discarded; the next one is fresh.
    return shared_sql.create_engine(url, sqlite_pragmas=("foreign_keys=ON", "busy_timeout=5000"))


async def run_migrations(
    engine: AsyncEngine, revision: str = "head", *, down: bool = False
) -> None:
    """Apply (or with ``down`` revert) the auth migrations, on either dialect."""
    await shared_sql.run_migrations(
        engine,
        MIGRATIONS_DIR,
        lock_id=_MIGRATION_LOCK_ID,
        head=HEAD_REVISION,
        revision=revision,
        down=down,
    )


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _req(value: datetime | None) -> datetime:
    result = _utc(value)
    assert result is not None
    return result


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        role=Role(row.role),
        disabled=bool(row.disabled),
        created_at=_req(row.created_at),
        updated_at=_req(row.updated_at),
    )


def _refresh(row: Any) -> RefreshToken:
    return RefreshToken(
        id=row.id,
        family_id=row.family_id,
        user_id=row.user_id,
        token_hash=row.token_hash,
        created_at=_req(row.created_at),
        expires_at=_req(row.expires_at),
        used_at=_utc(row.used_at),
        revoked_at=_utc(row.revoked_at),
    )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        secret_hash=row.secret_hash,
        created_at=_req(row.created_at),
        last_used_at=_utc(row.last_used_at),
        revoked_at=_utc(row.revoked_at),
    )


class SqlAuthRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add_user(self, user: User) -> None:
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    insert(t.users).values(
                        id=user.id,
                        email=user.email,
                        password_hash=user.password_hash,
                        role=user.role.value,
                        disabled=user.disabled,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateEmailError(user.email) from exc

    async def user_by_id(self, user_id: str) -> User | None:
        row = (await self._c.execute(select(t.users).where(t.users.c.id == user_id))).first()
        return _user(row) if row else None

    async def user_by_email(self, email: str) -> User | None:
        row = (await self._c.execute(select(t.users).where(t.users.c.email == email))).first()
        return _user(row) if row else None

    async def list_users(self, *, after_email: str | None, limit: int) -> list[User]:
        query = select(t.users).order_by(t.users.c.email).limit(limit)
        if after_email is not None:
            query = query.where(t.users.c.email > after_email)
        return [_user(row) for row in await self._c.execute(query)]

    async def save_user(self, user: User) -> None:
        await self._c.execute(
            update(t.users)
            .where(t.users.c.id == user.id)
            .values(
                password_hash=user.password_hash,
                role=user.role.value,
                disabled=user.disabled,
                updated_at=user.updated_at,
            )
        )

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._c.execute(
            insert(t.refresh_tokens).values(
                id=token.id,
                family_id=token.family_id,
                user_id=token.user_id,
                token_hash=token.token_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    async def refresh_token_by_hash(self, token_hash: str) -> RefreshToken | None:
        row = (
            await self._c.execute(
                select(t.refresh_tokens).where(t.refresh_tokens.c.token_hash == token_hash)
            )
        ).first()
        return _refresh(row) if row else None

    async def spend_refresh_token(self, token_id: str, at: datetime) -> bool:
        result = await self._c.execute(
            update(t.refresh_tokens)
            .where(and_(t.refresh_tokens.c.id == token_id, t.refresh_tokens.c.used_at.is_(None)))
            .values(used_at=at)
        )
        return result.rowcount == 1

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        await self._c.execute(
            update(t.refresh_tokens)
            .where(
                and_(
                    t.refresh_tokens.c.family_id == family_id,
                    t.refresh_tokens.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=at)
        )

    async def revoke_user_sessions(
        self, user_id: str, at: datetime, *, issued_since: datetime
    ) -> list[str]:
        rows = await self._c.execute(
            update(t.refresh_tokens)
            .where(
                and_(
                    t.refresh_tokens.c.user_id == user_id,
                    t.refresh_tokens.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=at)
            .returning(t.refresh_tokens.c.family_id, t.refresh_tokens.c.created_at)
        )
        since = _req(issued_since)
        return sorted({family for family, created in rows if _req(created) >= since})

    async def add_password_reset(self, reset: PasswordReset) -> None:
        await self._c.execute(
            insert(t.password_resets).values(
                id=reset.id,
                user_id=reset.user_id,
                token_hash=reset.token_hash,
                created_at=reset.created_at,
                expires_at=reset.expires_at,
            )
        )

    async def password_reset_by_hash(self, token_hash: str) -> PasswordReset | None:
        row = (
            await self._c.execute(
                select(t.password_resets).where(t.password_resets.c.token_hash == token_hash)
            )
        ).first()
        if row is None:
            return None
        return PasswordReset(
            id=row.id,
            user_id=row.user_id,
            token_hash=row.token_hash,
            created_at=_req(row.created_at),
            expires_at=_req(row.expires_at),
            used_at=_utc(row.used_at),
        )

    async def spend_password_resets(self, user_id: str, at: datetime) -> None:
        await self._c.execute(
            update(t.password_resets)
            .where(
                and_(
                    t.password_resets.c.user_id == user_id,
                    t.password_resets.c.used_at.is_(None),
                )
            )
            .values(used_at=at)
        )

    async def add_api_key(self, key: ApiKey) -> None:
        await self._c.execute(
            insert(t.api_keys).values(
                id=key.id,
                user_id=key.user_id,
                name=key.name,
                scopes=" ".join(key.scopes),
                secret_hash=key.secret_hash,
                created_at=key.created_at,
            )
        )

    async def api_key_by_id(self, key_id: str) -> ApiKey | None:
        row = (await self._c.execute(select(t.api_keys).where(t.api_keys.c.id == key_id))).first()
        return _api_key(row) if row else None

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        rows = await self._c.execute(
            select(t.api_keys)
            .where(and_(t.api_keys.c.user_id == user_id, t.api_keys.c.revoked_at.is_(None)))
            .order_by(t.api_keys.c.created_at, t.api_keys.c.id)
        )
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, user_id: str, at: datetime) -> bool:
        result = await self._c.execute(
            update(t.api_keys)
            .where(
                and_(
                    t.api_keys.c.id == key_id,
                    t.api_keys.c.user_id == user_id,
                    t.api_keys.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=at)
        )
        return result.rowcount == 1

    async def revoke_user_api_keys(self, user_id: str, at: datetime) -> list[str]:
        rows = await self._c.execute(
            update(t.api_keys)
            .where(and_(t.api_keys.c.user_id == user_id, t.api_keys.c.revoked_at.is_(None)))
            .values(revoked_at=at)
            .returning(t.api_keys.c.id)
        )
        return [key_id for (key_id,) in rows]

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await self._c.execute(
            update(t.api_keys).where(t.api_keys.c.id == key_id).values(last_used_at=at)
        )

    async def signing_keys(self) -> list[SigningKeyRecord]:
        rows = await self._c.execute(
            select(t.signing_keys).order_by(
                t.signing_keys.c.created_at.desc(), t.signing_keys.c.kid
            )
        )
        return [
            SigningKeyRecord(
                kid=row.kid,
                algorithm=row.algorithm,
                private_jwk=row.private_jwk,
                public_jwk=row.public_jwk,
                created_at=_req(row.created_at),
                retired_at=_utc(row.retired_at),
            )
            for row in rows
        ]

    async def add_signing_key(self, record: SigningKeyRecord) -> None:
        await self._c.execute(
            insert(t.signing_keys).values(
                kid=record.kid,
                algorithm=record.algorithm,
                private_jwk=record.private_jwk,
                public_jwk=record.public_jwk,
                created_at=record.created_at,
            )
        )

    async def retire_signing_keys(self, at: datetime, *, keep_kid: str) -> None:
        await self._c.execute(
            update(t.signing_keys)
            .where(and_(t.signing_keys.c.kid != keep_kid, t.signing_keys.c.retired_at.is_(None)))
            .values(retired_at=at)
        )

    async def add_oauth_state(self, state: OAuthState) -> None:
        await self._c.execute(
            insert(t.oauth_states).values(
                state=state.state,
                provider=state.provider,
                nonce=state.nonce,
                code_verifier=state.code_verifier,
                expires_at=state.expires_at,
            )
        )

    async def purge_oauth_states(self, before: datetime) -> None:
        await self._c.execute(delete(t.oauth_states).where(t.oauth_states.c.expires_at < before))

    async def take_oauth_state(self, state: str) -> OAuthState | None:
        row = (
            await self._c.execute(select(t.oauth_states).where(t.oauth_states.c.state == state))
        ).first()
        if row is None:
            return None
        result = await self._c.execute(
            delete(t.oauth_states).where(t.oauth_states.c.state == state)
        )
        if result.rowcount != 1:  # taken by a concurrent callback
            return None
        return OAuthState(
            state=row.state,
            provider=row.provider,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            expires_at=_req(row.expires_at),
        )

    async def linked_user_id(self, provider: str, subject: str) -> str | None:
        row = (
            await self._c.execute(
                select(t.oauth_identities.c.user_id).where(
                    and_(
                        t.oauth_identities.c.provider == provider,
                        t.oauth_identities.c.subject == subject,
                    )
                )
            )
        ).first()
        return str(row.user_id) if row else None

    async def link_identity(self, provider: str, subject: str, user_id: str, at: datetime) -> None:
        await self._c.execute(
            insert(t.oauth_identities).values(
                provider=provider, subject=subject, user_id=user_id, created_at=at
            )
        )


@contextmanager
def _lost_connection_is_unavailable() -> Iterator[None]:
    """A dropped connection or an exhausted pool is a readable 503 at the store already."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError) as exc:
        detail = shared_sql.unavailable_detail(exc)
        if detail is None:
            raise
        raise ServiceUnavailableError(detail, headers={"Retry-After": "1"}) from exc


class SqlAuthStore:
    def __init__(self, engine: AsyncEngine, *, hot_read_connections: int = 4) -> None:
        self.engine = engine
        # Shares the engine's pool; the driver sends no BEGIN/COMMIT in autocommit mode.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # PostgreSQL: the per-request read of /me goes straight to an asyncpg pool (user_reads).
        self._hot: PgUserReader | None = None
        if engine.dialect.driver == "asyncpg":
            self._hot = PgUserReader.for_engine(engine, size=hot_read_connections)

    async def user_by_id(self, user_id: str) -> User | None:
        """One user, read fresh (no transaction, no cache): the hot read of every /me."""
        if self._hot is not None:
            return await self._hot.user_by_id(user_id)
        async with self.reader() as repo:
            return await repo.user_by_id(user_id)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlAuthRepository]:
        with _lost_connection_is_unavailable():
            async with self.engine.begin() as connection:
                yield SqlAuthRepository(connection)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[SqlAuthRepository]:
        with _lost_connection_is_unavailable():
            async with self._autocommit.connect() as connection:
                yield SqlAuthRepository(connection)

    async def migrate(self) -> None:
        await run_migrations(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._hot is not None:
            await self._hot.close()
        await self.engine.dispose()
