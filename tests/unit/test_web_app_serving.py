"""The gateway serves the web app at / with its own content policy, and nothing outside it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from kglab_gateway.security import SecurityHeadersMiddleware
from kglab_gateway.webapp import APP_CSP, mount_web_app


def _client() -> TestClient:
    app = FastAPI()
    mount_web_app(app)
    app.add_middleware(SecurityHeadersMiddleware)
    return TestClient(app)


def test_the_page_and_its_script_carry_the_apps_policy() -> None:
    client = _client()
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/app/app.js">' in page.text
    script = client.get("/app/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    for response in (page, script):
        # The app's policy, not the API's default-src 'none' (which would block the page).
        assert response.headers["content-security-policy"] == APP_CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-cache"
    assert "'unsafe-inline'" not in APP_CSP
    assert "script-src 'self';" in APP_CSP


def test_nothing_outside_the_bundle_is_served() -> None:
    client = _client()
    assert client.get("/app/missing.js").status_code == 404
    assert client.get("/app/../webapp.py").status_code == 404
    assert client.get("/app/%2e%2e/webapp.py").status_code == 404
