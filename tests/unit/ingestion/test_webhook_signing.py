"""Webhook signing, sealing and the retry schedule, without I/O."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import timedelta

import pytest
from pydantic import ValidationError

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.webhooks.domain import (
    InvalidWebhookError,
    event_id,
    event_types,
    next_attempt_delay,
)
from kglab_ingestion.webhooks.signing import SecretBox, new_secret, signature_header


def test_the_default_schedule_retries_for_more_than_a_day() -> None:
    settings = IngestionSettings()
    total = sum(settings.webhook_retry_delays_s)
    assert total >= 24 * 3600
    delays = list(settings.webhook_retry_delays_s)
    assert delays == sorted(delays)  # backing off, never hurrying


def test_each_wait_is_the_schedules_within_its_jitter_then_none() -> None:
    rng = random.Random(7)
    schedule = (10.0, 100.0)
    for _ in range(200):
        first = next_attempt_delay(1, schedule, 0.1, rng)
        second = next_attempt_delay(2, schedule, 0.1, rng)
        assert first is not None
        assert second is not None
        assert timedelta(seconds=9) <= first <= timedelta(seconds=11)
        assert timedelta(seconds=90) <= second <= timedelta(seconds=110)
    assert next_attempt_delay(3, schedule, 0.1, rng) is None
    spread = {next_attempt_delay(1, schedule, 0.1, rng) for _ in range(20)}
    assert len(spread) > 1  # jitter spreads a burst


def test_retry_delays_are_read_from_a_comma_separated_variable() -> None:
    settings = IngestionSettings(webhook_retry_delays_s="0.5, 2,30")  # type: ignore[arg-type]
    assert settings.webhook_retry_delays_s == (0.5, 2.0, 30.0)
    with pytest.raises(ValidationError, match="comma-separated list of seconds"):
        IngestionSettings(webhook_retry_delays_s="1,soon")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="none negative"):
        IngestionSettings(webhook_retry_delays_s="1,-5")  # type: ignore[arg-type]


def test_the_signature_header_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"id": "evt_1"}'
    header = signature_header(("whsec_new", "whsec_old"), 1700000000, body)
    expected = [
        hmac.new(key, b"1700000000." + body, hashlib.sha256).hexdigest()
        for key in (b"whsec_new", b"whsec_old")
    ]
    assert header == f"t=1700000000,v1={expected[0]},v1={expected[1]}"


def test_sealed_secrets_open_only_for_their_endpoint_and_key() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    box = SecretBox("a-sealing-key-of-some-length")
    sealed = box.seal(secret, "endpoint-1")
    assert secret not in sealed
    assert secret.removeprefix("whsec_") not in sealed
    assert box.open(sealed, "endpoint-1") == secret
    assert box.seal(secret, "endpoint-1") != sealed  # a fresh nonce each time
    with pytest.raises(ValueError, match="does not open"):
        box.open(sealed, "endpoint-2")
    with pytest.raises(ValueError, match="does not open"):
        SecretBox("another-sealing-key-entirely").open(sealed, "endpoint-1")


def test_event_types_are_checked_and_ids_are_stable() -> None:
    assert event_types(["document.deleted", "job.completed"]) == (
        "job.completed",
        "document.deleted",
    )
    with pytest.raises(InvalidWebhookError, match=r"Unknown event type 'job\.done'"):
        event_types(["job.done"])
    with pytest.raises(InvalidWebhookError, match="at least one event type"):
        event_types([])
    assert event_id("job.completed", "j1") == event_id("job.completed", "j1")
    assert event_id("job.completed", "j1") != event_id("job.failed", "j1")
