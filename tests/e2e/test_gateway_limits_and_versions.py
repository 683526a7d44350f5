"""Per-route rate limits and version notices, configured as an operator would (environment)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.test_auth_through_gateway import bearer, sign_up


@pytest.fixture(autouse=True)
def _configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KGLAB_GATEWAY_RATE_LIMITS",
        json.dumps(
            [
                {"prefix": "/api/v1/auth/me", "limit": 3, "window_s": 60, "per": "user"},
                {"prefix": "/api/v1/auth/register", "limit": 50, "window_s": 60, "per": "ip"},
            ]
        ),
    )
    monkeypatch.setenv(
        "KGLAB_GATEWAY_VERSION_NOTICES",
        json.dumps(
            [
                {
                    "prefix": "/api/v1/",
                    "deprecation": "@1798761600",
                    "sunset": "Sat, 01 Jan 2028 00:00:00 GMT",
                    "link": "https://kglab.dev/docs/migrating-to-v2",
                }
            ]
        ),
    )


async def test_a_user_over_the_route_limit_gets_429_with_retry_after(
    gateway: httpx.AsyncClient,
) -> None:
    alice = await sign_up(gateway)
    bob = await sign_up(gateway)
    answers = [
        await gateway.get("/api/v1/auth/me", headers=bearer(alice["access_token"]))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "limit is 3 per 60 s" in limited.json()["detail"]
    # Limits are per user: Bob is unaffected.
    assert (
        await gateway.get("/api/v1/auth/me", headers=bearer(bob["access_token"]))
    ).status_code == 200


async def test_deprecated_versions_say_so_and_when_they_end(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    response = await gateway.get("/api/v1/auth/me", headers=bearer(user["access_token"]))
    assert response.headers["deprecation"] == "@1798761600"
    assert response.headers["sunset"] == "Sat, 01 Jan 2028 00:00:00 GMT"
    assert 'rel="deprecation"' in response.headers["link"]
