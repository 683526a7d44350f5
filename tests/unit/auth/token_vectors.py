"""Security test vectors for access-token verifiers (reused by the gateway's verifier tests).

:func:`build_token_vectors` returns one valid token and one token per attack, all against the
same published JWKS. A correct verifier accepts ``valid`` and refuses every name in ``ATTACKS``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc.jwk import OKPKey

from kglab_auth.tokens import AccessTokenSigner, generate_signing_key, jwks_document

ISSUER = "kglab-auth"
AUDIENCE = "kglab"
ATTACKS = (
    "expired",
    "tampered_payload",
    "tampered_signature",
    "wrong_key_same_kid",
    "unknown_kid",
    "alg_none",
    "hs256_with_public_key_pem",
    "hs256_with_public_jwk",
    "wrong_audience",
    "wrong_issuer",
    "not_an_access_token",
    "not_a_jwt",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))),
        json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))),
    )


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class TokenVectors:
    jwks: dict[str, Any]
    issuer: str
    audience: str
    subject: str
    valid: str
    attacks: dict[str, str]


def build_token_vectors(now: float | None = None) -> TokenVectors:
    issued = time.time() if now is None else now
    record = generate_signing_key(datetime.now(UTC))
    jwks = jwks_document([record])
    kid = record.kid

    def signer(rec: Any = record, *, issuer: str = ISSUER, audience: str = AUDIENCE) -> Any:
        return AccessTokenSigner(rec, issuer=issuer, audience=audience, ttl_s=900)

    subject = "0b5c3a8e-6a43-4c1b-9b5e-3c3a3f7d9e01"
    claims = {"subject": subject, "role": "user", "scope": "*", "email": "v@example.com"}
    valid = signer().sign(**claims, now=issued)
    header, payload = _split(valid)
    head_b64, body_b64, sig_b64 = valid.split(".")

    promoted = dict(payload, role="admin")
    flipped = sig_b64[:-4] + ("AAAA" if not sig_b64.endswith("AAAA") else "BBBB")

    impostor = generate_signing_key(datetime.now(UTC))
    impostor_same_kid = type(impostor)(
        kid=kid,
        algorithm=impostor.algorithm,
        private_jwk=json.dumps(dict(json.loads(impostor.private_jwk), kid=kid)),
        public_jwk=impostor.public_jwk,
        created_at=impostor.created_at,
    )

    public_key = OKPKey.import_key(json.loads(record.public_jwk))
    pem = public_key.as_pem(private=False)
    jwk_json = json.dumps(jwks["keys"][0]).encode()
    refresh_like = dict(payload, typ="refresh")

    attacks = {
        "expired": signer().sign(**claims, now=issued - 3600),
        "tampered_payload": f"{head_b64}.{_segment(promoted)}.{sig_b64}",
        "tampered_signature": f"{head_b64}.{body_b64}.{flipped}",
        "wrong_key_same_kid": signer(impostor_same_kid).sign(**claims, now=issued),
        "unknown_kid": signer(impostor).sign(**claims, now=issued),
        "alg_none": f"{_segment({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{body_b64}.",
        "hs256_with_public_key_pem": _hs256(dict(header, alg="HS256"), payload, pem),
        "hs256_with_public_jwk": _hs256(dict(header, alg="HS256"), payload, jwk_json),
        "wrong_audience": signer(audience="someone-else").sign(**claims, now=issued),
        "wrong_issuer": signer(issuer="evil-auth").sign(**claims, now=issued),
        "not_an_access_token": _resign_typ(record, refresh_like),
        "not_a_jwt": "definitely-not-a-token",
    }
    assert set(attacks) == set(ATTACKS)
    return TokenVectors(
        jwks=jwks,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject=subject,
        valid=valid,
        attacks=attacks,
    )


def _resign_typ(record: Any, claims: dict[str, Any]) -> str:
    """A correctly signed token of another type (``typ`` other than access)."""
    import warnings

    from joserfc import jwt
    from joserfc.errors import SecurityWarning

    key = OKPKey.import_key(json.loads(record.private_jwk))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(
            {"alg": "EdDSA", "kid": record.kid, "typ": "JWT"}, claims, key, algorithms=["EdDSA"]
        )
