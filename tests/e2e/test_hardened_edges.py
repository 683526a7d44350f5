"""Small edges found from outside (issue 13), through the gateway as ``make dev`` composes it."""

from __future__ import annotations

import httpx

from tests.e2e.test_auth_through_gateway import bearer, sign_up


async def test_an_oversized_api_key_is_a_wrong_credential_not_an_outage(
    gateway: httpx.AsyncClient,
) -> None:
    for credential in ("kglab_" + "a" * 10_000, "kglab_abc_" + "x" * 10_000, "x" * 10_000):
        response = await gateway.get("/api/v1/documents", headers=bearer(credential))
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_trailing_slash_reveals_no_internal_address(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    for path in ("/api/v1/documents/", "/api/v1/jobs/", "/api/v1/graph/entities/"):
        response = await gateway.get(path, headers=bearer(user["access_token"]))
        location = response.headers.get("location", "")
        assert "127.0.0.1" not in location, (path, location)
        assert ":800" not in location, (path, location)
        assert response.status_code not in (307, 308), (path, response.status_code)
