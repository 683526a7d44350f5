"""Auth flows as a user meets them: through the gateway, on embedded and on real backends."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

PASSWORD = "a long enough passphrase"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(gateway: httpx.AsyncClient, email: str | None = None) -> dict[str, str]:
    email = email or new_email()
    registered = await gateway.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    return await sign_in(gateway, email, PASSWORD)


async def sign_in(gateway: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await gateway.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    tokens["email"] = email
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_and_me(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    assert tokens["token_type"] == "bearer"
    me = await gateway.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == tokens["email"]
    assert me.headers["x-content-type-options"] == "nosniff"


async def test_refresh_rotates_and_reuse_revokes_the_family(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    first = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != tokens["refresh_token"]
    reused = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401
    assert reused.json()["detail"]
    # The whole family is revoked: the rotated token no longer works either.
    after = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
    assert after.status_code == 401


async def test_jwks_is_public(gateway: httpx.AsyncClient) -> None:
    keys = (await gateway.get("/.well-known/jwks.json")).json()["keys"]
    assert keys
    assert all("d" not in key for key in keys), "a private key part was published"


async def test_api_keys_work_as_bearer_tokens_until_revoked(gateway: httpx.AsyncClient) -> None:
    tokens = await sign_up(gateway)
    created = await gateway.post(
        "/api/v1/auth/api-keys",
        json={"name": "importer", "scopes": ["documents:read"]},
        headers=bearer(tokens["access_token"]),
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    me = await gateway.get("/api/v1/auth/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["email"] == tokens["email"]
    revoked = await gateway.delete(
        f"/api/v1/auth/api-keys/{created.json()['id']}", headers=bearer(tokens["access_token"])
    )
    assert revoked.status_code == 204
    refused = await gateway.get("/api/v1/auth/me", headers=bearer(key))
    assert refused.status_code == 401
    assert "API key" in refused.json()["detail"]


async def test_wrong_passwords_are_throttled_with_retry_after(
    gateway: httpx.AsyncClient,
) -> None:
    email = new_email()
    await sign_up(gateway, email)
    statuses = []
    for _ in range(8):
        response = await gateway.post(
            "/api/v1/auth/login", data={"username": email, "password": "wrong password!"}
        )
        statuses.append(response.status_code)
    assert statuses[0] == 401
    assert statuses[-1] == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["detail"]


async def test_only_administrators_read_metrics(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    assert (await gateway.get("/metrics", headers=bearer(user["access_token"]))).status_code == 403
    admin = await sign_in(gateway, ADMIN_EMAIL, ADMIN_PASSWORD)
    metrics = await gateway.get("/metrics", headers=bearer(admin["access_token"]))
    assert metrics.status_code == 200
    assert "kglab_http_requests_total" in metrics.text


async def test_an_oversized_body_is_refused_readably(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/auth/register",
        content=b'{"email": "' + b"a" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "limit is 1.0 MB" in response.json()["detail"]


async def test_malformed_input_is_a_readable_4xx(gateway: httpx.AsyncClient) -> None:
    broken = await gateway.post(
        "/api/v1/auth/register", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    weak = await gateway.post(
        "/api/v1/auth/register", json={"email": new_email(), "password": "short"}
    )
    assert weak.status_code == 422
    assert "password" in weak.json()["detail"].lower()
