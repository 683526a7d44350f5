"""Signing secrets: made, sealed at rest (AES-GCM), and used to sign each attempt.

A receiver verifies ``Kglab-Signature: t=<unix>,v1=<hex>[,v1=<hex>]``: HMAC-SHA256 with the
secret (the whole ``whsec_...`` string as the key) over ``"{t}.{body}"``. During a rotation's
overlap two ``v1`` values come, one per secret; either verifying is enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kglab_ingestion.webhooks.domain import SECRET_PREFIX

SIGNATURE_HEADER = "Kglab-Signature"
WEBHOOK_ID_HEADER = "Kglab-Webhook-Id"
EVENT_ID_HEADER = "Kglab-Event-Id"
EVENT_TYPE_HEADER = "Kglab-Event-Type"
_SEALED_VERSION = "v1"
_NONCE_BYTES = 12


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: tuple[str, ...], timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex>`` with one ``v1`` per secret (the current one first)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)])


class SecretBox:
    """Seals signing secrets with AES-256-GCM under a key derived (HKDF-SHA256) from the
    ``KGLAB_INGESTION_WEBHOOK_SECRET_KEY`` setting; the endpoint's id is the associated data,
    so a sealed secret copied to another endpoint's row does not open."""

    def __init__(self, master_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"kglab webhook secrets v1"
        ).derive(master_key.encode())
        self._aead = AESGCM(key)

    def seal(self, secret: str, endpoint_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())
        return f"{_SEALED_VERSION}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, endpoint_id: str) -> str:
        version, _, payload = sealed.partition(":")
        if version != _SEALED_VERSION:
            raise ValueError(f"Unknown sealed secret format {version!r}.")
        raw = base64.b64decode(payload)
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], endpoint_id.encode())
        except InvalidTag:
            raise ValueError(
                "A webhook secret does not open with KGLAB_INGESTION_WEBHOOK_SECRET_KEY "
                "(was the key changed?)."
            ) from None
        return plain.decode()
