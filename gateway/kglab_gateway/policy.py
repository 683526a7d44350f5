"""Deny by default: who the caller is, whether they may pass, and what services are told."""

from __future__ import annotations

from cachetools import TTLCache
from fastapi import Request

from kglab_gateway.config import GatewaySettings
from kglab_gateway.ratelimit import rate_limit_fields, remember
from kglab_gateway.routing import api_key_rule, is_public
from kglab_gateway.tokens import CredentialVerifier
from kglab_shared.errors import (
    ForbiddenError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from kglab_shared.identity import ANONYMOUS_ROLE, Identity, IdentityCodec
from kglab_shared.ratelimit import Quota, RateLimiter
from kglab_shared.scopes import SESSION_SCOPE

_ASSERTION_LIFETIME_S = 60
_ASSERTION_REUSE_S = 30


class InsufficientScopeError(ForbiddenError):
    code = "insufficient_scope"

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        # RFC 6750 section 3.1: the scope a client would need, in a machine-readable place too.
        challenge = 'Bearer error="insufficient_scope"'
        if scope:
            challenge += f', scope="{scope}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


def authorize(method: str, path: str, identity: Identity) -> None:
    """Deny by default for API keys: a key passes only a route of ``API_KEY_ROUTES`` whose scope
    it has. A session (password or third-party sign-in) has every right its role gives."""
    if identity.is_anonymous or SESSION_SCOPE in identity.scopes or is_public(method, path):
        return
    shown = path if len(path) <= 80 else path[:77] + "..."
    rule = api_key_rule(method, path)
    if rule is None:
        raise InsufficientScopeError(
            f"An API key may not call {method} {shown}, whatever its scopes: sign in with your "
            "password to do that."
        )
    if rule.scope is not None and rule.scope.value not in identity.scopes:
        raise InsufficientScopeError(
            f"This API key lacks the '{rule.scope.value}' scope, which {method} {shown} needs.",
            scope=rule.scope.value,
        )


class GatewayPolicy:
    def __init__(
        self,
        settings: GatewaySettings,
        verifier: CredentialVerifier,
        limiter: RateLimiter,
        codec: IdentityCodec,
    ) -> None:
        self._settings = settings
        self._verifier = verifier
        self._limiter = limiter
        self._codec = codec
        # A signed assertion lives 60 s; one is reused for 30 s to spare the signing.
        self._assertions: TTLCache[Identity, str] = TTLCache(50_000, ttl=_ASSERTION_REUSE_S)

    @staticmethod
    def client_ip(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def authenticate(self, request: Request) -> Identity:
        """The verified caller; anonymous only on the explicit public list, else 401."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return await self.verify_credential(credential.strip(), request)
        if is_public(request.method, request.url.path):
            return Identity(
                user_id="anonymous", role=ANONYMOUS_ROLE, client_ip=self.client_ip(request)
            )
        raise UnauthorizedError(
            "Sign in first: this route needs a bearer token in the Authorization header."
        )

    async def verify_token(self, credential: str) -> Identity:
        return await self._verifier.verify(credential)

    def authorize(self, request: Request, identity: Identity) -> None:
        authorize(request.method, request.scope["path"], identity)

    async def verify_credential(self, credential: str, request: Request) -> Identity:
        identity = await self._verifier.verify(credential)
        return Identity(
            user_id=identity.user_id,
            role=identity.role,
            scopes=identity.scopes,
            email=identity.email,
            client_ip=self.client_ip(request),
        )

    async def enforce_rate_limits(self, request: Request, identity: Identity) -> None:
        """Count the request against the first rule per user and per address its path falls
        under; leave the RateLimit fields for the answer; 429 when a limit is spent."""
        if not self._settings.rate_limit_enabled:
            return
        path: str = request.scope["path"]
        seen: set[str] = set()
        names: list[str] = []
        pers: list[str] = []
        hits: list[tuple[Quota, str]] = []
        for rule in self._settings.rate_limits:
            if not path.startswith(rule.prefix) or rule.per in seen:
                continue
            seen.add(rule.per)
            if rule.per == "user":
                if identity.role == ANONYMOUS_ROLE:
                    continue
                subject = f"user:{identity.user_id}"
            else:
                subject = f"ip:{identity.client_ip}"
            names.append(rule.policy_name)
            pers.append(rule.per)
            # Clock-aligned windows: one round trip per limit, the reset known locally.
            quota = Quota(rule.limit, rule.window_s, aligned=True)
            hits.append((quota, f"{rule.prefix}:{subject}"))
        if not hits:
            return
        try:
            usages = await self._limiter.hit_many(hits)
        except Exception as exc:
            # Fail closed: an unlimited gateway is what a flood would want.
            raise ServiceUnavailableError(
                "Request limits cannot be checked right now; try again shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        remember(request.scope, rate_limit_fields(list(zip(names, usages, strict=True))))
        spent = [(usage, per) for usage, per in zip(usages, pers, strict=True) if not usage.allowed]
        if spent:
            # The longest wait: retrying before it would meet another spent limit.
            usage, per = max(spent, key=lambda found: found[0].reset_s)
            who = "you" if per == "user" else "your address"
            raise RateLimitedError(
                f"Too many requests from {who}: the limit is {usage.quota.amount} per "
                f"{usage.quota.window_s} s. Try again in {usage.reset_s} s.",
                retry_after_s=usage.reset_s,
            )

    def forwarded_identity(self, identity: Identity) -> str:
        """A signed assertion for the services, reused for a while to spare the signing."""
        token = self._assertions.get(identity)
        if token is None:
            token = self._codec.mint(identity, lifetime_s=_ASSERTION_LIFETIME_S)
            self._assertions[identity] = token
        return token

    def version_headers(self, path: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        for notice in self._settings.version_notices:
            if path.startswith(notice.prefix):
                if notice.deprecation:
                    headers["Deprecation"] = notice.deprecation
                if notice.sunset:
                    headers["Sunset"] = notice.sunset
                if notice.link:
                    headers["Link"] = f'<{notice.link}>; rel="deprecation"'
        return headers
