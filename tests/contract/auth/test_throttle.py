"""Brute-force protection: per account and address, and per address, 429 with Retry-After;
per account from everywhere, slowed but never locked."""

from __future__ import annotations

import time

from tests.contract.auth.harness import PASSWORD, AuthHarness, assert_problem


async def test_failures_lock_the_account_from_that_address_only(auth: AuthHarness) -> None:
    """Lockout abuse (issue 13): a stranger's wrong passwords do not lock the owner out."""
    await auth.register("quinn@example.com")
    limit = auth.settings.login_max_failures_per_account_and_ip
    for _ in range(limit):
        response = await auth.login("quinn@example.com", "wrong password 1", ip="198.51.100.1")
        assert response.status_code == 401
    # From the guessing address even the right password waits now...
    throttled = await auth.login("quinn@example.com", PASSWORD, ip="198.51.100.1")
    body = assert_problem(throttled, 429, "for this account from your network address", "minutes")
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= auth.settings.login_window_s + 1
    assert body["title"] == "Too many requests"
    # ...while the owner, elsewhere, signs in at once.
    assert (await auth.login("quinn@example.com", PASSWORD, ip="192.0.2.77")).status_code == 200


async def test_a_distributed_guess_slows_the_account_but_never_locks_it(
    auth: AuthHarness,
) -> None:
    await auth.register("sven@example.com")
    slow_after = auth.settings.login_slow_after_failures_per_account
    pair_limit = auth.settings.login_max_failures_per_account_and_ip
    # Many addresses, each below its own pair limit, together past the account's ceiling.
    for n in range(slow_after):
        ip = f"198.51.100.{10 + n // (pair_limit - 1)}"
        response = await auth.login("sven@example.com", "wrong password 1", ip=ip)
        assert response.status_code == 401
    started = time.monotonic()
    owner = await auth.login("sven@example.com", PASSWORD, ip="192.0.2.78")
    assert owner.status_code == 200
    assert time.monotonic() - started >= auth.settings.login_slow_delay_s
    # A guess is slowed just the same.
    started = time.monotonic()
    guess = await auth.login("sven@example.com", "wrong password 1", ip="198.51.100.200")
    assert guess.status_code == 401
    assert time.monotonic() - started >= auth.settings.login_slow_delay_s


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


async def test_a_successful_login_clears_that_address_counter(auth: AuthHarness) -> None:
    await auth.register("rita@example.com")
    limit = auth.settings.login_max_failures_per_account_and_ip
    for _ in range(limit - 1):
        await auth.login("rita@example.com", "wrong password 1", ip="192.0.2.20")
    assert (await auth.login("rita@example.com", ip="192.0.2.20")).status_code == 200
    for _ in range(limit - 1):
        await auth.login("rita@example.com", "wrong password 1", ip="192.0.2.20")
    assert (await auth.login("rita@example.com", ip="192.0.2.20")).status_code == 200
