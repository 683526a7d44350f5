"""Every error path answers problem+json with a sentence a person understands."""

from __future__ import annotations

import pytest

from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.contract.auth.harness import AuthHarness, assert_problem


@pytest.mark.parametrize(
    ("email", "fragment"),
    [("not-an-email", "is not a usable email address"), ("a@b@c.com", "is not a usable email")],
)
async def test_register_rejects_a_bad_email(auth: AuthHarness, email: str, fragment: str) -> None:
    assert_problem(await auth.register(email), 422, fragment)


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short1", "too short: use at least 10 characters"),
        ("aaaaaaaaaaaa", "too few characters"),
        ("password123", "most common"),
        ("kim.example99", "must not contain your email"),
    ],
)
async def test_register_rejects_a_weak_password(
    auth: AuthHarness, password: str, fragment: str
) -> None:
    assert_problem(await auth.register("kim.example@example.com", password), 422, fragment)


async def test_register_rejects_a_duplicate_email_with_409(auth: AuthHarness) -> None:
    await auth.register("liz@example.com")
    assert_problem(await auth.register(" LIZ@example.com"), 409, "already exists")


async def test_wrong_password_and_unknown_user_answer_the_same_401(auth: AuthHarness) -> None:
    await auth.register("mallory@example.com")
    wrong = assert_problem(await auth.login("mallory@example.com", "wrong password 1"), 401)
    unknown = assert_problem(await auth.login("nobody@example.com", "wrong password 1"), 401)
    assert wrong["detail"] == unknown["detail"] == "The email address or the password is wrong."


async def test_unknown_fields_are_refused(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/register",
        json={"email": "x@example.com", "password": "long enough 12", "role": "admin"},
    )
    assert_problem(response, 422, "'role'")


async def test_malformed_json_is_refused(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/register",
        content=b'{"email": "x@example.com",',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 422, "not valid JSON")


async def test_login_without_a_password_is_refused(auth: AuthHarness) -> None:
    response = await auth.client.post("/api/v1/auth/login", data={"username": "a@example.com"})
    assert_problem(response, 422, "'password' is required")


async def test_an_unknown_refresh_token_is_refused(auth: AuthHarness) -> None:
    response = await auth.client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
    assert_problem(response, 401, "not valid")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/auth/me", None),
        ("POST", "/api/v1/auth/logout", {"refresh_token": "x"}),
        ("POST", "/api/v1/auth/password", {"current_password": "a", "new_password": "b"}),
        ("GET", "/api/v1/auth/api-keys", None),
        ("POST", "/api/v1/auth/api-keys", {"name": "n", "scopes": ["a"]}),
        ("DELETE", "/api/v1/auth/api-keys/abc", None),
        ("GET", "/api/v1/auth/users", None),
        ("PATCH", "/api/v1/auth/users/abc", {"disabled": True}),
        ("POST", "/api/v1/auth/keys/rotate", None),
        ("POST", "/internal/api-keys/verify", {"key": "kglab_a_b"}),
    ],
)
async def test_protected_routes_refuse_absent_and_forged_identities(
    auth: AuthHarness, method: str, path: str, body: object
) -> None:
    absent = await auth.client.request(method, path, json=body)
    assert_problem(absent, 401)
    forged_codec = IdentityCodec("not-the-shared-internal-secret")
    forged = {IDENTITY_HEADER: forged_codec.mint(Identity(user_id="x", role="admin"))}
    response = await auth.client.request(method, path, json=body, headers=forged)
    assert_problem(response, 401, "invalid or expired")
    garbage = await auth.client.request(
        method, path, json=body, headers={IDENTITY_HEADER: "garbage"}
    )
    assert_problem(garbage, 401)
    anonymous = await auth.client.request(method, path, json=body, headers=auth.anonymous_headers())
    assert_problem(anonymous, 401, "Sign in first")


async def test_an_expired_identity_is_refused(auth: AuthHarness) -> None:
    stale = {IDENTITY_HEADER: auth.codec.mint(Identity(user_id="x"), lifetime_s=-10)}
    assert_problem(await auth.client.get("/api/v1/auth/me", headers=stale), 401)


async def test_unknown_routes_answer_problem_json(auth: AuthHarness) -> None:
    assert_problem(await auth.client.get("/api/v1/auth/nothing-here"), 404)
