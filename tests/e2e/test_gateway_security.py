"""Deny by default, proven over the whole published API."""

from __future__ import annotations

import re

import httpx

from kglab_gateway.routing import is_public

_PARAM = re.compile(r"\{[^}]+\}")


async def test_every_non_public_route_rejects_an_anonymous_call(
    gateway: httpx.AsyncClient,
) -> None:
    document = (await gateway.get("/openapi.json")).json()
    checked = 0
    for path, item in document["paths"].items():
        concrete = _PARAM.sub("x0000000000000000000000000000000", path)
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in item:
                continue
            operation = item[method]
            if is_public(method.upper(), concrete) or path in ("/health", "/ready"):
                assert operation["security"] == [], f"{method} {path} should be public"
                continue
            assert operation["security"], f"{method} {path} must declare its security"
            response = await gateway.request(method.upper(), concrete)
            assert response.status_code == 401, f"{method.upper()} {path} let an anonymous in"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    # The document also covers routes not yet published by a service: probe the route table.
    for path in ("/api/v1/documents", "/api/v1/jobs", "/api/v1/search", "/api/v1/graph/x"):
        assert (await gateway.get(path)).status_code == 401
    assert checked >= 5, f"only {checked} protected operations were published"


async def test_unknown_paths_are_problems_not_passthrough(gateway: httpx.AsyncClient) -> None:
    for path in ("/internal/api-keys/verify", "/api/v2/documents", "/api/v1/nothing"):
        response = await gateway.post(path)
        assert response.status_code in (404, 405), path
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_bad_bearer_token_is_a_readable_401(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(
        "/api/v1/documents", headers={"Authorization": "Bearer not.a.token"}
    )
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_a_forged_identity_header_is_not_trusted(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(
        "/api/v1/documents", headers={"X-KGLab-Identity": "forged", "Authorization": ""}
    )
    assert response.status_code == 401


async def test_security_headers_and_request_id(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/health", headers={"X-Request-ID": "trace-me-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-me-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_docs_are_served_offline(gateway: httpx.AsyncClient) -> None:
    page = await gateway.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    script = await gateway.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    document = (await gateway.get("/openapi.json")).json()
    flows = document["components"]["securitySchemes"]["OAuth2Password"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/login"


async def test_system_readiness_names_every_service(gateway: httpx.AsyncClient) -> None:
    body = (await gateway.get("/ready/system")).json()
    assert set(body["dependencies"]) >= {"auth", "ingestion", "graph", "document", "vector"}


async def test_metrics_need_an_administrator(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/metrics")).status_code == 401
