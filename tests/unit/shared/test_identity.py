from __future__ import annotations

import time

import pytest

from kglab_shared.errors import ForbiddenError, UnauthorizedError
from kglab_shared.identity import Identity, IdentityCodec

SECRET = "s" * 32


def test_round_trip_keeps_every_field() -> None:
    codec = IdentityCodec(SECRET)
    identity = Identity(
        "u-1", "admin", frozenset({"documents:read"}), email="a@b.c", client_ip="127.0.0.9"
    )
    assert codec.verify(codec.mint(identity)) == identity


def test_a_different_secret_is_refused() -> None:
    token = IdentityCodec(SECRET).mint(Identity("u-1"))
    with pytest.raises(UnauthorizedError):
        IdentityCodec("t" * 32).verify(token)


def test_an_expired_assertion_is_refused() -> None:
    codec = IdentityCodec(SECRET)
    token = codec.mint(Identity("u-1"), lifetime_s=-120)
    with pytest.raises(UnauthorizedError, match="expired"):
        codec.verify(token)


def test_a_tampered_assertion_is_refused() -> None:
    codec = IdentityCodec(SECRET)
    header, payload, signature = codec.mint(Identity("u-1")).split(".")
    forged = IdentityCodec("x" * 32).mint(Identity("admin", "admin")).split(".")[1]
    with pytest.raises(UnauthorizedError):
        codec.verify(f"{header}.{forged}.{signature}")
    with pytest.raises(UnauthorizedError):
        codec.verify(f"{header}.{payload}.")


def test_scopes_are_enforced() -> None:
    Identity("u", scopes=frozenset({"*"})).require_scope("documents:write")
    Identity("u", scopes=frozenset({"documents:write"})).require_scope("documents:write")
    with pytest.raises(ForbiddenError, match="documents:write"):
        Identity("u", scopes=frozenset({"documents:read"})).require_scope("documents:write")


def test_a_verified_assertion_is_remembered_only_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = IdentityCodec(SECRET)
    token = codec.mint(Identity("u-1"), lifetime_s=60)
    assert codec.verify(token) == codec.verify(token) == Identity("u-1")
    # Two minutes later the remembered assertion is refused like any expired one.
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(UnauthorizedError, match="expired"):
        codec.verify(token)
    monkeypatch.undo()
    # What failed is never remembered as good.
    header, _, signature = token.split(".")
    forged = IdentityCodec("x" * 32).mint(Identity("admin", "admin")).split(".")[1]
    for _ in range(2):
        with pytest.raises(UnauthorizedError):
            codec.verify(f"{header}.{forged}.{signature}")


# ---- only the gateway signs (issue 13) ------------------------------------------------------


def _pair() -> tuple[str, str]:
    import json

    from kglab_shared.identity import generate_signing_key, public_jwks

    key = generate_signing_key()
    return json.dumps(key.as_dict(private=True)), json.dumps(public_jwks(key))


def test_a_service_holding_only_the_public_keys_cannot_sign() -> None:
    from kglab_shared.identity import IdentityKeyError

    private, public = _pair()
    gateway = IdentityCodec(public_keys=public, signing_key=private)
    service = IdentityCodec(public_keys=public)
    assert not service.can_mint
    with pytest.raises(IdentityKeyError, match="only the gateway signs"):
        service.mint(Identity("admin", "admin"))
    admin = Identity("u-1", "admin")
    assert service.verify(gateway.mint(admin)) == admin


def test_an_identity_signed_by_anyone_else_is_refused() -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    _, public = _pair()
    service = IdentityCodec(public_keys=public)
    # Another key pair, the old shared-secret scheme, and HS256 keyed with the public key.
    other_private, other_public = _pair()
    forged = IdentityCodec(public_keys=other_public, signing_key=other_private)
    claims = {
        "sub": "admin",
        "role": "admin",
        "aud": "kglab-internal",
        "iss": "kglab-gateway",
        "exp": int(time.time()) + 60,
    }
    hs256 = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(SECRET.encode()))
    with_public = jwt.encode(
        {"alg": "HS256", "kid": service.kids and next(iter(service.kids))},
        claims,
        OctKey.import_key(public.encode()),
    )
    for token in (forged.mint(Identity("admin", "admin")), hs256, with_public):
        with pytest.raises(UnauthorizedError):
            service.verify(token)


def test_a_rotation_overlaps_old_and_new_keys() -> None:
    import json

    old_private, old_public = _pair()
    new_private, new_public = _pair()
    both = json.dumps({"keys": json.loads(old_public)["keys"] + json.loads(new_public)["keys"]})
    service = IdentityCodec(public_keys=both)
    old_gateway = IdentityCodec(public_keys=both, signing_key=old_private)
    new_gateway = IdentityCodec(public_keys=both, signing_key=new_private)
    for gateway in (old_gateway, new_gateway):
        assert service.verify(gateway.mint(Identity("u-1"))) == Identity("u-1")
    # After the overlap, only the new key is published: the old one's assertions stop.
    after = IdentityCodec(public_keys=new_public)
    with pytest.raises(UnauthorizedError):
        after.verify(old_gateway.mint(Identity("u-2")))


def test_a_gateway_whose_key_services_do_not_know_refuses_to_start() -> None:
    from kglab_shared.identity import IdentityKeyError

    private, _ = _pair()
    _, other_public = _pair()
    with pytest.raises(IdentityKeyError, match="publish it to every service first"):
        IdentityCodec(public_keys=other_public, signing_key=private)
    with pytest.raises(IdentityKeyError, match="private key"):
        IdentityCodec(public_keys=json_of_private(private))


def json_of_private(private: str) -> str:
    import json

    return json.dumps({"keys": [json.loads(private)]})
