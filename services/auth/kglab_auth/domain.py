"""Users, sessions, keys and the rules about them; no I/O here."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from kglab_shared.errors import UnprocessableError
from kglab_shared.scopes import scope_list, unknown_scopes

API_KEY_PREFIX = "kglab"
_COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "password1234",
        "qwertyuiop",
        "1234567890",
        "letmein123",
        "iloveyou12",
        "administrator",
        "passw0rd123",
        "welcome123",
        "0987654321",
    }
)


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(slots=True)
class User:
    id: str
    email: str
    password_hash: str | None
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: str
    family_id: str
    user_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PasswordReset:
    id: str
    user_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    algorithm: str
    private_jwk: str = field(repr=False)
    public_jwk: str
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OAuthState:
    state: str
    provider: str
    nonce: str
    code_verifier: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    to: str
    subject: str
    body: str


def new_id() -> str:
    return str(uuid.uuid4())


def opaque_token() -> str:
    """A high-entropy token for refresh, reset and API key secrets (256 bits)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What we store instead of a high-entropy token: a lookup-able sha256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(raw: str) -> str:
    """The one form an address is stored and looked up in, or a readable 422.

    NFKC first, so compatibility look-alikes (fullwidth letters, ligatures, superscripts)
    become the letters they stand for; then the domain is IDNA-normalised and case-folded,
    and the local part lower-cased: fullwidth ``ALICE`` at ``Example.COM`` and ``alice@example.com``
    are one account. Lower-casing the local part is our rule, not the mail standard's (which
    lets a server tell ``Alice`` from ``alice``); no mainstream provider does, and two
    accounts differing only in case are a phishing aid, not a feature (README, "Hardened edges").
    """
    candidate = unicodedata.normalize("NFKC", raw).strip()
    try:
        valid = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise UnprocessableError(
            f"'{candidate[:80]}' is not a usable email address: {exc}"
        ) from None
    local, _, domain = valid.normalized.rpartition("@")
    return f"{unicodedata.normalize('NFKC', local).lower()}@{domain.casefold()}"


def check_password_policy(password: str, *, email: str | None, min_length: int) -> None:
    """Raise a readable 422 when ``password`` is too weak to accept."""
    if len(password) < min_length:
        raise UnprocessableError(
            f"The password is too short: use at least {min_length} characters "
            f"(this one has {len(password)})."
        )
    if len(password) > 256:
        raise UnprocessableError("The password is too long: use at most 256 characters.")
    if len(set(password)) < 4:
        raise UnprocessableError(
            "The password repeats too few characters: use at least 4 different ones."
        )
    if password.lower() in _COMMON_PASSWORDS:
        raise UnprocessableError("That password is among the most common ones: choose another.")
    local_part = email.split("@", 1)[0].lower() if email else ""
    if len(local_part) >= 4 and local_part in password.lower():
        raise UnprocessableError("The password must not contain your email address.")


def validate_scopes(scopes: list[str]) -> tuple[str, ...]:
    """The scopes of a new key, or a readable 422 naming the unknown ones and the valid set."""
    if not scopes:
        raise UnprocessableError(
            f"Give the key at least one scope, for example 'documents:read' (valid scopes: "
            f"{scope_list()})."
        )
    unknown = unknown_scopes(scopes)
    if unknown:
        named = ", ".join(f"'{scope[:64]}'" for scope in unknown[:5])
        noun = "is not a scope" if len(unknown) == 1 else "are not scopes"
        raise UnprocessableError(
            f"{named} {noun} an API key can have; the valid scopes are {scope_list()}."
        )
    return tuple(sorted(set(scopes)))


def format_api_key(key_id: str, secret: str) -> str:
    return f"{API_KEY_PREFIX}_{key_id}_{secret}"


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``kglab_<id>_<secret>`` → (id, secret); None for anything else."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not key_id or not secret or not key_id.isalnum():
        return None
    return key_id, secret
