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
