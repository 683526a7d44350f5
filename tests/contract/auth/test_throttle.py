"""Brute-force protection: per-account and per-IP throttling answer 429 with Retry-After."""

from __future__ import annotations

from tests.contract.auth.harness import PASSWORD, AuthHarness, assert_problem


async def test_an_account_is_throttled_after_repeated_failures(auth: AuthHarness) -> None:
    await auth.register("quinn@example.com")
    limit = auth.settings.login_max_failures_per_account
    for attempt in range(limit):
        response = await auth.login(
            "quinn@example.com", "wrong password 1", ip=f"198.51.100.{attempt}"
        )
        assert response.status_code == 401
    # Even the right password waits now, from any address.
    throttled = await auth.login("quinn@example.com", PASSWORD, ip="198.51.100.99")
    body = assert_problem(throttled, 429, "Too many failed sign-ins for this account", "minutes")
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= auth.settings.login_window_s + 1
    assert body["title"] == "Too many requests"


async def test_an_address_is_throttled_across_accounts(auth: AuthHarness) -> None:
    limit = auth.settings.login_max_failures_per_ip
    for n in range(limit):
        response = await auth.login(f"user{n}@example.com", "wrong password 1", ip="192.0.2.10")
        assert response.status_code == 401
    throttled = await auth.login("someone.else@example.com", "wrong password 1", ip="192.0.2.10")
    assert_problem(throttled, 429, "from your network address")
    assert int(throttled.headers["Retry-After"]) >= 1
    elsewhere = await auth.login("someone.else@example.com", "wrong password 1", ip="192.0.2.11")
    assert elsewhere.status_code == 401


async def test_a_successful_login_clears_the_account_counter(auth: AuthHarness) -> None:
    await auth.register("rita@example.com")
    limit = auth.settings.login_max_failures_per_account
    for _ in range(limit - 1):
        await auth.login("rita@example.com", "wrong password 1", ip="192.0.2.20")
    assert (await auth.login("rita@example.com", ip="192.0.2.21")).status_code == 200
    for _ in range(limit - 1):
        await auth.login("rita@example.com", "wrong password 1", ip="192.0.2.22")
    assert (await auth.login("rita@example.com", ip="192.0.2.23")).status_code == 200
