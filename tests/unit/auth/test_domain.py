"""Rules without I/O: emails, the password policy, API key format, scopes."""

from __future__ import annotations

import pytest

from kglab_auth.domain import (
    check_password_policy,
    format_api_key,
    normalise_email,
    parse_api_key,
    token_digest,
    validate_scopes,
)
from kglab_shared.errors import UnprocessableError
from kglab_shared.scopes import ApiScope


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ada@Example.COM ", "ada@example.com"),
        ("bob@EXAMPLE.org", "bob@example.org"),
        # Look-alikes (issue 13): fullwidth letters, a ligature, a fullwidth domain.
        ("\uff21\uff44\uff41@example.com", "ada@example.com"),
        ("\ufb01nn@example.com", "finn@example.com"),
        ("ada@\uff25\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "ada@example.com"),
    ],
)
def test_emails_are_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "no-at-sign", "two@@example.com", "a@b"])
def test_bad_emails_are_refused_readably(raw: str) -> None:
    with pytest.raises(UnprocessableError, match="is not a usable email address"):
        normalise_email(raw)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "too short"),
        ("x" * 300, "too long"),
        ("abababababab", "too few characters"),
        ("Password123", "most common"),
        ("zed.the.user!!", "must not contain your email"),
    ],
)
def test_weak_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(UnprocessableError, match=message):
        check_password_policy(password, email="zed.the.user@example.com", min_length=10)


def test_a_reasonable_password_passes() -> None:
    check_password_policy("correct horse 42", email="zed@example.com", min_length=10)


def test_api_keys_round_trip_and_garbage_is_refused() -> None:
    key = format_api_key("abc123", "s3cr3t_with-underscores")
    assert parse_api_key(key) == ("abc123", "s3cr3t_with-underscores")
    for garbage in ["", "kglab_", "kglab__x", "other_abc_x", "kglab_ab-c_x", "abc"]:
        assert parse_api_key(garbage) is None


def test_scopes_are_sorted_deduplicated_and_checked() -> None:
    assert validate_scopes(["search", "documents:read", "search"]) == (
        "documents:read",
        "search",
    )
    with pytest.raises(UnprocessableError, match="at least one scope"):
        validate_scopes([])


@pytest.mark.parametrize("unknown", ["everything", "*", "Has Space", "documents:admin", "api-keys"])
def test_an_unknown_scope_is_refused_by_name_with_the_valid_ones(unknown: str) -> None:
    with pytest.raises(UnprocessableError) as refused:
        validate_scopes(["documents:read", unknown])
    detail = refused.value.detail
    assert f"'{unknown}' is not a scope" in detail
    for scope in ApiScope:
        assert scope.value in detail


def test_token_digest_is_sha256_hex() -> None:
    assert len(token_digest("x")) == 64
    assert token_digest("x") != token_digest("y")
