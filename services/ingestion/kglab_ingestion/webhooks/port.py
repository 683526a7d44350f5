"""The webhook store's port, in domain terms (the SQL adapter serves PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from kglab_ingestion.domain import IngestionJob
from kglab_ingestion.webhooks.domain import (
    AttemptOutcome,
    ClaimedDelivery,
    DeliveryStatus,
    PageCursor,
    WebhookDelivery,
    WebhookEndpoint,
)
from kglab_shared.pages import Page

#: (job, event type, event id) -> the exact body every attempt of that delivery sends.
RenderEvent = Callable[[IngestionJob, str, str], str]


class WebhookStore(Protocol):
    async def create_endpoint(
        self, endpoint: WebhookEndpoint, sealed_secret: str, *, limit: int
    ) -> WebhookEndpoint:
        """Insert, unless the owner already has ``limit`` endpoints (TooManyEndpointsError)."""
        ...

    async def get_endpoint(self, owner_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def list_endpoints(
        self, owner_id: str, *, limit: int, after: PageCursor | None
    ) -> Page[WebhookEndpoint]: ...

    async def update_endpoint(
        self, owner_id: str, endpoint_id: str, values: dict[str, Any], *, now: datetime
    ) -> WebhookEndpoint | None: ...

    async def delete_endpoint(self, owner_id: str, endpoint_id: str) -> bool:
        """Remove the endpoint with its deliveries and their attempts."""
        ...

    async def rotate_secret(
        self,
        owner_id: str,
        endpoint_id: str,
        sealed_secret: str,
        *,
        previous_until: datetime,
        now: datetime,
    ) -> WebhookEndpoint | None:
        """The new secret signs from now on; the current one also signs until
        ``previous_until`` (replacing a still older one)."""
        ...

    async def list_deliveries(
        self,
        owner_id: str,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> Page[WebhookDelivery]: ...

    async def get_delivery(
        self, owner_id: str, endpoint_id: str, delivery_id: str
    ) -> WebhookDelivery | None: ...

    async def replay(
        self, original: WebhookDelivery, new_id: str, *, now: datetime
    ) -> WebhookDelivery:
        """A new delivery of the same event and body, due now."""
        ...

    async def dispatch_changes(
        self,
        *,
        settled_before: datetime,
        limit: int,
        render: RenderEvent,
        recheck: timedelta = ...,
    ) -> int | None:
        """Turn the jobs' changes after the stored cursor into deliveries for the owners'
        subscribed endpoints, and move the cursor, in one transaction; changes stamped up to
        ``recheck`` before the cursor are looked at again (a transaction that committed late).
        Returns how many deliveries were made, or None when another replica holds the cursor."""
        ...

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        """Pending deliveries of enabled endpoints that are due, each taken by one sender."""
        ...

    async def record_attempt(
        self,
        delivery_id: str,
        claim_token: str,
        outcome: AttemptOutcome,
        *,
        at: datetime,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Append the attempt; succeeded, pending again at ``next_attempt_at``, or failed
        (no next attempt). False when the claim was lost (another sender took it over)."""
        ...
