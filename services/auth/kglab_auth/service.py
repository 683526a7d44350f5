"""The auth service layer: every use case, one unit of work each, domain errors out."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kglab_auth.config import AuthSettings
from kglab_auth.domain import (
    ApiKey,
    OAuthState,
    OutgoingMail,
    PasswordReset,
    RefreshToken,
    Role,
    TokenPair,
    User,
    check_password_policy,
    format_api_key,
    new_id,
    normalise_email,
    opaque_token,
    parse_api_key,
    token_digest,
    validate_scopes,
)
from kglab_auth.oauth import ExternalIdentity, OAuthProvider
from kglab_auth.passwords import PasswordHasher
from kglab_auth.store.port import AuthRepository, AuthStore, DuplicateEmailError
from kglab_auth.tokens import (
    AccessTokenSigner,
    generate_signing_key,
    jwks_document,
    published_keys,
)
from kglab_shared.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
)
from kglab_shared.identity import Identity
from kglab_shared.logging import get_logger
from kglab_shared.pages import Page
from kglab_shared.ratelimit import Quota, RateLimiter
from kglab_shared.revocation import (
    MemoryRevocationFeed,
    Revocation,
    RevocationFeed,
    RevocationKind,
)
from kglab_shared.scopes import SESSION_SCOPE

_log = get_logger(__name__)
_SIGNER_REFRESH_S = 60.0  # how soon a rotation made by another replica is picked up
FULL_SCOPE = SESSION_SCOPE
#: How long a revoked API key stays announced: longer than any gateway caches a key look-up.
_KEY_REVOCATION_TTL_S = 600
#: Clock difference between replicas tolerated when deciding which sessions may hold live tokens.
_SKEW_S = 60


@dataclass(frozen=True, slots=True)
class VerifiedApiKey:
    user_id: str
    role: str
    scopes: tuple[str, ...]
    email: str


def _minutes(seconds: float) -> str:
    minutes = max(1, int((seconds + 59) // 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _encode_cursor(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise UnprocessableError(
            "The cursor is not one this service handed out; start again without it."
        ) from None


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        store: AuthStore,
        hasher: PasswordHasher,
        throttle: RateLimiter,
        oauth_providers: dict[str, OAuthProvider] | None = None,
        revocations: RevocationFeed | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._store = store
        self._hasher = hasher
        # Failed sign-ins in one window: per account and address (locks that pair), per
        # address (locks it), per account from anywhere (slows it, never locks it).
        self._throttle = throttle
        window = settings.login_window_s
        self._pair_quota = Quota(settings.login_max_failures_per_account_and_ip, window)
        self._ip_quota = Quota(settings.login_max_failures_per_ip, window)
        self._account_quota = Quota(settings.login_slow_after_failures_per_account, window)
        self._providers = oauth_providers or {}
        # Without a feed nobody follows the revocations (a service built alone, in unit tests).
        self._revocations: RevocationFeed = revocations or MemoryRevocationFeed()
        self._clock = clock
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._signer: AccessTokenSigner | None = None
        self._signer_loaded_at = 0.0

    # ---- keys -------------------------------------------------------------------------------

    async def ensure_signing_key(self) -> None:
        """Create the first signing key when there is none (start-up)."""
        async with self._store.transaction() as repo:
            if not [k for k in await repo.signing_keys() if k.retired_at is None]:
                await repo.add_signing_key(generate_signing_key(self._clock()))
        self._signer = None

    async def _active_signer(self) -> AccessTokenSigner:
        if self._signer is None or time.monotonic() - self._signer_loaded_at > _SIGNER_REFRESH_S:
            async with self._store.reader() as repo:
                active = [k for k in await repo.signing_keys() if k.retired_at is None]
            if not active:
                await self.ensure_signing_key()
                return await self._active_signer()
            self._signer = AccessTokenSigner(
                active[0],
                issuer=self._settings.issuer,
                audience=self._settings.audience,
                ttl_s=self._settings.access_token_ttl_s,
            )
            self._signer_loaded_at = time.monotonic()
        return self._signer

    async def rotate_signing_key(self) -> str:
        """A new key signs from now on; older keys stay published until their tokens expire."""
        now = self._clock()
        record = generate_signing_key(now)
        async with self._store.transaction() as repo:
            await repo.add_signing_key(record)
            await repo.retire_signing_keys(now, keep_kid=record.kid)
        self._signer = None
        _log.info("signing_key_rotated", kid=record.kid)
        return record.kid

    async def jwks(self) -> dict[str, Any]:
        async with self._store.reader() as repo:
            records = await repo.signing_keys()
        live = published_keys(
            records, now=self._clock(), access_ttl_s=self._settings.access_token_ttl_s
        )
        return jwks_document(live)

    # ---- users ------------------------------------------------------------------------------

    async def register(self, email: str, password: str, *, role: Role = Role.USER) -> User:
        normalised = normalise_email(email)
        check_password_policy(
            password, email=normalised, min_length=self._settings.password_min_length
        )
        password_hash = await self._hasher.hash(password)
        now = self._clock()
        user = User(
            id=new_id(),
            email=normalised,
            password_hash=password_hash,
            role=role,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._store.transaction() as repo:
                if await repo.user_by_email(normalised) is not None:
                    raise DuplicateEmailError(normalised)
                await repo.add_user(user)
        except DuplicateEmailError:
            raise ConflictError(
                f"An account with {normalised} already exists; sign in or reset the password."
            ) from None
        return user

    async def ensure_admin(self, email: str, password: str) -> None:
        """Make sure the bootstrap administrator exists (development start-up)."""
        normalised = normalise_email(email)
        async with self._store.transaction() as repo:
            user = await repo.user_by_email(normalised)
            if user is not None:
                if user.role is not Role.ADMIN or user.disabled:
                    user.role, user.disabled, user.updated_at = Role.ADMIN, False, self._clock()
                    await repo.save_user(user)
                return
        try:
            await self.register(normalised, password, role=Role.ADMIN)
        except ConflictError:  # another replica created it meanwhile
            return

    async def me(self, identity: Identity) -> User:
        user = await self._store.user_by_id(identity.user_id)
        if user is None:
            raise NotFoundError("There is no user account behind this identity.")
        return user

    async def list_users(self, *, limit: int, cursor: str | None) -> Page[User]:
        after = _decode_cursor(cursor) if cursor else None
        async with self._store.reader() as repo:
            users = await repo.list_users(after_email=after, limit=limit + 1)
        more = len(users) > limit
        items = users[:limit]
        return Page(items, _encode_cursor(items[-1].email) if more and items else None)

    async def update_user(
        self,
        admin: Identity,
        user_id: str,
        *,
        disabled: bool | None,
        role: Role | None,
    ) -> User:
        if user_id == admin.user_id and (disabled or (role is not None and role is not Role.ADMIN)):
            raise ConflictError(
                "You cannot disable or demote your own account; ask another administrator."
            )
        now = self._clock()
        sessions: list[str] = []
        keys: list[str] = []
        async with self._store.transaction() as repo:
            user = await repo.user_by_id(user_id)
            if user is None:
                raise NotFoundError(f"There is no user with id {user_id}.")
            demoted = role is not None and user.role is Role.ADMIN and role is not Role.ADMIN
            if disabled is not None:
                user.disabled = disabled
            if role is not None:
                user.role = role
            user.updated_at = now
            await repo.save_user(user)
            if disabled or demoted:
                # Access tokens and cached key look-ups carry the old state: end them now.
                sessions = await repo.revoke_user_sessions(
                    user.id, now, issued_since=self._live_since(now)
                )
                keys = [key.id for key in await repo.list_api_keys(user.id)]
        await self._announce(sessions=sessions, api_keys=keys)
        return user

    # ---- revocations ------------------------------------------------------------------------

    def _live_since(self, now: datetime) -> datetime:
        """Sessions that issued a token after this may still have a live access token."""
        return now - timedelta(seconds=self._settings.access_token_ttl_s + _SKEW_S)

    async def _announce(
        self, *, sessions: Sequence[str] = (), api_keys: Sequence[str] = ()
    ) -> None:
        """Tell every gateway, after the commit, so the revocation holds within a second."""
        now = time.time()
        session_end = now + self._settings.access_token_ttl_s + _SKEW_S
        revocations = [Revocation(RevocationKind.SESSION, s, session_end) for s in sessions]
        revocations += [
            Revocation(RevocationKind.API_KEY, k, now + _KEY_REVOCATION_TTL_S) for k in api_keys
        ]
        if not revocations:
            return
        try:
            await self._revocations.publish(revocations)
        except Exception as exc:
            _log.error("revocation_not_announced", error=type(exc).__name__, count=len(revocations))
            raise ServiceUnavailableError(
                "The change is saved, but the gateways could not be told at once, so old tokens "
                "or keys may keep working for a few minutes. Repeat the request to make it take "
                "effect now.",
                headers={"Retry-After": "2"},
            ) from exc

    # ---- sessions ---------------------------------------------------------------------------

    async def _throttle_check(self, pair_key: str, ip_key: str | None) -> None:
        pair = await self._throttle.usage(self._pair_quota, pair_key)
        if pair.exhausted:
            raise RateLimitedError(
                "Too many failed sign-ins for this account from your network address. "
                f"Try again in {_minutes(pair.reset_after_s)}, or reset the password.",
                retry_after_s=int(pair.reset_after_s) + 1,
            )
        if ip_key is not None:
            address = await self._throttle.usage(self._ip_quota, ip_key)
            if address.exhausted:
                raise RateLimitedError(
                    "Too many failed sign-ins from your network address. "
                    f"Try again in {_minutes(address.reset_after_s)}.",
                    retry_after_s=int(address.reset_after_s) + 1,
                )

    async def _pace_account(self, account_key: str) -> None:
        """An account under a distributed guess is slowed, not locked: its owner still gets in."""
        if (await self._throttle.usage(self._account_quota, account_key)).exhausted:
            await self._sleep(self._settings.login_slow_delay_s)

    async def login(self, email: str, password: str, *, client_ip: str | None) -> TokenPair:
        try:
            normalised = normalise_email(email)
        except UnprocessableError:
            # Not an address anyone registered with: a wrong sign-in like any other (401).
            normalised = email.strip().casefold()
        # Keys hold a digest, so the throttle store never holds addresses.
        digest = token_digest(normalised)
        account_key = f"acct:{digest}"
        pair_key = f"pair:{digest}:{token_digest(client_ip or 'unknown')}"
        ip_key = f"ip:{client_ip}" if client_ip else None
        await self._throttle_check(pair_key, ip_key)
        await self._pace_account(account_key)
        async with self._store.reader() as repo:
            user = await repo.user_by_email(normalised)
        # Unknown users are verified against a dummy hash: same work, same time.
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._throttle.hit(self._pair_quota, pair_key)
            await self._throttle.hit(self._account_quota, account_key)
            if ip_key is not None:
                await self._throttle.hit(self._ip_quota, ip_key)
            raise UnauthorizedError("The email address or the password is wrong.")
        if user.disabled:
            raise ForbiddenError("This account is disabled; ask an administrator to enable it.")
        # The pair only: the account's count keeps pacing a guess that goes on elsewhere.
        await self._throttle.clear(self._pair_quota, pair_key)
        if user.password_hash and self._hasher.needs_rehash(user.password_hash):
            user.password_hash = await self._hasher.hash(password)
            user.updated_at = self._clock()
            async with self._store.transaction() as repo:
                await repo.save_user(user)
        return await self._issue(user, family_id=None)

    async def _issue(self, user: User, *, family_id: str | None) -> TokenPair:
        signer = await self._active_signer()
        async with self._store.transaction() as repo:
            return await self._issue_in(repo, signer, user, family_id=family_id)

    async def _issue_in(
        self,
        repo: AuthRepository,
        signer: AccessTokenSigner,
        user: User,
        *,
        family_id: str | None,
    ) -> TokenPair:
        now = self._clock()
        raw = opaque_token()
        family = family_id or new_id()
        await repo.add_refresh_token(
            RefreshToken(
                id=new_id(),
                family_id=family,
                user_id=user.id,
                token_hash=token_digest(raw),
                created_at=now,
                expires_at=now + timedelta(seconds=self._settings.refresh_token_ttl_s),
            )
        )
        access = signer.sign(
            subject=user.id,
            role=user.role.value,
            scope=FULL_SCOPE,
            email=user.email,
            session_id=family,
            now=now.timestamp(),
        )
        return TokenPair(access_token=access, refresh_token=raw, expires_in=signer.ttl_s)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend ``refresh_token`` for a new pair; a second use revokes its whole family."""
        signer = await self._active_signer()
        now = self._clock()
        replayed = False
        disabled = False
        pair: TokenPair | None = None
        async with self._store.transaction() as repo:
            token = await repo.refresh_token_by_hash(token_digest(refresh_token))
            if token is None:
                raise UnauthorizedError("The refresh token is not valid; sign in again.")
            if token.revoked_at is not None:
                raise UnauthorizedError("This session has been signed out; sign in again.")
            if token.used_at is not None or not await repo.spend_refresh_token(token.id, now):
                # Someone holds a copy of a spent token: end every session descended from it.
                await repo.revoke_family(token.family_id, now)
                replayed = True

            elif token.expires_at <= now:
                raise UnauthorizedError("The session has expired; sign in again.")
            else:
                user = await repo.user_by_id(token.user_id)
                if user is None or user.disabled:
                    await repo.revoke_family(token.family_id, now)
                    disabled = True
                else:
                    pair = await self._issue_in(repo, signer, user, family_id=token.family_id)
        if replayed or disabled:
            await self._announce(sessions=[token.family_id])
        if replayed:
            _log.warning("refresh_token_reuse", family_id=token.family_id, user_id=token.user_id)
            raise UnauthorizedError(
                "This refresh token was already used, so every session that came from it has "
                "been signed out for safety. Sign in again."
            )
        if pair is None or disabled:
            raise ForbiddenError("This account is disabled; ask an administrator to enable it.")
        return pair

    async def logout(self, identity: Identity, refresh_token: str) -> None:
        """Revoke the session (the whole refresh family) that ``refresh_token`` belongs to."""
        family: str | None = None
        async with self._store.transaction() as repo:
            token = await repo.refresh_token_by_hash(token_digest(refresh_token))
            if token is not None and token.user_id == identity.user_id:
                await repo.revoke_family(token.family_id, self._clock())
                family = token.family_id
        if family is not None:
            await self._announce(sessions=[family])

    # ---- passwords --------------------------------------------------------------------------

    async def change_password(
        self, identity: Identity, current_password: str, new_password: str
    ) -> None:
        user = await self.me(identity)
        if not await self._hasher.verify(user.password_hash, current_password):
            raise ForbiddenError("The current password is wrong, so it was not changed.")
        await self._set_password(user, new_password)

    async def _set_password(
        self, user: User, new_password: str, *, revoke_api_keys: bool = False
    ) -> None:
        check_password_policy(
            new_password, email=user.email, min_length=self._settings.password_min_length
        )
        user.password_hash = await self._hasher.hash(new_password)
        now = self._clock()
        user.updated_at = now
        keys: list[str] = []
        async with self._store.transaction() as repo:
            await repo.save_user(user)
            sessions = await repo.revoke_user_sessions(
                user.id, now, issued_since=self._live_since(now)
            )
            await repo.spend_password_resets(user.id, now)
            if revoke_api_keys:
                keys = await repo.revoke_user_api_keys(user.id, now)
        await self._announce(sessions=sessions, api_keys=keys)
        await self._throttle.clear(self._account_quota, f"acct:{token_digest(user.email)}")

    async def request_password_reset(self, email: str) -> OutgoingMail | None:
        """The mail to send, or None when there is nobody to send it to (the caller can't tell)."""
        normalised = normalise_email(email)
        now = self._clock()
        raw = opaque_token()
        async with self._store.transaction() as repo:
            user = await repo.user_by_email(normalised)
            if user is None or user.disabled:
                return None
            await repo.add_password_reset(
                PasswordReset(
                    id=new_id(),
                    user_id=user.id,
                    token_hash=token_digest(raw),
                    created_at=now,
                    expires_at=now + timedelta(seconds=self._settings.password_reset_ttl_s),
                )
            )
        minutes = self._settings.password_reset_ttl_s // 60
        link = f"{self._settings.public_base_url.rstrip('/')}/reset-password?token={raw}"
        body = (
            "Someone asked to reset the password of your Knowledge Graph Lab account.\n\n"
            f"Open this link within {minutes} minutes to choose a new password:\n{link}\n\n"
            "Or send this token to POST /api/v1/auth/password-reset/confirm:\n"
            f"Reset token: {raw}\n\n"
            "If it was not you, ignore this mail; your password stays as it is.\n"
        )
        return OutgoingMail(
            to=user.email, subject="Reset your Knowledge Graph Lab password", body=body
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        async with self._store.transaction() as repo:
            reset = await repo.password_reset_by_hash(token_digest(token))
            user = await repo.user_by_id(reset.user_id) if reset else None
        if (
            reset is None
            or user is None
            or reset.used_at is not None
            or reset.expires_at <= self._clock()
            or user.disabled
        ):
            raise DomainError(
                "This reset link is invalid, already used or expired; ask for a new one."
            )
        # A reset is how an account is taken back: keys minted by whoever had it go too.
        await self._set_password(user, new_password, revoke_api_keys=True)

    # ---- API keys ---------------------------------------------------------------------------

    async def create_api_key(
        self, identity: Identity, name: str, scopes: list[str]
    ) -> tuple[ApiKey, str]:
        user = await self.me(identity)
        wanted = validate_scopes(scopes)
        if FULL_SCOPE not in identity.scopes:
            beyond = [scope for scope in wanted if scope not in identity.scopes]
            if beyond:
                raise ForbiddenError(
                    "This key may not create a key with scopes it does not have itself: "
                    + ", ".join(f"'{scope}'" for scope in beyond)
                    + "."
                )
        key_id = secrets.token_hex(8)
        secret = opaque_token()
        key = ApiKey(
            id=key_id,
            user_id=user.id,
            name=name.strip(),
            scopes=wanted,
            secret_hash=token_digest(secret),
            created_at=self._clock(),
        )
        async with self._store.transaction() as repo:
            await repo.add_api_key(key)
        return key, format_api_key(key_id, secret)

    async def list_api_keys(self, identity: Identity) -> list[ApiKey]:
        async with self._store.reader() as repo:
            return await repo.list_api_keys(identity.user_id)

    async def revoke_api_key(self, identity: Identity, key_id: str) -> None:
        async with self._store.transaction() as repo:
            if not await repo.revoke_api_key(key_id, identity.user_id, self._clock()):
                raise NotFoundError(f"You have no live API key with id {key_id}.")
        await self._announce(api_keys=[key_id])

    async def verify_api_key(self, presented: str) -> VerifiedApiKey:
        parsed = parse_api_key(presented.strip())
        if parsed is None:
            raise UnauthorizedError("That is not a Knowledge Graph Lab API key.")
        key_id, secret = parsed
        async with self._store.transaction() as repo:
            key = await repo.api_key_by_id(key_id)
            valid = key is not None and hmac.compare_digest(key.secret_hash, token_digest(secret))
            if key is None or not valid:
                raise UnauthorizedError("The API key is not valid.")
            if key.revoked_at is not None:
                raise UnauthorizedError("The API key has been revoked.")
            user = await repo.user_by_id(key.user_id)
            if user is None or user.disabled:
                raise UnauthorizedError("The account that owns this API key is disabled.")
            await repo.touch_api_key(key.id, self._clock())
        return VerifiedApiKey(
            user_id=user.id, role=user.role.value, scopes=key.scopes, email=user.email
        )

    # ---- third-party sign-in ----------------------------------------------------------------

    def _provider(self, name: str) -> OAuthProvider:
        provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none are configured"
            raise NotFoundError(f"There is no sign-in provider called '{name}' (known: {known}).")
        return provider

    def _redirect_uri(self, name: str) -> str:
        base = self._settings.public_base_url.rstrip("/")
        return f"{base}/api/v1/auth/oauth/{name}/callback"

    async def oauth_authorization_url(self, name: str) -> str:
        provider = self._provider(name)
        state = OAuthState(
            state=secrets.token_urlsafe(24),
            provider=name,
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            expires_at=self._clock() + timedelta(seconds=self._settings.oauth_state_ttl_s),
        )
        url = await provider.authorization_url(
            redirect_uri=self._redirect_uri(name),
            state=state.state,
            nonce=state.nonce,
            code_verifier=state.code_verifier,
        )
        async with self._store.transaction() as repo:
            await repo.purge_oauth_states(self._clock())
            await repo.add_oauth_state(state)
        return url

    async def oauth_callback(
        self, name: str, *, code: str | None, state: str | None, error: str | None
    ) -> TokenPair:
        provider = self._provider(name)
        if error:
            raise UnauthorizedError(f"The sign-in provider '{name}' refused the sign-in: {error}.")
        if not code or not state:
            raise UnprocessableError("The callback needs both 'code' and 'state'.")
        async with self._store.transaction() as repo:
            pending = await repo.take_oauth_state(state)
        if pending is None or pending.provider != name or pending.expires_at <= self._clock():
            raise UnauthorizedError(
                "This sign-in attempt is unknown, already finished or expired; start it again."
            )
        external = await provider.identity(
            code=code,
            redirect_uri=self._redirect_uri(name),
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
        )
        user = await self._user_for_external(external)
        if user.disabled:
            raise ForbiddenError("This account is disabled; ask an administrator to enable it.")
        return await self._issue(user, family_id=None)

    async def _user_for_external(self, external: ExternalIdentity) -> User:
        provider, subject = external.provider, external.subject
        now = self._clock()
        async with self._store.transaction() as repo:
            linked = await repo.linked_user_id(provider, subject)
            if linked is not None:
                user = await repo.user_by_id(linked)
                if user is not None:
                    return user
            if not external.email or not external.email_verified:
                raise UnauthorizedError(
                    f"'{provider}' did not share a verified email address, which this service "
                    "needs to create or find your account."
                )
            email = normalise_email(external.email)
            existing = await repo.user_by_email(email)
            if existing is None:
                existing = User(
                    id=new_id(),
                    email=email,
                    password_hash=None,  # signs in through the provider only, until a reset
                    role=Role.USER,
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
                await repo.add_user(existing)
            await repo.link_identity(provider, subject, existing.id, now)
            return replace(existing)
