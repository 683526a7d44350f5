"""The access-token signer and the reference verifier, including every attack vector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kglab_auth.tokens import (
    AccessTokenSigner,
    AccessTokenVerifier,
    InvalidTokenError,
    generate_signing_key,
    jwks_document,
    published_keys,
)
from tests.unit.auth.token_vectors import ATTACKS, TokenVectors, build_token_vectors


@pytest.fixture(scope="module")
def vectors() -> TokenVectors:
    return build_token_vectors()


def _verifier(vectors: TokenVectors) -> AccessTokenVerifier:
    return AccessTokenVerifier(vectors.jwks, issuer=vectors.issuer, audience=vectors.audience)


def test_the_valid_token_verifies(vectors: TokenVectors) -> None:
    claims = _verifier(vectors).verify(vectors.valid)
    assert claims.subject == vectors.subject
    assert claims.role == "user"
    assert claims.scope == "*"
    assert claims.expires_at - claims.issued_at == 900


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_attack_is_refused(vectors: TokenVectors, attack: str) -> None:
    with pytest.raises(InvalidTokenError):
        _verifier(vectors).verify(vectors.attacks[attack])


def test_expiry_is_checked_against_the_clock(vectors: TokenVectors) -> None:
    claims = _verifier(vectors).verify(vectors.valid)
    with pytest.raises(InvalidTokenError):
        _verifier(vectors).verify(vectors.valid, now=claims.expires_at + 1)


def test_the_token_header_names_the_algorithm_and_key(vectors: TokenVectors) -> None:
    import base64

    head = vectors.valid.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert header["alg"] == "EdDSA"
    assert header["kid"] == vectors.jwks["keys"][0]["kid"]


def test_jwks_and_reprs_never_show_private_material() -> None:
    record = generate_signing_key(datetime.now(UTC))
    document = jwks_document([record])
    assert "d" not in document["keys"][0]
    private_d = json.loads(record.private_jwk)["d"]
    signer = AccessTokenSigner(record, issuer="i", audience="a", ttl_s=900)
    assert private_d not in repr(signer)
    assert private_d not in repr(record)


def test_retired_keys_stay_published_until_their_tokens_expire() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    active = generate_signing_key(now)
    retired = generate_signing_key(now - timedelta(days=1))
    object.__setattr__(retired, "retired_at", now - timedelta(seconds=600))
    long_gone = generate_signing_key(now - timedelta(days=2))
    object.__setattr__(long_gone, "retired_at", now - timedelta(seconds=2000))
    live = published_keys([active, retired, long_gone], now=now, access_ttl_s=900)
    assert [r.kid for r in live] == [active.kid, retired.kid]
