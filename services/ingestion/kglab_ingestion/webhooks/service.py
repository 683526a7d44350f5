"""The webhook service layer: a user's endpoints, their secrets and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kglab_ingestion.domain import MAX_PAGE_SIZE, InvalidQueryError, utc_now
from kglab_ingestion.fetching.addresses import UnsafeUrlError
from kglab_ingestion.webhooks.domain import (
    DeliveryNotFoundError,
    DeliveryStatus,
    InvalidWebhookError,
    PageCursor,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookNotFoundError,
    event_types,
)
from kglab_ingestion.webhooks.port import WebhookStore
from kglab_ingestion.webhooks.signing import SecretBox, new_secret
from kglab_shared.pages import Page

#: A rotated-out secret keeps signing, next to the new one, this long unless asked otherwise.
DEFAULT_ROTATION_OVERLAP_S = 86400
MAX_DESCRIPTION_CHARS = 500


@dataclass(frozen=True, slots=True)
class EndpointWithSecret:
    """A new endpoint, or one whose secret was just rotated: the only time the secret shows."""

    endpoint: WebhookEndpoint
    secret: str


class WebhookService:
    def __init__(
        self,
        *,
        store: WebhookStore,
        box: SecretBox,
        validate_url: Callable[[str], str],
        max_endpoints: int,
        max_rotation_overlap_s: int,
        on_replay: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._box = box
        self._validate_url = validate_url
        self._max_endpoints = max_endpoints
        self._max_overlap_s = max_rotation_overlap_s
        self._on_replay = on_replay
        self._clock = clock

    def _url(self, url: str) -> str:
        try:
            return self._validate_url(url)
        except UnsafeUrlError as exc:
            raise InvalidWebhookError(f"This URL cannot receive webhooks: {exc.detail}") from exc

    @staticmethod
    def _description(description: str | None) -> str | None:
        if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidWebhookError(
                f"The description is {len(description)} characters long; the limit is "
                f"{MAX_DESCRIPTION_CHARS}."
            )
        if description is not None and any(
            (ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F for c in description
        ):
            raise InvalidWebhookError(
                "The description contains control characters; use plain text (line breaks and "
                "tabs are fine)."
            )
        return description or None

    async def create(
        self, owner_id: str, *, url: str, events: list[str], description: str | None
    ) -> EndpointWithSecret:
        now = self._clock()
        endpoint = WebhookEndpoint(
            id=uuid.uuid4().hex,
            owner_id=owner_id,
            url=self._url(url),
            description=self._description(description),
            events=event_types(events),
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        secret = new_secret()
        sealed = self._box.seal(secret, endpoint.id)
        created = await self._store.create_endpoint(endpoint, sealed, limit=self._max_endpoints)
        return EndpointWithSecret(created, secret)

    async def get(self, owner_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self._store.get_endpoint(owner_id, endpoint_id)
        if endpoint is None:
            raise WebhookNotFoundError(endpoint_id)
        return endpoint

    async def list_endpoints(
        self, owner_id: str, *, limit: int, cursor: str | None
    ) -> Page[WebhookEndpoint]:
        _check_limit(limit)
        after = PageCursor.decode(cursor) if cursor else None
        return await self._store.list_endpoints(owner_id, limit=limit, after=after)

    async def update(
        self,
        owner_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        fields: frozenset[str] = frozenset(),
    ) -> WebhookEndpoint:
        """Change what ``fields`` names (a field sent as null clears the description)."""
        values: dict[str, Any] = {}
        if "url" in fields:
            if url is None:
                raise InvalidWebhookError("An endpoint needs a URL; send one, or leave url out.")
            values["url"] = self._url(url)
        if "events" in fields:
            values["events"] = event_types(events or [])
        if "description" in fields:
            values["description"] = self._description(description)
        if "enabled" in fields:
            if enabled is None:
                raise InvalidWebhookError("enabled is true or false.")
            values["enabled"] = enabled
        if not values:
            return await self.get(owner_id, endpoint_id)
        updated = await self._store.update_endpoint(
            owner_id, endpoint_id, values, now=self._clock()
        )
        if updated is None:
            raise WebhookNotFoundError(endpoint_id)
        return updated

    async def delete(self, owner_id: str, endpoint_id: str) -> None:
        if not await self._store.delete_endpoint(owner_id, endpoint_id):
            raise WebhookNotFoundError(endpoint_id)

    async def rotate_secret(
        self, owner_id: str, endpoint_id: str, *, overlap_s: int | None
    ) -> EndpointWithSecret:
        overlap = DEFAULT_ROTATION_OVERLAP_S if overlap_s is None else overlap_s
        if not 0 <= overlap <= self._max_overlap_s:
            raise InvalidWebhookError(
                f"The overlap is {overlap} s; it must be between 0 and {self._max_overlap_s} s "
                f"({self._max_overlap_s // 3600} hours)."
            )
        await self.get(owner_id, endpoint_id)
        secret = new_secret()
        now = self._clock()
        rotated = await self._store.rotate_secret(
            owner_id,
            endpoint_id,
            self._box.seal(secret, endpoint_id),
            previous_until=now + timedelta(seconds=overlap),
            now=now,
        )
        if rotated is None:
            raise WebhookNotFoundError(endpoint_id)
        return EndpointWithSecret(rotated, secret)

    async def deliveries(
        self,
        owner_id: str,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> Page[WebhookDelivery]:
        _check_limit(limit)
        after = PageCursor.decode(cursor) if cursor else None
        await self.get(owner_id, endpoint_id)
        return await self._store.list_deliveries(
            owner_id, endpoint_id, status=status, limit=limit, after=after
        )

    async def delivery(self, owner_id: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        await self.get(owner_id, endpoint_id)
        found = await self._store.get_delivery(owner_id, endpoint_id, delivery_id)
        if found is None:
            raise DeliveryNotFoundError(delivery_id)
        return found

    async def replay(self, owner_id: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        """The same event and body again, as a new delivery (its own id and attempts), now."""
        original = await self.delivery(owner_id, endpoint_id, delivery_id)
        replayed = await self._store.replay(original, uuid.uuid4().hex, now=self._clock())
        self._on_replay()
        return replayed


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}.")
