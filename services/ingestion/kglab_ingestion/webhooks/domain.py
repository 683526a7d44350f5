"""Webhook endpoints, deliveries and attempts, the event types, and the retry schedule."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kglab_ingestion.domain import InvalidQueryError, as_utc
from kglab_shared.errors import NotFoundError, UnprocessableError

#: The event types an endpoint may subscribe to: what the event feed distinguishes.
EVENT_TYPES: tuple[str, ...] = (
    "job.pending",
    "job.processing",
    "job.completed",
    "job.failed",
    "document.deleted",
)
SECRET_PREFIX = "whsec_"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    owner_id: str
    url: str
    description: str | None
    events: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    #: While a rotated-out secret still signs (next to the new one), until this moment.
    previous_secret_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    number: int
    at: datetime
    #: The receiver's HTTP status; None when no answer came (refused, timed out, unsafe).
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: str
    endpoint_id: str
    owner_id: str
    event_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    replay_of: str | None = None
    attempts: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery a sender holds (until its lease ends) with what it needs to send it."""

    delivery: WebhookDelivery
    url: str
    #: The sealed current secret first, then a rotated-out one still in its overlap.
    sealed_secrets: tuple[str, ...]
    claim_token: str


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    #: No retry can succeed (the address rules refuse the URL): the delivery fails at once.
    final: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookNotFoundError(NotFoundError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"You have no webhook endpoint with the id {endpoint_id}.")


class DeliveryNotFoundError(NotFoundError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"This webhook endpoint has no delivery with the id {delivery_id}.")


class InvalidWebhookError(UnprocessableError):
    code = "invalid_webhook"


class TooManyEndpointsError(UnprocessableError):
    code = "too_many_webhook_endpoints"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} webhook endpoints, the most one account may have; "
            "delete one you no longer use (or subscribe an existing one to more events)."
        )


def event_types(events: Sequence[str]) -> tuple[str, ...]:
    """The subscribed event types in a stable order, or a readable 422."""
    if not events:
        raise InvalidWebhookError(
            f"Subscribe the endpoint to at least one event type: {', '.join(EVENT_TYPES)}."
        )
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidWebhookError(
            f"Unknown event type {', '.join(repr(e) for e in unknown)}; the event types are "
            f"{', '.join(EVENT_TYPES)}."
        )
    return tuple(e for e in EVENT_TYPES if e in events)


def event_id(event_type: str, job_id: str) -> str:
    """The same event has the same id for every endpoint and every replay."""
    digest = hashlib.sha256(f"{event_type}:{job_id}".encode()).hexdigest()[:24]
    return f"evt_{digest}"


def next_attempt_delay(
    attempts_made: int, delays_s: Sequence[float], jitter: float, rng: random.Random
) -> timedelta | None:
    """How long after the ``attempts_made``-th failed attempt the next one goes; None once the
    schedule is spent (the delivery then fails). Jitter spreads a burst of retries: each delay
    is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    if attempts_made > len(delays_s):
        return None
    base = delays_s[attempts_made - 1]
    return timedelta(seconds=base * rng.uniform(1 - jitter, 1 + jitter))


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page of endpoints or deliveries ended (newest first): the creation time and id
    of its last item."""

    created_at: datetime
    item_id: str

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "id": self.item_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(as_utc(datetime.fromisoformat(data["t"])), str(data["id"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidQueryError(
                "The cursor is not one this service issued; start again without it."
            ) from exc
