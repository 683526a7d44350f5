"""GET /me on both wirings: the caller's own row, read fresh on every call, and the same
errors as every other route."""

from __future__ import annotations

import asyncio

from kglab_shared.identity import Identity
from kglab_shared.metrics import REGISTRY
from tests.contract.auth.harness import AuthHarness, assert_problem


async def test_me_answers_the_callers_own_row_as_the_route_serialises_it(
    auth: AuthHarness,
) -> None:
    session = await auth.signed_up("ursula@example.com")
    me = await auth.client.get("/api/v1/auth/me", headers=session.headers)
    assert me.status_code == 200, me.text
    assert me.headers["content-type"] == "application/json"
    assert int(me.headers["content-length"]) == len(me.content)
    body = me.json()
    assert set(body) == {"id", "email", "role", "disabled", "created_at"}
    assert (body["id"], body["email"], body["role"], body["disabled"]) == (
        session.user_id,
        "ursula@example.com",
        "user",
        False,
    )
    # The admin listing goes through FastAPI's own response serialisation: same fields, same
    # value formats (the timestamp above all).
    admin = await auth.admin()
    listed = await auth.client.get("/api/v1/auth/users?limit=50", headers=admin.headers)
    entry = next(item for item in listed.json()["items"] if item["id"] == session.user_id)
    assert entry == body


async def test_concurrent_callers_each_get_their_own_row(auth: AuthHarness) -> None:
    sessions = [await auth.signed_up(f"crowd{i}@example.com") for i in range(4)]
    calls = [sessions[i % len(sessions)] for i in range(40)]
    answers = await asyncio.gather(
        *(auth.client.get("/api/v1/auth/me", headers=s.headers) for s in calls)
    )
    for session, answer in zip(calls, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == session.user_id
        assert answer.json()["email"] == session.email


async def test_me_reads_fresh_so_a_disabled_account_or_new_role_shows_at_once(
    auth: AuthHarness,
) -> None:
    session = await auth.signed_up("vera@example.com")
    admin = await auth.admin()
    before = await auth.client.get("/api/v1/auth/me", headers=session.headers)
    assert before.json()["disabled"] is False
    changed = await auth.client.patch(
        f"/api/v1/auth/users/{session.user_id}",
        json={"disabled": True, "role": "admin"},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text
    # The same forwarded identity as before: nothing about the user is cached on the way.
    after = await auth.client.get("/api/v1/auth/me", headers=session.headers)
    assert after.status_code == 200
    assert (after.json()["disabled"], after.json()["role"]) == (True, "admin")


async def test_an_identity_with_no_account_behind_it_answers_404(auth: AuthHarness) -> None:
    ghost = auth.identity_headers(Identity(user_id="00000000-0000-0000-0000-000000000000"))
    body = assert_problem(
        await auth.client.get("/api/v1/auth/me", headers=ghost), 404, "no user account"
    )
    assert body["instance"] == "/api/v1/auth/me"
    # Hostile ids are bind parameters, never SQL.
    hostile = auth.identity_headers(Identity(user_id="x' OR '1'='1"))
    assert_problem(await auth.client.get("/api/v1/auth/me", headers=hostile), 404)


async def test_me_errors_carry_the_request_id_and_security_of_the_route(
    auth: AuthHarness,
) -> None:
    absent = await auth.client.get("/api/v1/auth/me", headers={"X-Request-ID": "req-me-1"})
    assert_problem(absent, 401, "Sign in first")
    assert absent.headers["x-request-id"] == "req-me-1"


async def test_other_methods_on_me_are_not_allowed(auth: AuthHarness) -> None:
    session = await auth.signed_up("wendy@example.com")
    for method in ("POST", "DELETE", "PUT"):
        response = await auth.client.request(method, "/api/v1/auth/me", headers=session.headers)
        assert_problem(response, 405)


async def test_me_is_documented_and_counted_under_its_route(auth: AuthHarness) -> None:
    session = await auth.signed_up("xena@example.com")
    assert (await auth.client.get("/api/v1/auth/me", headers=session.headers)).status_code == 200
    document = (await auth.client.get("/openapi.json")).json()
    assert "200" in document["paths"]["/api/v1/auth/me"]["get"]["responses"]
    metrics = (await auth.client.get("/metrics")).text
    assert 'route="/api/v1/auth/me"' in metrics


async def test_every_me_is_counted_and_timed(auth: AuthHarness) -> None:
    session = await auth.signed_up("yara@example.com")
    labels = {"service": "auth", "method": "GET", "route": "/api/v1/auth/me"}

    def counted() -> tuple[float, float]:
        requests = REGISTRY.get_sample_value(
            "kglab_http_requests_total", {**labels, "status": "200"}
        )
        timed = REGISTRY.get_sample_value("kglab_http_request_duration_seconds_count", labels)
        return requests or 0.0, timed or 0.0

    before = counted()
    for _ in range(3):
        assert (await auth.client.get("/api/v1/auth/me", headers=session.headers)).is_success
    after = counted()
    assert (after[0] - before[0], after[1] - before[1]) == (3.0, 3.0)
