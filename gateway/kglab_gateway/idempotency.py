"""``Idempotency-Key`` on every POST that creates something (Stripe's semantics).

A client that retries a request it never got an answer to (a timeout, a dropped connection)
sends the same key again, and gets the first request's answer instead of a second job:

- the same key with the same request replays the first answer for 24 hours, marked
  ``Idempotent-Replayed: true``, even while the first is still in flight: the second waits for
  the first to finish, so two identical requests at once make one job;
- the same key with a different request is refused with a 422;
- keys belong to the signed-in user: two users may use the same key;
- an answer of 5xx is not kept (the work may not have happened), so a retry runs again.

"The same request" is the method, the path and query, the content type and the body, with a
multipart body's boundary taken out (every HTTP client picks a new one for each request).

State lives where the gateway's other shared state lives: Redis in production (so every replica
and a restarted gateway see it), process memory in ``make dev``. A first request that dies with
its gateway holds its key for a lease (``IN_FLIGHT_LEASE_S``), after which a retry runs again.

No maintained library does this for us (adr/0026): the ASGI ones cache by key alone (one
user's key would replay to another), answer concurrent duplicates with 409 instead of the first
answer, and do not compare the request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kglab_shared.errors import ConflictError, DomainError, UnprocessableError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: POST routes that create something. Anonymous calls (sign-up, sign-in) have no user to scope a
#: key to and are not covered.
ROUTES = re.compile(r"^/api/v1/(files|urls|uploads|auth/api-keys|webhooks)$")
KEPT_S = 24 * 3600
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_PENDING = b"pending"
_SEALED = b"kept1:"
#: Answer headers worth replaying (the rest are per-connection or per-answer).
_REPLAYED_HEADERS = frozenset({"content-type", "location", "api-version", "deprecation", "sunset"})


class InvalidKeyError(DomainError):
    status, title, code = 400, "Bad request", "invalid_idempotency_key"


@dataclass(frozen=True)
class Kept:
    """A finished request's fingerprint and answer."""

    fingerprint: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def seal(self, secret: bytes) -> bytes:
        """The answer encrypted with a key only the client's ``Idempotency-Key`` yields: an
        answer can hold a secret shown once (a new API key), and the store never sees it in
        the clear."""
        plain = json.dumps(
            {
                "fingerprint": self.fingerprint,
                "status": self.status,
                "headers": self.headers,
                "body": base64.b64encode(self.body).decode(),
            }
        ).encode()
        nonce = os.urandom(12)
        return _SEALED + nonce + AESGCM(secret).encrypt(nonce, plain, None)

    @classmethod
    def open(cls, sealed: bytes, secret: bytes) -> Kept:
        if not sealed.startswith(_SEALED):
            raise ValueError("not a kept answer")
        body = sealed[len(_SEALED) :]
        data = json.loads(AESGCM(secret).decrypt(body[:12], body[12:], None))
        return cls(
            fingerprint=data["fingerprint"],
            status=int(data["status"]),
            headers=[(str(n), str(v)) for n, v in data["headers"]],
            body=base64.b64decode(data["body"]),
        )


class IdempotencyStore(Protocol):
    """Where keys live: claimed (in flight, with a lease) or kept (finished, for a day)."""

    async def claim(self, key: str, lease_s: float) -> bool: ...
    async def read(self, key: str) -> bytes | None: ...
    async def keep(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def release(self, key: str) -> None: ...


class MemoryIdempotencyStore:
    """One process's keys (``make dev``); lost when it stops."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._clock = clock

    def _live(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry[0]

    async def claim(self, key: str, lease_s: float) -> bool:
        if self._live(key) is not None:
            return False
        if len(self._entries) > 100_000:
            self._entries = {k: e for k, e in self._entries.items() if e[1] > self._clock()}
        self._entries[key] = (_PENDING, self._clock() + lease_s)
        return True

    async def read(self, key: str) -> bytes | None:
        return self._live(key)

    async def keep(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (value, self._clock() + ttl_s)

    async def release(self, key: str) -> None:
        if self._live(key) == _PENDING:
            del self._entries[key]


class RedisIdempotencyStore:
    """Keys in Redis: every gateway replica, and a restarted one, sees them."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def claim(self, key: str, lease_s: float) -> bool:
        return bool(
            await self._redis.set(self._prefix + key, _PENDING, nx=True, px=int(lease_s * 1000))
        )

    async def read(self, key: str) -> bytes | None:
        value: bytes | None = await self._redis.get(self._prefix + key)
        return value

    async def keep(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, value, px=int(ttl_s * 1000))

    async def release(self, key: str) -> None:
        # Only a key still in flight: never a kept answer.
        await self._redis.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
            "else return 0 end",
            1,
            self._prefix + key,
            _PENDING,
        )


