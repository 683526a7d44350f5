"""Administrators list users, disable them and change their role."""

from __future__ import annotations

from tests.contract.auth.harness import AuthHarness, assert_problem


async def test_admin_lists_users_page_by_page(auth: AuthHarness) -> None:
    for name in ("ann", "ben", "cat", "dan"):
        await auth.register(f"{name}@example.com")
    admin = await auth.admin()
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded: 5 users, 2 per page
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await auth.client.get("/api/v1/auth/users", params=params, headers=admin.headers)
        assert page.status_code == 200
        seen += [u["email"] for u in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(
        [
            "admin@example.com",
            "ann@example.com",
            "ben@example.com",
            "cat@example.com",
            "dan@example.com",
        ]
    )


async def test_a_user_is_not_an_admin(auth: AuthHarness) -> None:
    user = await auth.signed_up("eli@example.com")
    response = await auth.client.get("/api/v1/auth/users", headers=user.headers)
    assert_problem(response, 403, "Only an administrator")
    rotate = await auth.client.post("/api/v1/auth/keys/rotate", headers=user.headers)
    assert_problem(rotate, 403)


async def test_disabling_a_user_blocks_login_and_refresh(auth: AuthHarness) -> None:
    user = await auth.signed_up("fay@example.com")
    admin = await auth.admin()
    response = await auth.client.patch(
        f"/api/v1/auth/users/{user.user_id}", json={"disabled": True}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert_problem(await auth.login("fay@example.com"), 403, "disabled")
    refresh = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert refresh.status_code == 401
    enabled = await auth.client.patch(
        f"/api/v1/auth/users/{user.user_id}", json={"disabled": False}, headers=admin.headers
    )
    assert enabled.json()["disabled"] is False
    assert (await auth.login("fay@example.com")).status_code == 200


async def test_promoting_a_user_shows_in_the_next_token(auth: AuthHarness) -> None:
    user = await auth.signed_up("gus@example.com")
    admin = await auth.admin()
    promoted = await auth.client.patch(
        f"/api/v1/auth/users/{user.user_id}", json={"role": "admin"}, headers=admin.headers
    )
    assert promoted.json()["role"] == "admin"
    pair = (await auth.login("gus@example.com")).json()
    assert (await auth.verifier()).verify(pair["access_token"]).role == "admin"


async def test_admin_cannot_lock_themselves_out(auth: AuthHarness) -> None:
    admin = await auth.admin()
    for change in ({"disabled": True}, {"role": "user"}):
        response = await auth.client.patch(
            f"/api/v1/auth/users/{admin.user_id}", json=change, headers=admin.headers
        )
        assert_problem(response, 409, "your own account")


async def test_patch_validates_and_finds_the_user(auth: AuthHarness) -> None:
    admin = await auth.admin()
    missing = await auth.client.patch(
        "/api/v1/auth/users/no-such-id", json={"disabled": True}, headers=admin.headers
    )
    assert_problem(missing, 404, "no user with id")
    bad_role = await auth.client.patch(
        f"/api/v1/auth/users/{admin.user_id}", json={"role": "root"}, headers=admin.headers
    )
    assert_problem(bad_role, 422, "'role'")
