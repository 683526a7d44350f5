"""The whole system on real identity keys: services verify what the gateway signs and refuse
what anyone else signs, the shared development secret's holder included."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from kglab_shared.identity import (
    IDENTITY_HEADER,
    Identity,
    IdentityCodec,
    generate_signing_key,
    public_jwks,
)
from tests.e2e.test_auth_through_gateway import bearer, sign_up

pytestmark = pytest.mark.parametrize("gateway_app", ["embedded"], indirect=True)
_SECRET = "a-secret-every-service-used-to-hold"


@pytest.fixture(autouse=True)
def identity_keys(monkeypatch: pytest.MonkeyPatch) -> IdentityCodec:
    """Set before the system is composed: the gateway's pair, the services' public half."""
    key = generate_signing_key()
    public = json.dumps(public_jwks(key))
    private = json.dumps(key.as_dict(private=True))
    monkeypatch.setenv("KGLAB_IDENTITY_PUBLIC_KEYS", public)
    monkeypatch.setenv("KGLAB_GATEWAY_IDENTITY_SIGNING_KEY", private)
    monkeypatch.setenv("KGLAB_INTERNAL_TOKEN_SECRET", _SECRET)
    return IdentityCodec(public_keys=public, signing_key=private)


async def test_services_trust_the_gateway_and_no_one_else(
    gateway: httpx.AsyncClient, gateway_app: FastAPI, identity_keys: IdentityCodec
) -> None:
    tokens = await sign_up(gateway)
    me = await gateway.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    user_id = me.json()["id"]

    auth_app = gateway_app.state.service_host.apps["auth"]
    transport = httpx.ASGITransport(app=auth_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as auth:
        # What the gateway signs is accepted when the service is called directly...
        signed = identity_keys.mint(Identity(user_id))
        direct = await auth.get("/api/v1/auth/me", headers={IDENTITY_HEADER: signed})
        assert direct.status_code == 200, direct.text
        # ...but an administrator forged with the shared secret (what any service could sign
        # before) or with a key of one's own is not.
        for forger in (IdentityCodec(_SECRET), IdentityCodec(public_keys=None, secret="x" * 32)):
            forged = forger.mint(Identity(user_id, "admin"))
            refused = await auth.get("/api/v1/auth/users", headers={IDENTITY_HEADER: forged})
            assert refused.status_code == 401, refused.text
