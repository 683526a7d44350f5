"""API keys: created once, hashed at rest, scoped, verifiable by the gateway, revocable."""

from __future__ import annotations

from kglab_shared.identity import Identity
from tests.contract.auth.harness import AuthHarness, assert_problem


async def test_create_verify_list_and_revoke(auth: AuthHarness) -> None:
    session = await auth.signed_up("sam@example.com")
    created = await auth.client.post(
        "/api/v1/auth/api-keys",
        json={"name": "importer", "scopes": ["documents:write", "documents:read"]},
        headers=session.headers,
    )
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(f"kglab_{body['id']}_")
    assert body["scopes"] == ["documents:read", "documents:write"]

    verified = await auth.client.post(
        "/internal/api-keys/verify", json={"key": key}, headers=auth.service_headers()
    )
    assert verified.status_code == 200
    assert verified.json() == {
        "user_id": session.user_id,
        "role": "user",
        "scopes": ["documents:read", "documents:write"],
        "email": "sam@example.com",
    }

    listed = await auth.client.get("/api/v1/auth/api-keys", headers=session.headers)
    assert [k["id"] for k in listed.json()] == [body["id"]]
    assert "key" not in listed.json()[0]
    assert listed.json()[0]["last_used_at"] is not None

    revoked = await auth.client.delete(
        f"/api/v1/auth/api-keys/{body['id']}", headers=session.headers
    )
    assert revoked.status_code == 204
    after = await auth.client.post(
        "/internal/api-keys/verify", json={"key": key}, headers=auth.service_headers()
    )
    assert_problem(after, 401, "revoked")
    assert (await auth.client.get("/api/v1/auth/api-keys", headers=session.headers)).json() == []


async def test_a_tampered_or_malformed_key_is_refused(auth: AuthHarness) -> None:
    session = await auth.signed_up("tina@example.com")
    key = (
        await auth.client.post(
            "/api/v1/auth/api-keys",
            json={"name": "k", "scopes": ["search"]},
            headers=session.headers,
        )
    ).json()["key"]
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    for candidate, fragment in [(tampered, "not valid"), ("hello", "not a Knowledge Graph Lab")]:
        response = await auth.client.post(
            "/internal/api-keys/verify", json={"key": candidate}, headers=auth.service_headers()
        )
        assert_problem(response, 401, fragment)


async def test_only_a_service_may_verify_keys(auth: AuthHarness) -> None:
    session = await auth.signed_up("uma@example.com")
    response = await auth.client.post(
        "/internal/api-keys/verify", json={"key": "kglab_a_b"}, headers=session.headers
    )
    assert_problem(response, 403, "Only another Knowledge Graph Lab service")


async def test_someone_elses_key_cannot_be_revoked(auth: AuthHarness) -> None:
    owner = await auth.signed_up("victor@example.com")
    other = await auth.signed_up("wendy@example.com")
    key_id = (
        await auth.client.post(
            "/api/v1/auth/api-keys", json={"name": "k", "scopes": ["search"]}, headers=owner.headers
        )
    ).json()["id"]
    response = await auth.client.delete(f"/api/v1/auth/api-keys/{key_id}", headers=other.headers)
    assert_problem(response, 404, "no live API key")


async def test_bad_scopes_are_refused(auth: AuthHarness) -> None:
    session = await auth.signed_up("xena@example.com")
    for scopes, fragment in [
        ([], "at least one scope"),
        (["Bad Scope"], "'Bad Scope' is not a scope an API key can have"),
        (["*"], "the valid scopes are documents:read, documents:write"),
        (["search", "everything"], "'everything' is not a scope"),
    ]:
        response = await auth.client.post(
            "/api/v1/auth/api-keys", json={"name": "k", "scopes": scopes}, headers=session.headers
        )
        assert_problem(response, 422, fragment)


async def test_a_disabled_owner_makes_the_key_useless(auth: AuthHarness) -> None:
    session = await auth.signed_up("yara@example.com")
    key = (
        await auth.client.post(
            "/api/v1/auth/api-keys",
            json={"name": "k", "scopes": ["search"]},
            headers=session.headers,
        )
    ).json()["key"]
    admin = await auth.admin()
    await auth.client.patch(
        f"/api/v1/auth/users/{session.user_id}", json={"disabled": True}, headers=admin.headers
    )
    response = await auth.client.post(
        "/internal/api-keys/verify", json={"key": key}, headers=auth.service_headers()
    )
    assert_problem(response, 401, "disabled")


async def test_a_key_without_keys_manage_cannot_manage_keys(auth: AuthHarness) -> None:
    """Auth's own check, behind the gateway's: a key's forwarded identity carries its scopes."""
    session = await auth.signed_up("zoe@example.com")
    as_key = auth.identity_headers(Identity(session.user_id, scopes=frozenset({"documents:read"})))
    for method, path in [
        ("GET", "/api/v1/auth/api-keys"),
        ("POST", "/api/v1/auth/api-keys"),
        ("DELETE", "/api/v1/auth/api-keys/abc"),
    ]:
        body = {"name": "k", "scopes": ["documents:read"]} if method == "POST" else None
        response = await auth.client.request(method, path, json=body, headers=as_key)
        assert_problem(response, 403, "'keys:manage' scope")
