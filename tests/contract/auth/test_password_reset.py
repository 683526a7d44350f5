"""Password reset end to end: the mail is read from the outbox or the SMTP server."""

from __future__ import annotations

import re
from email.message import Message

from tests.contract.auth.harness import AuthHarness, assert_problem

NEW_PASSWORD = "a brand new secret 9"


def mail_text(message: Message) -> str:
    """The plain-text body; SMTP delivers CRLF line ends, the file outbox LF."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def reset_token(body: str) -> str:
    match = re.search(r"^Reset token: (\S+)$", body, re.MULTILINE)
    assert match, body
    return match.group(1)


async def test_reset_end_to_end_is_single_use_and_ends_sessions(auth: AuthHarness) -> None:
    session = await auth.signed_up("olivia@example.com")
    requested = await auth.client.post(
        "/api/v1/auth/password-reset/request", json={"email": " Olivia@Example.com"}
    )
    assert requested.status_code == 202
    mail = await auth.wait_for_mail("olivia@example.com")
    assert "Reset your Knowledge Graph Lab password" in mail["Subject"]
    body = mail_text(mail)
    assert "30 minutes" in body
    token = reset_token(body)
    assert f"http://gateway.test/reset-password?token={token}" in body

    confirmed = await auth.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204
    assert (await auth.login("olivia@example.com", NEW_PASSWORD)).status_code == 200
    assert (await auth.login("olivia@example.com")).status_code == 401
    revoked = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert revoked.status_code == 401

    again = await auth.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "yet another one 10"},
    )
    assert_problem(again, 400, "invalid, already used or expired")


async def test_reset_request_answers_202_for_an_unknown_address(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/password-reset/request", json={"email": "ghost@example.com"}
    )
    assert response.status_code == 202
    assert auth.read_mail() == []


async def test_reset_confirm_enforces_the_password_policy(auth: AuthHarness) -> None:
    await auth.signed_up("paul@example.com")
    await auth.client.post(
        "/api/v1/auth/password-reset/request", json={"email": "paul@example.com"}
    )
    mail = await auth.wait_for_mail("paul@example.com")
    token = reset_token(mail_text(mail))
    weak = await auth.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert_problem(weak, 422, "too short")
    # A refused password does not spend the token.
    ok = await auth.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 204


async def test_a_forged_reset_token_is_refused(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": "made-up-token", "new_password": NEW_PASSWORD},
    )
    assert_problem(response, 400, "ask for a new one")
