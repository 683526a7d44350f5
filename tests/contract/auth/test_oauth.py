"""Third-party sign-in end to end against a local fake OIDC provider (and a GitHub look-alike)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.contract.auth.fake_oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    FakeOidcProvider,
    FakeUser,
    create_fake_provider_app,
)
from tests.contract.auth.harness import AuthHarness, assert_problem, auth_harness
from tests.contract.auth.servers import serve_app


@pytest.fixture
async def fake_provider() -> AsyncIterator[FakeOidcProvider]:
    provider = FakeOidcProvider()
    async with serve_app(create_fake_provider_app(provider)) as base_url:
        provider.issuer = base_url
        yield provider


@pytest.fixture
async def oauth_auth(
    wiring: str, backend_urls: dict[str, str], tmp_path: Path, fake_provider: FakeOidcProvider
) -> AsyncIterator[AuthHarness]:
    base = fake_provider.issuer
    providers = {
        "fake": {
            "kind": "oidc",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "discovery_url": f"{base}/.well-known/openid-configuration",
        },
        "github": {
            "kind": "github",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorize_url": f"{base}/gh/login/oauth/authorize",
            "token_url": f"{base}/gh/login/oauth/access_token",
            "api_url": f"{base}/gh/api",
            "scope": "read:user user:email",
        },
    }
    async with auth_harness(wiring, tmp_path, oauth_providers=providers, **backend_urls) as harness:
        yield harness


async def _sign_in(auth: AuthHarness, provider: str) -> httpx.Response:
    """Follow the redirects as a browser would: auth → provider → auth callback."""
    start = await auth.client.get(f"/api/v1/auth/oauth/{provider}/authorize")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient(timeout=10) as browser:
        at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = urlsplit(at_provider.headers["location"])
    assert callback.netloc == "gateway.test"
    assert callback.path == f"/api/v1/auth/oauth/{provider}/callback"
    return await auth.client.get(f"{callback.path}?{callback.query}")


async def test_oidc_sign_in_creates_and_then_reuses_the_account(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    first = await _sign_in(oauth_auth, "fake")
    assert first.status_code == 200, first.text
    session = await oauth_auth.session_from(first, "oidc.user@example.com")
    me = await oauth_auth.client.get("/api/v1/auth/me", headers=session.headers)
    assert me.json()["email"] == "oidc.user@example.com"
    second = await oauth_auth.session_from(await _sign_in(oauth_auth, "fake"), "x")
    assert second.user_id == session.user_id
    assert fake_provider.token_requests == 2


async def test_authorize_redirect_carries_state_nonce_and_pkce(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    start = await oauth_auth.client.get("/api/v1/auth/oauth/fake/authorize")
    location = urlsplit(start.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == fake_provider.issuer
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["http://gateway.test/api/v1/auth/oauth/fake/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["code_challenge"][0]


async def test_github_sign_in_uses_the_verified_primary_email(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    fake_provider.user = FakeUser("gh-42", "octo@example.com")
    response = await _sign_in(oauth_auth, "github")
    assert response.status_code == 200, response.text
    session = await oauth_auth.session_from(response, "octo@example.com")
    assert session.user_id


async def test_an_oidc_sign_in_links_to_an_existing_account(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    existing = await oauth_auth.signed_up("linked@example.com")
    fake_provider.user = FakeUser("fake-sub-linked", "Linked@Example.com")
    session = await oauth_auth.session_from(
        await _sign_in(oauth_auth, "fake"), "linked@example.com"
    )
    assert session.user_id == existing.user_id


async def test_an_unverified_email_is_refused(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    fake_provider.user = FakeUser("fake-sub-2", "unverified@example.com", email_verified=False)
    assert_problem(await _sign_in(oauth_auth, "fake"), 401, "verified email")


async def test_a_replayed_or_unknown_state_is_refused(oauth_auth: AuthHarness) -> None:
    start = await oauth_auth.client.get("/api/v1/auth/oauth/fake/authorize")
    async with httpx.AsyncClient(timeout=10) as browser:
        at_provider = await browser.get(start.headers["location"])
    callback = urlsplit(at_provider.headers["location"])
    assert (await oauth_auth.client.get(f"{callback.path}?{callback.query}")).status_code == 200
    replay = await oauth_auth.client.get(f"{callback.path}?{callback.query}")
    assert_problem(replay, 401, "unknown, already finished or expired")
    forged = await oauth_auth.client.get(
        "/api/v1/auth/oauth/fake/callback", params={"code": "x", "state": "made-up"}
    )
    assert_problem(forged, 401)


async def test_an_unknown_provider_answers_404(oauth_auth: AuthHarness) -> None:
    response = await oauth_auth.client.get("/api/v1/auth/oauth/myspace/authorize")
    assert_problem(response, 404, "no sign-in provider called 'myspace'")


async def test_provider_errors_are_readable(oauth_auth: AuthHarness) -> None:
    response = await oauth_auth.client.get(
        "/api/v1/auth/oauth/fake/callback", params={"error": "access_denied"}
    )
    assert_problem(response, 401, "refused the sign-in: access_denied")


async def test_a_wrong_code_is_refused_by_the_provider(oauth_auth: AuthHarness) -> None:
    start = await oauth_auth.client.get("/api/v1/auth/oauth/fake/authorize")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    response = await oauth_auth.client.get(
        "/api/v1/auth/oauth/fake/callback", params={"code": "bogus", "state": state}
    )
    assert_problem(response, 401, "refused the sign-in")


async def test_an_id_token_signed_by_another_key_is_refused(
    oauth_auth: AuthHarness, fake_provider: FakeOidcProvider
) -> None:
    from joserfc.jwk import RSAKey

    fake_provider.rogue_key = RSAKey.generate_key(2048, private=True)
    assert_problem(await _sign_in(oauth_auth, "fake"), 401, "identity token")
