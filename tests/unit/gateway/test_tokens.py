"""The gateway's local token verification: every forgery a real attacker tries is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from kglab_gateway.tokens import CredentialVerifier
from kglab_shared.errors import ServiceUnavailableError, UnauthorizedError
from kglab_shared.identity import Identity

ISSUER, AUDIENCE = "kglab-auth", "kglab"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    value: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "role": "user",
        "scope": "*",
        "typ": "access",
        "iat": now,
        "exp": now + 900,
        "jti": "j1",
    }
    value.update(overrides)
    return value


class Keys:
    """A JWKS source standing in for the auth service (a unit-test fake: no I/O)."""

    def __init__(self) -> None:
        self.active = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
        self.published = [self.active]
        self.fetches = 0

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": [k.as_dict(private=False) for k in self.published]}

    def sign(self, payload: dict[str, Any], key: Any = None, alg: str = "EdDSA") -> str:
        key = key or self.active
        return jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])


async def no_api_keys(_: str) -> Identity | None:
    return None


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def verifier(keys: Keys) -> CredentialVerifier:
    return CredentialVerifier(keys.fetch, no_api_keys, issuer=ISSUER, audience=AUDIENCE)


async def test_a_valid_token_gives_the_identity(keys: Keys, verifier: CredentialVerifier) -> None:
    identity = await verifier.verify(keys.sign(claims(role="admin", email="a@b.c")))
    assert identity.user_id == "user-1"
    assert identity.is_admin
    assert identity.email == "a@b.c"


async def test_verified_tokens_and_keys_are_cached(
    keys: Keys, verifier: CredentialVerifier
) -> None:
    token = keys.sign(claims())
    for _ in range(5):
        await verifier.verify(token)
    await verifier.verify(keys.sign(claims(sub="user-2")))
    assert keys.fetches == 1


async def test_an_expired_token_is_refused(keys: Keys, verifier: CredentialVerifier) -> None:
    now = int(time.time())
    with pytest.raises(UnauthorizedError, match="expired"):
        await verifier.verify(keys.sign(claims(iat=now - 2000, exp=now - 1000)))


async def test_a_tampered_payload_is_refused(keys: Keys, verifier: CredentialVerifier) -> None:
    header, _, signature = keys.sign(claims()).split(".")
    payload = _b64(json.dumps(claims(role="admin")).encode())
    with pytest.raises(UnauthorizedError, match="signature"):
        await verifier.verify(f"{header}.{payload}.{signature}")


async def test_a_token_from_another_key_is_refused(
    keys: Keys, verifier: CredentialVerifier
) -> None:
    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    with pytest.raises(UnauthorizedError):
        await verifier.verify(keys.sign(claims(), key=stranger))


async def test_alg_none_is_refused(keys: Keys, verifier: CredentialVerifier) -> None:
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    payload = _b64(json.dumps(claims(role="admin")).encode())
    with pytest.raises(UnauthorizedError, match="algorithm"):
        await verifier.verify(f"{header}.{payload}.")


async def test_hs256_signed_with_the_public_key_is_refused(
    keys: Keys, verifier: CredentialVerifier
) -> None:
    # The classic confusion: HMAC "signed" with the published public key as the secret.
    public = json.dumps(keys.active.as_dict(private=False)).encode()
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    payload = _b64(json.dumps(claims(role="admin")).encode())
    mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(UnauthorizedError, match="algorithm"):
        await verifier.verify(f"{header}.{payload}.{_b64(mac)}")


async def test_wrong_issuer_audience_or_type_is_refused(
    keys: Keys, verifier: CredentialVerifier
) -> None:
    for bad in (claims(iss="someone-else"), claims(aud="other-app"), claims(typ="refresh")):
        with pytest.raises(UnauthorizedError):
            await verifier.verify(keys.sign(bad))


async def test_garbage_is_refused(verifier: CredentialVerifier) -> None:
    for garbage in ("not-a-token", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9"):
        with pytest.raises(UnauthorizedError):
            await verifier.verify(garbage)


async def test_a_rotated_key_is_fetched_at_once(keys: Keys, verifier: CredentialVerifier) -> None:
    old_token = keys.sign(claims())
    await verifier.verify(old_token)
    new_key = OKPKey.generate_key("Ed25519", parameters={"kid": "k2"})
    keys.published = [new_key, keys.active]
    keys.active = new_key
    verifier._fetched_at -= 11  # the refetch is rate-limited to once per 10 s
    assert (await verifier.verify(keys.sign(claims(sub="user-3")))).user_id == "user-3"
    assert (await verifier.verify(old_token)).user_id == "user-1"


async def test_es256_tokens_are_accepted_too(keys: Keys, verifier: CredentialVerifier) -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    keys.published = [keys.active, ec]
    assert (await verifier.verify(keys.sign(claims(), key=ec, alg="ES256"))).user_id == "user-1"


async def test_unreachable_jwks_is_a_503() -> None:
    async def down() -> dict[str, Any]:
        raise ConnectionRefusedError("auth is down")

    verifier = CredentialVerifier(down, no_api_keys, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(Keys().sign(claims()))


async def test_api_keys_are_resolved_and_cached() -> None:
    calls: list[str] = []

    async def resolve(key: str) -> Identity | None:
        calls.append(key)
        return (
            Identity("machine-1", scopes=frozenset({"documents:read"}))
            if key.endswith("ok")
            else None
        )

    verifier = CredentialVerifier(Keys().fetch, resolve, issuer=ISSUER, audience=AUDIENCE)
    assert (await verifier.verify("kglab_1_ok")).user_id == "machine-1"
    await verifier.verify("kglab_1_ok")
    assert calls == ["kglab_1_ok"]
    with pytest.raises(UnauthorizedError, match="API key"):
        await verifier.verify("kglab_2_revoked")


async def test_fully_specified_ed25519_is_accepted(
    keys: Keys, verifier: CredentialVerifier
) -> None:
    # RFC 9864 names the algorithm "Ed25519"; "EdDSA" stays accepted for older signers.
    assert (await verifier.verify(keys.sign(claims(), alg="Ed25519"))).user_id == "user-1"


async def test_a_malformed_key_set_is_a_503_not_a_500() -> None:
    async def garbage() -> dict[str, Any]:
        return {"keys": [{"kty": "nonsense"}]}

    verifier = CredentialVerifier(garbage, no_api_keys, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(Keys().sign(claims()))
