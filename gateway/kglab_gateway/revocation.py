"""What this gateway knows is revoked, kept current by the auth service's revocation feed.

Checked on every authenticated request, so it is a dictionary look-up, never a call: the feed
(Redis pub/sub, or in process under ``make dev``) pushes each revocation here as it happens.
If the feed is lost for longer than the grace period the gateway cannot promise that a signed-
out session is refused, so it refuses to vouch for anyone (503) until the feed is back, as it
does when rate limits cannot be counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kglab_shared.errors import ServiceUnavailableError
from kglab_shared.revocation import Revocation, RevocationKind

_MAX_SESSIONS = 200_000


class RevocationState:
    def __init__(self, *, grace_s: float = 1.0) -> None:
        self._grace_s = grace_s
        self._sessions: dict[str, float] = {}
        self._synced = False
        self._lost_at: float | None = None
        self._key_listeners: list[Callable[[str], None]] = []
        self._sync_listeners: list[Callable[[], None]] = []

    # ---- fed by the feed --------------------------------------------------------------------

    def apply(self, revocation: Revocation) -> None:
        if revocation.kind is RevocationKind.SESSION:
            if len(self._sessions) >= _MAX_SESSIONS:
                self._prune()
            self._sessions[revocation.subject] = revocation.expires_at
        elif revocation.kind is RevocationKind.API_KEY:
            for forget in self._key_listeners:
                forget(revocation.subject)

    def synced(self) -> None:
        self._synced = True
        self._lost_at = None
        # Key revocations announced while the feed was away were not heard: forget every
        # cached key look-up rather than trust one of them.
        for listener in self._sync_listeners:
            listener()

    def lost(self) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()

    def on_api_key_revoked(self, forget: Callable[[str], None]) -> None:
        self._key_listeners.append(forget)

    def on_resync(self, listener: Callable[[], None]) -> None:
        self._sync_listeners.append(listener)

    # ---- asked per request ------------------------------------------------------------------

    def ensure_current(self) -> None:
        """Raise 503 when revocations may have been missed for longer than the grace period."""
        if self._synced and (
            self._lost_at is None or time.monotonic() - self._lost_at <= self._grace_s
        ):
            return
        raise ServiceUnavailableError(
            "Sign-ins cannot be checked right now (the gateway has lost track of sign-outs); "
            "try again shortly.",
            headers={"Retry-After": "2"},
        )

    def session_revoked(self, session_id: str) -> bool:
        expires_at = self._sessions.get(session_id)
        return expires_at is not None and expires_at > time.time()

    def ready(self) -> bool:
        return self._synced and self._lost_at is None

    def _prune(self) -> None:
        now = time.time()
        self._sessions = {s: e for s, e in self._sessions.items() if e > now}
