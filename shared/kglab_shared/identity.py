"""The caller's identity as the gateway forwards it, and as every service verifies it.

The gateway checks the user's access token or API key, then sends services a short-lived
HS256-signed assertion in :data:`IDENTITY_HEADER`. Services verify the signature themselves, so
a service reached directly (bypassing the gateway) cannot be fooled by a forged header.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from kglab_shared.errors import ForbiddenError, UnauthorizedError

IDENTITY_HEADER = "X-KGLab-Identity"
_AUDIENCE = "kglab-internal"
_ALGORITHMS = ["HS256"]
_LIFETIME_S = 60
_VERIFIED_CACHE_SIZE = 10_000
ANONYMOUS_ROLE = "anonymous"
SERVICE_ROLE = "service"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    role: str = "user"
    scopes: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    #: The client's address as the gateway saw it (for per-IP throttling behind the gateway).
    client_ip: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.role == ANONYMOUS_ROLE

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_scope(self, scope: str) -> None:
        if "*" not in self.scopes and scope not in self.scopes:
            raise ForbiddenError(f"This API key lacks the '{scope}' scope, which this needs.")


class IdentityCodec:
    """Signs and verifies identity assertions with the shared internal secret."""

    def __init__(self, secret: str) -> None:
        self._key = OctKey.import_key(secret.encode())
        # The gateway reuses an assertion for a while, so a service sees the same one many
        # times: remember what verified, until it expires (a signature check is ~70 us).
        self._verified: dict[str, tuple[float, Identity]] = {}

    def mint(self, identity: Identity, lifetime_s: int = _LIFETIME_S) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": identity.user_id,
            "role": identity.role,
            "scope": " ".join(sorted(identity.scopes)),
            "aud": _AUDIENCE,
            "iat": now,
            "exp": now + lifetime_s,
        }
        if identity.email:
            claims["email"] = identity.email
        if identity.client_ip:
            claims["ip"] = identity.client_ip
        return jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=_ALGORITHMS)

    def verify(self, token: str) -> Identity:
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        try:
            decoded = jwt.decode(token, self._key, algorithms=_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                aud={"essential": True, "value": _AUDIENCE},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise UnauthorizedError("The forwarded identity is invalid or expired.") from exc
        claims = decoded.claims
        scope = str(claims.get("scope", ""))
        identity = Identity(
            user_id=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            scopes=frozenset(scope.split()) if scope else frozenset(),
            email=claims.get("email"),
            client_ip=claims.get("ip"),
        )
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()  # bounded; a miss only costs a signature check
        self._verified[token] = (float(claims["exp"]), identity)
        return identity


async def forwarded_identity(request: Request) -> Identity | None:
    """The verified assertion, anonymous ones included; None when the header is absent."""
    codec: IdentityCodec | None = getattr(request.app.state, "identity_codec", None)
    token = request.headers.get(IDENTITY_HEADER)
    if codec is None or not token:
        return None
    return codec.verify(token)


async def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the verified, signed-in caller, or 401 when there is none."""
    codec: IdentityCodec | None = getattr(request.app.state, "identity_codec", None)
    if codec is None:
        raise UnauthorizedError("This service cannot verify callers (no identity codec).")
    token = request.headers.get(IDENTITY_HEADER)
    if not token:
        raise UnauthorizedError("Sign in first: this route needs a bearer token.")
    identity = codec.verify(token)
    if identity.is_anonymous:
        raise UnauthorizedError("Sign in first: this route needs a bearer token.")
    return identity


async def require_service(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
    if identity.role != SERVICE_ROLE:
        raise ForbiddenError("Only another Knowledge Graph Lab service may call this route.")
    return identity


async def require_admin(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
    if not identity.is_admin:
        raise ForbiddenError("Only an administrator may do that.")
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]
AdminIdentity = Annotated[Identity, Depends(require_admin)]
ServiceIdentity = Annotated[Identity, Depends(require_service)]
OptionalIdentity = Annotated[Identity | None, Depends(forwarded_identity)]
