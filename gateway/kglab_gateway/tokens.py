"""Verify bearer credentials locally: access JWTs against the cached JWKS, API keys via auth.

No call to the auth service per request: JWKS are cached and refreshed periodically (or at
once, rate-limited, when a token names an unknown ``kid`` after a key rotation); verified tokens
are remembered until they expire, and API-key look-ups are cached briefly.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from kglab_shared.errors import ServiceUnavailableError, UnauthorizedError
from kglab_shared.identity import Identity

#: Only asymmetric algorithms: an HS256 token "signed" with the public key, or alg=none, fails.
ALLOWED_ALGORITHMS = ["Ed25519", "EdDSA", "ES256"]
API_KEY_PREFIX = "kglab_"

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
ApiKeyResolver = Callable[[str], Awaitable[Identity | None]]


class _TTLCache:
    def __init__(self, max_items: int) -> None:
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_items

    def get(self, key: str) -> Any | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.time():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any, expires_at: float) -> None:
        self._items[key] = (expires_at, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


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
        self._verified = _TTLCache(50_000)
        self._api_keys = _TTLCache(10_000)

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
        if token.startswith(API_KEY_PREFIX):
            return await self._verify_api_key(token)
        cached = self._verified.get(token)
        if cached is not None:
            identity: Identity = cached
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
        self._verified.put(token, identity, float(claims["exp"]))
        return identity

    async def _verify_api_key(self, key: str) -> Identity:
        cached = self._api_keys.get(key)
        if cached is not None:
            identity: Identity = cached
            return identity
        try:
            resolved = await self._resolve_api_key(key)
        except Exception as exc:
            raise ServiceUnavailableError(
                "API keys cannot be checked right now: the auth service is unreachable."
            ) from exc
        if resolved is None:
            raise UnauthorizedError("The API key is unknown or revoked.")
        if self._api_key_ttl_s > 0:
            self._api_keys.put(key, resolved, time.time() + self._api_key_ttl_s)
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
