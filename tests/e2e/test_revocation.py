"""Signing out, a password reset, disabling a user and revoking a key take effect within a
second, not when the access token expires or the gateway's key cache lets go.

On embedded stores the feed is the process's own; on the real servers it goes through Redis
(pub/sub and the sorted set of live revocations), as between separate gateway and auth
processes. The gateway caches API-key look-ups for 30 s here, as in production, so a key that
stops working has been pushed out of that cache, not aged out of it.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.test_auth_through_gateway import PASSWORD, bearer, sign_in, sign_up

pytestmark = pytest.mark.api_key_cache_s(30)
_WITHIN_S = 1.0
_NEW_PASSWORD = "another long passphrase"


async def _refused_within(gateway: httpx.AsyncClient, credential: str, path: str) -> float:
    """Seconds until ``credential`` gets 401 on ``path``; fails after a second."""
    started = time.monotonic()
    while True:
        response = await gateway.get(path, headers=bearer(credential))
        elapsed = time.monotonic() - started
        if response.status_code == 401:
            return elapsed
        assert elapsed <= _WITHIN_S, f"still {response.status_code} after {elapsed:.2f} s"
        await asyncio.sleep(0.02)


async def _key(gateway: httpx.AsyncClient, session: str, scopes: list[str]) -> tuple[str, str]:
    created = await gateway.post(
        "/api/v1/auth/api-keys",
        json={"name": "importer", "scopes": scopes},
        headers=bearer(session),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    # Used once: the gateway now holds its look-up in the cache.
    assert (await gateway.get("/api/v1/auth/me", headers=bearer(body["key"]))).status_code == 200
    return body["id"], body["key"]


async def test_logout_stops_that_sessions_access_token(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    other = await sign_in(gateway, tokens["email"], PASSWORD)
    assert (await gateway.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).is_success
    out = await gateway.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert out.status_code == 204
    await _refused_within(gateway, tokens["access_token"], "/api/v1/auth/me")
    refused = await gateway.get("/api/v1/documents", headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401
    assert "signed out" in refused.json()["detail"]
    # Only that session: the same user's other sign-in goes on.
    still = await gateway.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
    assert still.status_code == 200


async def test_a_password_reset_stops_tokens_and_api_keys(
    gateway: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = await sign_up(gateway)
    _, key = await _key(gateway, tokens["access_token"], ["documents:read"])
    asked = await gateway.post(
        "/api/v1/auth/password-reset/request", json={"email": tokens["email"]}
    )
    assert asked.status_code == 202
    reset_token = await _reset_token_mailed_to(tokens["email"], tmp_path)
    confirmed = await gateway.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": reset_token, "new_password": _NEW_PASSWORD},
    )
    assert confirmed.status_code == 204, confirmed.text
    await _refused_within(gateway, tokens["access_token"], "/api/v1/auth/me")
    await _refused_within(gateway, key, "/api/v1/documents")
    # The new password signs in as usual.
    fresh = await sign_in(gateway, tokens["email"], _NEW_PASSWORD)
    assert (await gateway.get("/api/v1/auth/me", headers=bearer(fresh["access_token"]))).is_success


async def test_disabling_a_user_stops_their_tokens_and_keys(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    _, key = await _key(gateway, tokens["access_token"], ["documents:read"])
    me = (await gateway.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).json()
    admin = await sign_in(gateway, ADMIN_EMAIL, ADMIN_PASSWORD)
    disabled = await gateway.patch(
        f"/api/v1/auth/users/{me['id']}",
        json={"disabled": True},
        headers=bearer(admin["access_token"]),
    )
    assert disabled.status_code == 200, disabled.text
    await _refused_within(gateway, tokens["access_token"], "/api/v1/documents")
    await _refused_within(gateway, key, "/api/v1/documents")


async def test_a_revoked_key_stops_at_once_despite_the_cache(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    key_id, key = await _key(gateway, tokens["access_token"], ["documents:read"])
    _, kept = await _key(gateway, tokens["access_token"], ["documents:read"])
    revoked = await gateway.delete(
        f"/api/v1/auth/api-keys/{key_id}", headers=bearer(tokens["access_token"])
    )
    assert revoked.status_code == 204
    await _refused_within(gateway, key, "/api/v1/documents")
    assert (await gateway.get("/api/v1/documents", headers=bearer(kept))).status_code == 200


async def _reset_token_mailed_to(email: str, tmp_path: Path) -> str:
    # The file outbox of make dev (and of the real composition: no SMTP server in tests).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for mail in sorted((tmp_path / "data").rglob("*.eml")):
            text = mail.read_text()
            if email in text:
                found = re.search(r"Reset token: (\S+)", text)
                assert found is not None
                return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no reset mail reached {email}")