def client_key(raw: str | None) -> str | None:
    """The header's key, or None without one; a malformed key is a 400."""
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise InvalidKeyError(
            f"{HEADER} must be 1 to 255 visible ASCII characters (a UUID is a good choice)."
        )
    return raw


@dataclass(frozen=True)
class ClientKey:
    """A user's key: where it is stored (a hash) and what seals its answer (derived apart, so
    the stored name does not reveal the sealing key)."""

    name: str
    secret: bytes


def scoped(user_id: str, key: str) -> ClientKey:
    name = f"{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    secret = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"kglab idempotency " + name.encode()
    ).derive(key.encode())
    return ClientKey(name, secret)


class Fingerprint:
    """A running SHA-256 of what makes a request "the same": method, path and query, media
    type, and the body with a multipart boundary removed (a boundary split across two chunks
    included)."""

    def __init__(self, method: str, target: str, content_type: str | None) -> None:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        self._hash = hashlib.sha256(f"{method}\n{target}\n{media}\n".encode())
        boundary = re.search(r'boundary="?([^";]+)"?', content_type or "")
        self._boundary = boundary.group(1).encode() if boundary else None
        self._tail = b""

    def update(self, chunk: bytes) -> None:
        if self._boundary is None:
            self._hash.update(chunk)
            return
        data = (self._tail + chunk).replace(self._boundary, b"")
        # Hold back what could be the start of a boundary that the next chunk completes.
        cut = max(0, len(data) - (len(self._boundary) - 1))
        self._hash.update(data[:cut])
        self._tail = data[cut:]

    def hexdigest(self) -> str:
        final = self._hash.copy()
        final.update(self._tail)
        return final.hexdigest()

    async def through(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass ``body`` on, hashing it on the way."""
        async for chunk in body:
            self.update(chunk)
            yield chunk

    async def consume(self, body: AsyncIterator[bytes]) -> str:
        async for chunk in body:
            self.update(chunk)
        return self.hexdigest()


async def wait_for_answer(
    store: IdempotencyStore, key: ClientKey, *, timeout_s: float, step_s: float = 0.05
) -> Kept | None:
    """The kept answer once the request in flight finishes; None if its claim went away
    without one (it failed, or its gateway died and the lease ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await store.read(key.name)
        if value is None:
            return None
        if value != _PENDING:
            return Kept.open(value, key.secret)
        await asyncio.sleep(step_s)
    raise ConflictError(
        f"A request with this {HEADER} is still being processed; retry in a moment.",
        headers={"Retry-After": "1"},
    )


def check_replay(kept: Kept, fingerprint: str) -> Kept:
    if kept.fingerprint != fingerprint:
        raise UnprocessableError(
            f"This {HEADER} was already used for a different request (another path, body or "
            "file). Use a new key for a new request."
        )
    return kept


def replayable_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name.decode("latin-1").lower() in _REPLAYED_HEADERS
    ]


def document(operation: dict[str, Any], problem: Callable[[str], dict[str, Any]]) -> None:
    """Describe the header on a creating operation of the OpenAPI document."""
    parameters = operation.setdefault("parameters", [])
    if any(p.get("name") == HEADER for p in parameters):
        return
    parameters.append(
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Makes a retry safe: the same key with the same request answers the first "
                "request's answer for 24 hours (marked `Idempotent-Replayed: true`), even while "
                "the first is in flight; the same key with a different request is refused with "
                "422. Keys are per user; 1-255 visible ASCII characters (a UUID is a good choice)."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "example": "5d0c7a4e-2a9b-4a0e-9d5f-0c3f1f4d2b77",
        }
    )
    responses = operation.setdefault("responses", {})
    responses.setdefault(
        "409", problem(f"A request with this {HEADER} is still being processed; retry shortly.")
    )
    responses.setdefault(
        "422",
        problem(f"This {HEADER} was already used for a different request."),
    )
