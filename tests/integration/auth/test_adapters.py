"""The Redis throttle and the SMTP sender against real servers."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from kglab_auth.domain import OutgoingMail
from kglab_auth.messaging.smtp import SmtpMailer
from kglab_auth.store.throttle_redis import RedisLoginThrottle
from tests.conftest import unique_name
from tests.contract.auth.servers import smtp_server


@pytest.mark.backend("redis")
async def test_redis_throttle_counts_expires_and_clears(redis_url: str) -> None:
    prefix = f"{unique_name('kglab_auth_it')}:"
    throttle = RedisLoginThrottle(Redis.from_url(redis_url), prefix=prefix)
    try:
        assert await throttle.failures("acct:x") == (0, 0.0)
        assert (await throttle.record_failure("acct:x", 60))[0] == 1
        count, remaining = await throttle.record_failure("acct:x", 60)
        assert count == 2
        assert 0 < remaining <= 60
        # The window starts at the first failure; later failures do not extend it.
        assert (await throttle.failures("acct:x"))[1] <= 60
        await throttle.record_failure("acct:short", 1)
        deadline = time.monotonic() + 5
        while (await throttle.failures("acct:short"))[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert (await throttle.failures("acct:short"))[0] == 0
        await throttle.clear("acct:x")
        assert (await throttle.failures("acct:x"))[0] == 0
        await throttle.ping()
    finally:
        await throttle.clear("acct:x")
        await throttle.close()


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
