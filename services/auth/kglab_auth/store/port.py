"""The ports the service layer needs, in domain terms. SQL and Redis stay in the adapters."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from kglab_auth.domain import (
    ApiKey,
    OAuthState,
    PasswordReset,
    RefreshToken,
    SigningKeyRecord,
    User,
)


class DuplicateEmailError(Exception):
    """Another user already has this email address."""


class AuthRepository(Protocol):
    """Everything the auth service reads and writes, inside one transaction."""

    async def add_user(self, user: User) -> None:
        """Insert; raise DuplicateEmailError when the email is taken."""

    async def user_by_id(self, user_id: str) -> User | None: ...

    async def user_by_email(self, email: str) -> User | None: ...

    async def list_users(self, *, after_email: str | None, limit: int) -> list[User]:
        """Users ordered by email, strictly after ``after_email``."""

    async def save_user(self, user: User) -> None: ...

    async def add_refresh_token(self, token: RefreshToken) -> None: ...

    async def refresh_token_by_hash(self, token_hash: str) -> RefreshToken | None: ...

    async def spend_refresh_token(self, token_id: str, at: datetime) -> bool:
        """Mark as used; False when it was already used (a concurrent or replayed refresh)."""

    async def revoke_family(self, family_id: str, at: datetime) -> None: ...

    async def revoke_user_sessions(
        self, user_id: str, at: datetime, *, issued_since: datetime
    ) -> list[str]:
        """Revoke every session of the user; return the ids (families) of those that issued a
        token since ``issued_since``: their access tokens may still be alive."""

    async def add_password_reset(self, reset: PasswordReset) -> None: ...

    async def password_reset_by_hash(self, token_hash: str) -> PasswordReset | None: ...

    async def spend_password_resets(self, user_id: str, at: datetime) -> None:
        """Use up every open reset of the user (single use, and older links die too)."""

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def api_key_by_id(self, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self, user_id: str) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str, user_id: str, at: datetime) -> bool:
        """False when the user has no such live key."""

    async def revoke_user_api_keys(self, user_id: str, at: datetime) -> list[str]:
        """Revoke every live key of the user; return their ids."""

    async def touch_api_key(self, key_id: str, at: datetime) -> None: ...

    async def signing_keys(self) -> list[SigningKeyRecord]:
        """Every stored key, newest first."""

    async def add_signing_key(self, record: SigningKeyRecord) -> None: ...

    async def retire_signing_keys(self, at: datetime, *, keep_kid: str) -> None: ...

    async def add_oauth_state(self, state: OAuthState) -> None: ...

    async def purge_oauth_states(self, before: datetime) -> None:
        """Forget sign-in attempts that expired before ``before`` (abandoned logins)."""

    async def take_oauth_state(self, state: str) -> OAuthState | None:
        """Return and delete (single use)."""

    async def linked_user_id(self, provider: str, subject: str) -> str | None: ...

    async def link_identity(
        self, provider: str, subject: str, user_id: str, at: datetime
    ) -> None: ...


class AuthStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AuthRepository]:
        """One unit of work: commits when the block ends normally, rolls back otherwise."""

    def reader(self) -> AbstractAsyncContextManager[AuthRepository]:
        """Reads outside a transaction (each statement sees what is committed): no BEGIN and
        COMMIT round trips. Use it only for blocks that read, never for read-then-write."""

    async def user_by_id(self, user_id: str) -> User | None:
        """One user as committed now (never cached): the cheapest read the store can do, for
        the per-request /me."""

    async def migrate(self) -> None:
        """Bring the schema to the newest migration."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
