"""The parts of Idempotency-Key handling that need no server: what counts as the same request,
keys sealed per user, leases that end, and the answers a waiting retry gets."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidTag

from kglab_gateway.idempotency import (
    Fingerprint,
    InvalidKeyError,
    Kept,
    MemoryIdempotencyStore,
    client_key,
    scoped,
    wait_for_answer,
)
from kglab_shared.errors import ConflictError


def _multipart(boundary: str, content: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.md"\r\n'
            f"Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _digest(boundary: str, body: bytes, chunk: int) -> str:
    fingerprint = Fingerprint("POST", "/api/v1/files", f"multipart/form-data; boundary={boundary}")
    for start in range(0, len(body), chunk):
        fingerprint.update(body[start : start + chunk])
    return fingerprint.hexdigest()


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_two_uploads_of_one_file_are_the_same_request_whatever_their_boundaries(
    chunk: int,
) -> None:
    one = _digest("a1b2c3d4e5", _multipart("a1b2c3d4e5", b"# Notes\n" * 50), chunk)
    other = _digest("zzzzyyyyxx", _multipart("zzzzyyyyxx", b"# Notes\n" * 50), 10_000)
    assert one == other


def test_another_file_or_path_is_another_request() -> None:
    base = _digest("b0undary", _multipart("b0undary", b"one"), 5)
    assert _digest("b0undary", _multipart("b0undary", b"two"), 5) != base
    json_body = Fingerprint("POST", "/api/v1/urls", "application/json")
    json_body.update(b'{"url": "https://example.org"}')
    other_path = Fingerprint("POST", "/api/v1/files", "application/json")
    other_path.update(b'{"url": "https://example.org"}')
    assert json_body.hexdigest() != other_path.hexdigest()


def test_a_key_must_be_visible_ascii_of_sensible_length() -> None:
    assert client_key(None) is None
    assert client_key("3f2c-ok_key.1") == "3f2c-ok_key.1"
    for bad in ("", "a b", "x" * 256, "tab\tkey"):
        with pytest.raises(InvalidKeyError):
            client_key(bad)


def test_answers_are_sealed_per_user_and_key() -> None:
    alice, bob = scoped("alice", "k1"), scoped("bob", "k1")
    assert alice.name != bob.name
    assert hashlib.sha256(b"k1").hexdigest() in alice.name  # the raw key is never stored
    kept = Kept("f" * 64, 201, [("content-type", "application/json")], b'{"key": "secret"}')
    sealed = kept.seal(alice.secret)
    assert b"secret" not in sealed
    assert Kept.open(sealed, alice.secret) == kept
    with pytest.raises(InvalidTag):
        Kept.open(sealed, bob.secret)


async def test_a_lease_ends_so_a_dead_first_request_does_not_hold_its_key() -> None:
    now = [0.0]
    store = MemoryIdempotencyStore(clock=lambda: now[0])
    assert await store.claim("k", lease_s=30)
    assert not await store.claim("k", lease_s=30)
    now[0] = 31
    assert await store.claim("k", lease_s=30)
    await store.keep("k", b"kept1:answer", ttl_s=100)
    await store.release("k")  # a kept answer is never released
    assert await store.read("k") == b"kept1:answer"


async def test_a_retry_waits_for_the_first_answer_or_gives_up_with_409() -> None:
    store = MemoryIdempotencyStore()
    key = scoped("alice", "k2")
    await store.claim(key.name, lease_s=30)
    with pytest.raises(ConflictError) as refused:
        await wait_for_answer(store, key, timeout_s=0.1, step_s=0.01)
    assert refused.value.headers["Retry-After"] == "1"

    answer = Kept("a" * 64, 202, [], b"{}")
    await store.keep(key.name, answer.seal(key.secret), ttl_s=60)
    assert await wait_for_answer(store, key, timeout_s=1) == answer

    await store.release("nothing-here")
    assert await wait_for_answer(store, scoped("alice", "gone"), timeout_s=1) is None
