"""The SMTP sender against a real SMTP server (the Redis throttle is the shared limiter:
tests/contract/test_rate_limiter.py)."""

from __future__ import annotations

import pytest

from kglab_auth.domain import OutgoingMail
from kglab_auth.messaging.smtp import SmtpMailer
from tests.contract.auth.servers import smtp_server


async def test_smtp_mailer_delivers_to_a_real_smtp_server() -> None:
    with smtp_server() as (sink, url):
        mailer = SmtpMailer(url, sender="KG Lab <no-reply@kglab.local>")
        await mailer.send(OutgoingMail(to="zoe@example.com", subject="Hello", body="Token: abc\n"))
        messages = sink.messages()
    assert len(messages) == 1
    assert messages[0]["To"] == "zoe@example.com"
    assert messages[0]["From"] == "KG Lab <no-reply@kglab.local>"
    assert "Token: abc" in messages[0].get_payload()


def test_smtp_url_is_validated() -> None:
    with pytest.raises(ValueError, match="KGLAB_SMTP_URL"):
        SmtpMailer("http://127.0.0.1:25", sender="x@example.com")
