"""The IETF RateLimit fields on every rate-limited answer (issue 20): they count down, say when
the window resets, stay on the 429 beside Retry-After, and start afresh after the reset."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.e2e.test_auth_through_gateway import bearer, sign_up
from tests.waiting import wait_until

_ITEM = re.compile(r'^"(?P<name>[^"]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@pytest.fixture(autouse=True)
def _short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_GATEWAY_CORS_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv(
        "KGLAB_GATEWAY_RATE_LIMITS",
        json.dumps(
            [
                {"prefix": "/api/v1/auth/me", "limit": 3, "window_s": 3, "per": "user"},
                {"prefix": "/api/", "limit": 1000, "window_s": 60, "per": "ip"},
            ]
        ),
    )


def _limits(response: httpx.Response) -> dict[str, tuple[int, int]]:
    """``RateLimit`` as {policy: (remaining, seconds to reset)}."""
    found = {}
    for item in response.headers["ratelimit"].split(","):
        match = _ITEM.match(item.strip())
        assert match, response.headers["ratelimit"]
        found[match["name"]] = (int(match["r"]), int(match["t"]))
    return found


async def test_the_fields_count_down_limit_and_reset(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    auth = bearer(user["access_token"])

    async def window_just_began() -> bool:  # the gateway's windows run on the clock
        return time.time() % 3 < 0.5

    await wait_until(window_just_began, timeout_s=4)
    answers = [await gateway.get("/api/v1/auth/me", headers=auth) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == '"user-v1-auth-me";q=3;w=3, "ip";q=1000;w=60'
    remaining = [_limits(a)["user-v1-auth-me"][0] for a in answers]
    assert remaining == [2, 1, 0, 0]
    assert all(1 <= _limits(a)["user-v1-auth-me"][1] <= 3 for a in answers)
    # The address's own policy counts every call through /api/ (sign-up included).
    ip_left = [_limits(a)["ip"][0] for a in answers]
    assert ip_left == sorted(ip_left, reverse=True)
    assert ip_left[0] < 1000
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) == _limits(limited)["user-v1-auth-me"][1]
    assert limited.headers["content-type"].startswith("application/problem+json")

    fresh: list[httpx.Response] = []

    async def window_reset() -> bool:
        answer = await gateway.get("/api/v1/auth/me", headers=auth)
        fresh.append(answer)
        return answer.status_code == 200

    await wait_until(window_reset, timeout_s=6, step_s=0.25)
    assert _limits(fresh[-1])["user-v1-auth-me"][0] == 2
    assert 1 <= _limits(fresh[-1])["user-v1-auth-me"][1] <= 3


async def test_unlimited_routes_carry_no_fields(gateway: httpx.AsyncClient) -> None:
    health = await gateway.get("/health")
    assert health.status_code == 200
    assert "ratelimit" not in health.headers
    assert "ratelimit-policy" not in health.headers


async def test_a_browser_may_read_the_fields(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    answer = await gateway.get(
        "/api/v1/auth/me",
        headers={**bearer(user["access_token"]), "Origin": "https://app.example"},
    )
    assert answer.status_code == 200
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {"ratelimit", "ratelimit-policy", "retry-after"} <= exposed
