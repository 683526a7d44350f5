"""The caller's identity as the gateway forwards it, and as every service verifies it.

The gateway checks the user's access token or API key, then sends services a short-lived
assertion in :data:`IDENTITY_HEADER`, signed with the gateway's Ed25519 key. Services hold only
the public keys (``KGLAB_IDENTITY_PUBLIC_KEYS``, a JWKS: several during a rotation), so a
service reached directly cannot be fooled by a forged header, and no service but the gateway
can sign one (adr/0005, "The internal identity").

Development and tests may leave the keys unset: a key pair is then derived from
``KGLAB_INTERNAL_TOKEN_SECRET``, which every service holds, so any of them could sign;
production refuses that.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Any

from cachetools import TLRUCache
from fastapi import Depends, Request
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet, OKPKey

from kglab_shared.caching import until_expiry_cache
from kglab_shared.errors import ForbiddenError, UnauthorizedError

IDENTITY_HEADER = "X-KGLab-Identity"
_AUDIENCE = "kglab-internal"
_ISSUER = "kglab-gateway"
_ALGORITHM = "EdDSA"
_ALGORITHMS = ["EdDSA", "Ed25519"]
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


class IdentityKeyError(ValueError):
    """The configured identity keys are unusable; the message names what is wrong."""


def development_signing_key(secret: str) -> OKPKey:
    """An Ed25519 key derived from the shared development secret (never in production)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hashlib.sha256(b"kglab-identity-v1:" + secret.encode()).digest()
    return _with_kid(OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(seed)))


def generate_signing_key() -> OKPKey:
    return _with_kid(OKPKey.generate_key("Ed25519"))


def _with_kid(key: OKPKey) -> OKPKey:
    """The key with a kid (its RFC 7638 thumbprint unless it has one) and its use stated."""
    data = key.as_dict(private=key.is_private)
    data.setdefault("kid", key.thumbprint())
    data.update(alg=_ALGORITHM, use="sig")
    return OKPKey.import_key(data)


def codec_from_settings(
    public_keys: str | None, secret: str, *, signing_key: str | None = None
) -> IdentityCodec:
    """The configured public keys (production), or a pair derived from the shared secret
    (development and tests only: every service holding the secret could sign)."""
    if public_keys:
        return IdentityCodec(public_keys=public_keys, signing_key=signing_key)
    return IdentityCodec(secret, signing_key=signing_key)


def public_jwks(*keys: OKPKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def _import_public_keys(document: str | dict[str, Any]) -> tuple[KeySet, set[str]]:
    try:
        value = json.loads(document) if isinstance(document, str) else document
        keys = list(value["keys"])
        if not keys:
            raise IdentityKeyError("the key set holds no key")
        for key in keys:
            if key.get("kty") != "OKP" or key.get("crv") != "Ed25519" or not key.get("kid"):
                raise IdentityKeyError("every key must be an Ed25519 (OKP) public key with a kid")
            if "d" in key:
                raise IdentityKeyError(
                    "the key set holds a private key; give services only the public part"
                )
        key_set = KeySet.import_key_set({"keys": keys})
    except IdentityKeyError:
        raise
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise IdentityKeyError(f"the key set is not a usable JWKS ({exc})") from exc
    return key_set, {str(k["kid"]) for k in keys}


class IdentityCodec:
    """Verifies identity assertions with the gateway's public keys; only a codec given the
    gateway's private key can mint them."""

    def __init__(
        self,
        secret: str | None = None,
        *,
        public_keys: str | dict[str, Any] | None = None,
        signing_key: str | dict[str, Any] | None = None,
    ) -> None:
        signer: OKPKey | None = None
        if signing_key is not None:
            try:
                loaded = json.loads(signing_key) if isinstance(signing_key, str) else signing_key
                signer = _with_kid(OKPKey.import_key(loaded))
            except (ValueError, TypeError, JoseError) as exc:
                raise IdentityKeyError(f"the signing key is not an Ed25519 JWK ({exc})") from exc
            if not signer.is_private:
                raise IdentityKeyError("the signing key has no private part")
        if public_keys is None:
            if secret is None:
                raise IdentityKeyError(
                    "give the identity public keys (or, in development, the internal secret)"
                )
            signer = signer or development_signing_key(secret)
            public_keys = public_jwks(signer)
        self._keys, self._kids = _import_public_keys(public_keys)
        if signer is not None and signer.kid not in self._kids:
            raise IdentityKeyError(
                f"the signing key (kid {signer.kid}) is not among the public keys services "
                "verify with: publish it to every service first"
            )
        self._signer = signer
        # The gateway reuses an assertion for a while, so a service sees the same one many
        # times: remember what verified, until it expires (an Ed25519 check is ~100 us).
        self._verified: TLRUCache[str, tuple[float, Identity]] = until_expiry_cache(
            _VERIFIED_CACHE_SIZE
        )

    @property
    def can_mint(self) -> bool:
        return self._signer is not None

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._kids)

    def mint(self, identity: Identity, lifetime_s: int = _LIFETIME_S) -> str:
        if self._signer is None:
            raise IdentityKeyError("only the gateway signs identities: this codec only verifies")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": _ISSUER,
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
        header = {"alg": _ALGORITHM, "kid": self._signer.kid, "typ": "JWT"}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
            return jwt.encode(header, claims, self._signer, algorithms=[_ALGORITHM])

    def verify(self, token: str) -> Identity:
        cached = self._verified.get(token)
        if cached is not None:
            return cached[1]
        try:
            # Before any cryptography: only Ed25519, only a key the gateway published (an HS256
            # token keyed with a public key, or alg none, never reaches a verifier).
            header = json.loads(_b64decode(token.split(".", 1)[0]))
            if header.get("alg") not in _ALGORITHMS or header.get("kid") not in self._kids:
                raise ValueError("not signed by a known gateway key")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
                decoded = jwt.decode(token, self._keys, algorithms=_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": _ISSUER},
                aud={"essential": True, "value": _AUDIENCE},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, AttributeError) as exc:
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
        self._verified[token] = (float(claims["exp"]), identity)
        return identity


def _b64decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


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
