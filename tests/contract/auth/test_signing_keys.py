"""JWKS and key rotation: a new key signs, old tokens keep verifying, nobody is logged out."""

from __future__ import annotations

from kglab_auth.tokens import AccessTokenVerifier
from tests.contract.auth.harness import AuthHarness


async def test_jwks_publishes_public_ed25519_keys_only(auth: AuthHarness) -> None:
    response = await auth.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "OKP"
    assert keys[0]["crv"] == "Ed25519"
    assert keys[0]["alg"] == "EdDSA"
    assert "d" not in keys[0]
    assert keys[0]["kid"]


async def test_rotation_keeps_old_tokens_verifiable(auth: AuthHarness) -> None:
    user = await auth.signed_up("hal@example.com")
    admin = await auth.admin()
    old_kid = (await auth.client.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]
    rotated = await auth.client.post("/api/v1/auth/keys/rotate", headers=admin.headers)
    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid

    jwks = (await auth.client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    verifier = AccessTokenVerifier(jwks, issuer="kglab-auth", audience="kglab")
    assert verifier.verify(user.access_token).subject == user.user_id  # signed by the old key

    fresh = (
        await auth.client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    ).json()
    header_kid = await _kid(fresh["access_token"])
    assert header_kid == new_kid
    assert verifier.verify(fresh["access_token"]).subject == user.user_id
    me = await auth.client.get("/api/v1/auth/me", headers=await auth.headers_for(user.access_token))
    assert me.status_code == 200


async def _kid(token: str) -> str:
    import base64
    import json

    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])
