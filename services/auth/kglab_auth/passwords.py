"""Argon2id password hashing, with a dummy verification so unknown users cost the same time."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """Argon2id (OWASP's minimum profile by default); hashing runs off the event loop."""

    def __init__(self, *, time_cost: int = 2, memory_cost_kib: int = 19456, parallelism: int = 1):
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        # Verified when the user is unknown, so both paths do the same Argon2 work.
        self._dummy_hash = self._argon2.hash("kglab-dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` (no such user) still costs one verification."""
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.to_thread(self._argon2.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)
