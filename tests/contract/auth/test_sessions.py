"""Register, sign in, refresh, sign out: the session life cycle on every wiring."""

from __future__ import annotations

from tests.contract.auth.harness import PASSWORD, AuthHarness


async def test_register_normalises_the_email_and_hides_the_hash(auth: AuthHarness) -> None:
    response = await auth.register("  Ada.Lovelace@Example.COM ")
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada.lovelace@example.com"
    assert body["role"] == "user"
    assert body["disabled"] is False
    assert "password" not in str(body)
    assert "hash" not in str(body)


async def test_a_look_alike_address_cannot_register_twice(auth: AuthHarness) -> None:
    assert (await auth.register("ada.byron@example.com")).status_code == 201
    # Fullwidth letters and a fullwidth domain: the same address to a reader, and now to us.
    look_alike = "\uff41\uff44\uff41.byron@\uff25XAMPLE.com"
    again = await auth.register(look_alike)
    assert again.status_code == 409, again.text
    assert (await auth.login(look_alike)).status_code == 200


async def test_login_returns_a_bearer_pair_whose_access_token_verifies(auth: AuthHarness) -> None:
    await auth.register("bob@example.com")
    response = await auth.login("BOB@example.com ")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = (await auth.verifier()).verify(body["access_token"])
    assert claims.role == "user"
    assert claims.scope == "*"
    assert claims.email == "bob@example.com"
    assert claims.expires_at - claims.issued_at == 900


async def test_me_shows_the_signed_in_user(auth: AuthHarness) -> None:
    session = await auth.signed_up("carol@example.com")
    response = await auth.client.get("/api/v1/auth/me", headers=session.headers)
    assert response.status_code == 200
    assert response.json()["id"] == session.user_id
    assert response.json()["email"] == "carol@example.com"


async def test_refresh_rotates_the_pair_and_spends_the_old_token(auth: AuthHarness) -> None:
    session = await auth.signed_up("dave@example.com")
    first = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != session.refresh_token
    assert (await auth.verifier()).verify(rotated["access_token"]).subject == session.user_id
    second = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert second.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(auth: AuthHarness) -> None:
    session = await auth.signed_up("eve@example.com")
    rotated = (
        await auth.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
        )
    ).json()
    replay = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert replay.status_code == 401
    assert replay.headers["content-type"].startswith("application/problem+json")
    assert "already used" in replay.json()["detail"]
    # The legitimate holder's newer token died with the family.
    descendant = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert descendant.status_code == 401
    assert "signed out" in descendant.json()["detail"]


async def test_a_second_session_survives_when_another_family_is_revoked(auth: AuthHarness) -> None:
    session = await auth.signed_up("frank@example.com")
    other = await auth.session_from(await auth.login("frank@example.com"), "frank@example.com")
    await auth.client.post("/api/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    await auth.client.post("/api/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    survivor = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other.refresh_token}
    )
    assert survivor.status_code == 200


async def test_logout_revokes_the_session(auth: AuthHarness) -> None:
    session = await auth.signed_up("grace@example.com")
    response = await auth.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session.refresh_token},
        headers=session.headers,
    )
    assert response.status_code == 204
    after = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert after.status_code == 401
    assert after.json()["detail"] == "This session has been signed out; sign in again."


async def test_logout_cannot_end_someone_elses_session(auth: AuthHarness) -> None:
    victim = await auth.signed_up("heidi@example.com")
    attacker = await auth.signed_up("ivan@example.com")
    response = await auth.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": victim.refresh_token},
        headers=attacker.headers,
    )
    assert response.status_code == 204
    still = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": victim.refresh_token}
    )
    assert still.status_code == 200


async def test_change_password_needs_the_current_one_and_ends_sessions(auth: AuthHarness) -> None:
    session = await auth.signed_up("judy@example.com")
    wrong = await auth.client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "another long one 7"},
        headers=session.headers,
    )
    assert wrong.status_code == 403
    assert "current password is wrong" in wrong.json()["detail"]
    changed = await auth.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another long one 7"},
        headers=session.headers,
    )
    assert changed.status_code == 204
    assert (await auth.login("judy@example.com")).status_code == 401
    assert (await auth.login("judy@example.com", "another long one 7")).status_code == 200
    old = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert old.status_code == 401


async def test_bootstrap_admin_exists_at_start_up(auth: AuthHarness) -> None:
    admin = await auth.admin()
    me = await auth.client.get("/api/v1/auth/me", headers=admin.headers)
    assert me.json()["role"] == "admin"


async def test_ready_names_every_dependency(auth: AuthHarness) -> None:
    response = await auth.client.get("/ready")
    assert response.status_code == 200
    dependencies = response.json()["dependencies"]
    assert dependencies["database"]["status"] == "up"
    if auth.wiring == "real":
        assert dependencies["redis"]["status"] == "up"
