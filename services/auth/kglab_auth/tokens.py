"""Access tokens: EdDSA (Ed25519) JWTs with a ``kid``, and the key ring that publishes them.

The gateway verifies these tokens itself against ``/.well-known/jwks.json``;
:class:`AccessTokenVerifier` is the reference verifier (and what the security tests exercise).
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet, OKPKey

from kglab_auth.domain import SigningKeyRecord

ALGORITHM = "EdDSA"
TOKEN_TYPE = "access"


@contextmanager
def _eddsa_accepted() -> Iterator[None]:
    # RFC 9864 prefers the fully specified "Ed25519" name; the contract (and most verifiers in
    # use) still speak "EdDSA" for the same Ed25519 signature, so joserfc's notice is expected.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


class InvalidTokenError(Exception):
    """The token is not one we issued, or no longer valid. The message is safe to show."""


def generate_signing_key(now: datetime) -> SigningKeyRecord:
    key = OKPKey.generate_key("Ed25519", parameters={"use": "sig", "alg": ALGORITHM})
    kid = key.thumbprint()
    private = key.as_dict(private=True)
    private["kid"] = kid
    public = key.as_dict(private=False)
    public["kid"] = kid
    return SigningKeyRecord(
        kid=kid,
        algorithm=ALGORITHM,
        private_jwk=json.dumps(private),
        public_jwk=json.dumps(public),
        created_at=now,
    )


def published_keys(
    records: Sequence[SigningKeyRecord], *, now: datetime, access_ttl_s: int, skew_s: int = 60
) -> list[SigningKeyRecord]:
    """Keys a verifier still needs: the active ones, and retired ones whose tokens may live on."""
    grace = timedelta(seconds=access_ttl_s + skew_s)
    return [r for r in records if r.retired_at is None or r.retired_at + grace > now]


def jwks_document(records: Sequence[SigningKeyRecord]) -> dict[str, Any]:
    return {"keys": [json.loads(r.public_jwk) for r in records]}


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    role: str
    scope: str
    email: str | None
    jti: str
    issued_at: int
    expires_at: int


class AccessTokenSigner:
    """Signs access tokens with one private key; never logs or reprs the key."""

    def __init__(self, record: SigningKeyRecord, *, issuer: str, audience: str, ttl_s: int):
        self.kid = record.kid
        self._key = OKPKey.import_key(json.loads(record.private_jwk))
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"AccessTokenSigner(kid={self.kid!r})"

    def sign(
        self,
        *,
        subject: str,
        role: str,
        scope: str,
        email: str | None,
        session_id: str | None = None,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "role": role,
            "scope": scope,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": TOKEN_TYPE,
        }
        if email:
            claims["email"] = email
        if session_id:
            # The session (refresh family) it belongs to: a sign-out revokes its access tokens.
            claims["sid"] = session_id
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        with _eddsa_accepted():
            return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])


class AccessTokenVerifier:
    """Verifies access tokens against a JWKS: EdDSA only, known ``kid`` only, claims checked."""

    def __init__(self, jwks: dict[str, Any], *, issuer: str, audience: str, leeway_s: int = 0):
        self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        self._kids = {str(k["kid"]) for k in jwks.get("keys", []) if "kid" in k}
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s

    def verify(self, token: str, *, now: float | None = None) -> AccessClaims:
        try:
            header = _unverified_header(token)
            # Refuse before any crypto: only our algorithm, only keys we publish.
            if header.get("alg") != ALGORITHM:
                raise InvalidTokenError("The token is not signed with the expected algorithm.")
            if header.get("kid") not in self._kids:
                raise InvalidTokenError("The token is signed with a key we do not know.")
            with _eddsa_accepted():
                decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
            jwt.JWTClaimsRegistry(
                now=int(now) if now is not None else None,
                leeway=self._leeway,
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._audience},
                sub={"essential": True},
                exp={"essential": True},
                jti={"essential": True},
                typ={"essential": True, "value": TOKEN_TYPE},
            ).validate(decoded.claims)
        except InvalidTokenError:
            raise
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise InvalidTokenError("The token is invalid or has expired.") from exc
        claims = decoded.claims
        return AccessClaims(
            subject=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            scope=str(claims.get("scope", "")),
            email=claims.get("email"),
            jti=str(claims["jti"]),
            issued_at=int(claims.get("iat", 0)),
            expires_at=int(claims["exp"]),
        )


def _unverified_header(token: str) -> dict[str, Any]:
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("The token is not a signed JWT.")
    padded = parts[0] + "=" * (-len(parts[0]) % 4)
    try:
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidTokenError("The token header is unreadable.") from exc
    if not isinstance(header, dict):
        raise InvalidTokenError("The token header is unreadable.")
    return header
