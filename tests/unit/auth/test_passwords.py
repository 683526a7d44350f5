"""Argon2id hashing (the login throttle is the shared limiter: tests/contract/test_rate_limiter.py,
and its lockouts tests/contract/auth/test_throttle.py)."""

from __future__ import annotations

from kglab_auth.passwords import PasswordHasher

FAST = {"time_cost": 1, "memory_cost_kib": 8192, "parallelism": 1}


async def test_hashes_are_argon2id_and_verify() -> None:
    hasher = PasswordHasher(**FAST)
    hashed = await hasher.hash("correct horse 42")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify(hashed, "correct horse 42")
    assert not await hasher.verify(hashed, "wrong horse 42")


async def test_an_unknown_user_never_verifies() -> None:
    hasher = PasswordHasher(**FAST)
    assert not await hasher.verify(None, "kglab-dummy-password-for-timing")
    assert not await hasher.verify("not-a-hash", "anything")


async def test_weaker_parameters_ask_for_a_rehash() -> None:
    weak = await PasswordHasher(**FAST).hash("correct horse 42")
    assert PasswordHasher(time_cost=2, memory_cost_kib=8192, parallelism=1).needs_rehash(weak)


async def test_an_unknown_user_costs_the_same_argon2_work_as_a_wrong_password() -> None:
    import statistics
    import time

    hasher = PasswordHasher(time_cost=1, memory_cost_kib=16384, parallelism=1)
    hashed = await hasher.hash("correct horse 42")

    async def median_s(target: str | None) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            await hasher.verify(target, "wrong horse 42")
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    known, unknown = await median_s(hashed), await median_s(None)
    # Same parameters, same work; a skipped hash would be ~1000x faster. Loose bounds because
    # the suite runs in parallel on a loaded machine.
    assert 0.25 < unknown / known < 4.0
