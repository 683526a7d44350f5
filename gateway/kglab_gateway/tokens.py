"""Verify bearer credentials locally: access JWTs against the cached JWKS, API keys via auth.

No call to the auth service per request: JWKS are cached and refreshed periodically (or at
once, rate-limited, when a token names an unknown ``kid`` after a key rotation); verified tokens
are remembered until they expire, and API-key look-ups are cached briefly. Revocations reach
this cache through :class:`~kglab_gateway.revocation.RevocationState`: a token of a signed-out
session is refused, and a revoked key's cached look-up forgotten, as soon as auth announces it.
"""

from __future__ import annotations

import asyncio
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TLRUCache, TTLCache
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from kglab_gateway.revocation import RevocationState
from kglab_shared.caching import until_expiry_cache
from kglab_shared.errors import ServiceUnavailableError, UnauthorizedError
from kglab_shared.identity import Identity
from kglab_shared.scopes import KNOWN_SCOPES

#: Only asymmetric algorithms: an HS256 token "signed" with the public key, or alg=none, fails.
ALLOWED_ALGORITHMS = ["Ed25519", "EdDSA", "ES256"]
API_KEY_PREFIX = "kglab_"
# kglab_<id>_<secret> as auth mints them (about 80 characters); anything longer or of another
# shape is refused here, as a wrong credential (401), without asking auth.
_API_KEY_SHAPE = re.compile(r"kglab_[A-Za-z0-9]{1,64}_[A-Za-z0-9_-]{1,128}")
# An access token is well under 2 KB; a far longer bearer value is not one.
_MAX_TOKEN_CHARS = 8192

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
ApiKeyResolver = Callable[[str], Awaitable[Identity | None]]


class CredentialVerifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        resolve_api_key: ApiKeyResolver,
        *,
        issuer: str,
        audience: str,
        refresh_s: float = 300.0,
        api_key_ttl_s: float = 30.0,
        revocations: RevocationState | None = None,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._resolve_api_key = resolve_api_key
        self._issuer = issuer
        self._audience = audience
        self._refresh_s = refresh_s
        self._api_key_ttl_s = api_key_ttl_s
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        # Verified tokens until their own expiry; key look-ups for ``api_key_ttl_s``.
        self._verified: TLRUCache[str, tuple[float, tuple[Identity, str | None]]] = (
            until_expiry_cache(50_000)
        )
        # Nothing is stored when the lifetime is 0 (look-ups are not cached at all).
        self._api_keys: TTLCache[str, Identity] = TTLCache(10_000, ttl=api_key_ttl_s or 1.0)
        if revocations is None:
            # Nothing announces revocations to a verifier built alone: nothing to wait for.
            revocations = RevocationState()
            revocations.synced()
        self._revocations = revocations
        # Bumped whenever cached key look-ups are forgotten, so a look-up that was in flight
        # meanwhile is not cached with what may be a revoked key's identity.
        self._key_epoch = 0
        revocations.on_api_key_revoked(self._forget_api_key)
        revocations.on_resync(self._forget_api_keys)

    def _forget_api_key(self, key_id: str) -> None:
        prefix = f"{API_KEY_PREFIX}{key_id}_"
        self._key_epoch += 1
        for key in [key for key in self._api_keys if key.startswith(prefix)]:
            self._api_keys.pop(key, None)

    def _forget_api_keys(self) -> None:
        self._key_epoch += 1
        self._api_keys.clear()

    async def _key_set(self, want_kid: str | None) -> KeySet:
        now = time.monotonic()
        stale = now - self._fetched_at > self._refresh_s
        unknown_kid = want_kid is not None and want_kid not in self._kids
        # After a rotation a new kid appears: refetch at once, but at most every 10 s.
        if self._keys is None or stale or (unknown_kid and now - self._fetched_at > 10):
            async with self._lock:
                if self._keys is None or time.monotonic() - self._fetched_at > 1:
                    try:
                        document = await self._fetch_jwks()
                        # A malformed key set is as unusable as an unreachable one.
                        keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                        kids = {str(k.get("kid")) for k in document.get("keys", [])}
                    except Exception as exc:
                        if self._keys is None:
                            raise ServiceUnavailableError(
                                "Sign-in cannot be checked right now: the auth service's "
                                "signing keys are unreachable. Try again shortly."
                            ) from exc
                    else:
                        self._keys, self._kids = keys, kids
                        self._fetched_at = time.monotonic()
        assert self._keys is not None
        return self._keys

    async def verify(self, token: str) -> Identity:
        """Return the caller behind a bearer credential or raise 401 with a readable reason."""
        self._revocations.ensure_current()
        if token.startswith(API_KEY_PREFIX):
            if not _API_KEY_SHAPE.fullmatch(token):
                raise UnauthorizedError(
                    "The API key is malformed: a key is kglab_, an id, _ and a secret, "
                    "about 80 characters in all."
                )
            return await self._verify_api_key(token)
        if len(token) > _MAX_TOKEN_CHARS:
            raise UnauthorizedError(
                f"The bearer token is too long ({len(token)} characters) to be an access token."
            )
        cached = self._verified.get(token)
        if cached is not None:
            identity, session_id = cached[1]
            self._refuse_revoked(session_id)
            return identity
        header = _unverified_header(token)
        kid = header.get("kid")
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise UnauthorizedError("The access token is not signed with an accepted algorithm.")
        keys = await self._key_set(str(kid) if kid else None)
        try:
            with warnings.catch_warnings():
                # RFC 9864 renames EdDSA to Ed25519; both name the same signature, both accepted.
                warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
                decoded = jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise UnauthorizedError(
                "The access token is invalid: its signature does not verify."
            ) from exc
        claims = decoded.claims
        try:
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._audience},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(claims)
        except JoseError as exc:
            if "expired" in str(exc).lower() or getattr(exc, "error", "") == "expired_token":
                raise UnauthorizedError("The access token has expired; refresh it.") from exc
            raise UnauthorizedError(f"The access token is not valid here ({exc}).") from exc
        if claims.get("typ", "access") != "access":
            raise UnauthorizedError("That token is not an access token.")
        scope = str(claims.get("scope", "*"))
        identity = Identity(
            user_id=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            scopes=frozenset(scope.split()),
            email=claims.get("email"),
        )
        session_id = str(claims["sid"]) if claims.get("sid") else None
        self._refuse_revoked(session_id)
        self._verified[token] = (float(claims["exp"]), (identity, session_id))
        return identity

    def _refuse_revoked(self, session_id: str | None) -> None:
        # Tokens minted before sessions were named carry no sid; they expire within 15 min.
        if session_id is not None and self._revocations.session_revoked(session_id):
            raise UnauthorizedError("This session has been signed out; sign in again.")

    async def _verify_api_key(self, key: str) -> Identity:
        cached = self._api_keys.get(key)
        if cached is not None:
            return cached
        epoch = self._key_epoch
        try:
            resolved = await self._resolve_api_key(key)
        except Exception as exc:
            raise ServiceUnavailableError(
                "API keys cannot be checked right now: the auth service is unreachable."
            ) from exc
        if resolved is None:
            raise UnauthorizedError("The API key is unknown or revoked.")
        # A key has only scopes of the documented set: a legacy "*" or made-up one grants
        # nothing (and "*" would pass for a session's full access).
        resolved = Identity(
            user_id=resolved.user_id,
            role=resolved.role,
            scopes=frozenset(s for s in resolved.scopes if s in KNOWN_SCOPES),
            email=resolved.email,
        )
        if self._api_key_ttl_s > 0 and epoch == self._key_epoch:
            self._api_keys[key] = resolved
        return resolved


def _unverified_header(token: str) -> dict[str, Any]:
    import base64
    import json

    try:
        segment = token.split(".")[0]
        padded = segment + "=" * (-len(segment) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except Exception as exc:
        raise UnauthorizedError("The bearer token is malformed.") from exc
    if not isinstance(value, dict):
        raise UnauthorizedError("The bearer token is malformed.")
    return value
