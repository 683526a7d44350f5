"""Sends webhooks: turns the jobs' changes into deliveries, then sends those due, signed.

Every replica may run one: the database hands each change to one dispatcher and each due
delivery to one sender (adr/0028). An attempt is one POST of the delivery's stored body with
a short timeout, no redirects followed, through the fetcher's guarded transport (every address
the endpoint's host resolves to is checked at connect time); a 2xx answer is a success,
anything else waits for the next attempt the schedule (settings, data) allows, and after the
last the delivery is failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.domain import utc_now
from kglab_ingestion.fetching.addresses import UnsafeUrlError, validate_public_url
from kglab_ingestion.fetching.errors import FetchError
from kglab_ingestion.fetching.transport import GuardedTransport, Resolver, system_resolver
from kglab_ingestion.webhooks.domain import AttemptOutcome, ClaimedDelivery, next_attempt_delay
from kglab_ingestion.webhooks.port import RenderEvent, WebhookStore
from kglab_ingestion.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    SecretBox,
    signature_header,
)
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
USER_AGENT = "KnowledgeGraphLab-Webhooks/1.0"
#: Changes one dispatch turns into deliveries (the next poll takes the rest).
DISPATCH_BATCH = 200
#: A sender holds a delivery this long past its timeout before another may take it over.
_LEASE_MARGIN_S = 30.0
#: How old a change must be before it is dispatched (as the event feed waits; see
#: IngestionService.changes): a transaction committing late must not land behind the cursor.
SETTLE_S = 1.0
#: How long before the cursor a change is still looked for: a transaction that stamped its
#: change, then took this long to commit, is the one case the cursor could pass by.
RECHECK = timedelta(seconds=60)


class WebhookSender:
    def __init__(
        self,
        *,
        settings: IngestionSettings,
        store: WebhookStore,
        box: SecretBox,
        render: RenderEvent,
        resolver: Resolver | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._box = box
        self._render = render
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        fetcher = settings.fetcher_settings()
        self._allow_private = fetcher.allow_private_addresses
        self._allowlist = fetcher.allowed_private_networks
        timeout = settings.webhook_timeout_s
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(
                resolver or system_resolver,
                allow_private=self._allow_private,
                allowlist=self._allowlist,
                resolve_timeout_s=timeout,
                max_connections=max(5, settings.webhook_concurrency),
            ),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kglab-webhook-sender")

    def notify(self) -> None:
        """Look for work now (a replay was just queued)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.dispatch()
                while await self.send_due():
                    pass
            except Exception as exc:  # a database outage: try again at the next poll
                _log.warning("webhook_sender_failed", error=str(exc))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.webhook_poll_interval_s):
                    await self._wake.wait()

    async def dispatch(self) -> int:
        """Turn settled changes into deliveries; how many were made."""
        made = 0
        while True:
            settled = self._clock() - timedelta(seconds=SETTLE_S)
            count = await self._store.dispatch_changes(
                settled_before=settled,
                limit=DISPATCH_BATCH,
                render=self._render,
                recheck=RECHECK,
            )
            if not count:
                return made
            made += count

    async def send_due(self) -> int:
        """Send the deliveries due now (up to the concurrency); how many were attempted."""
        now = self._clock()
        lease = timedelta(seconds=self._settings.webhook_timeout_s + _LEASE_MARGIN_S)
        claimed = await self._store.claim_due(
            now=now, lease_until=now + lease, limit=self._settings.webhook_concurrency
        )
        if claimed:
            await asyncio.gather(*(self._attempt(item) for item in claimed))
        return len(claimed)

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        delivery = claimed.delivery
        outcome = await self.send(claimed)
        at = self._clock()
        next_at: datetime | None = None
        if not outcome.succeeded and not outcome.final:
            delay = next_attempt_delay(
                delivery.attempt_count + 1,
                self._settings.webhook_retry_delays_s,
                self._settings.webhook_retry_jitter,
                self._rng,
            )
            next_at = None if delay is None else at + delay
        kept = await self._store.record_attempt(
            delivery.id, claimed.claim_token, outcome, at=at, next_attempt_at=next_at
        )
        _log.info(
            "webhook_attempt",
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_type=delivery.event_type,
            attempt=delivery.attempt_count + 1,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            retry_at=None if next_at is None else next_at.isoformat(),
            claim_kept=kept,
        )

    async def send(self, claimed: ClaimedDelivery) -> AttemptOutcome:
        """One signed POST of the delivery's body; what happened, as the attempt records it."""
        delivery = claimed.delivery
        started = time.monotonic()

        def outcome(
            status_code: int | None, error: str | None, *, final: bool = False
        ) -> AttemptOutcome:
            elapsed = int((time.monotonic() - started) * 1000)
            return AttemptOutcome(
                status_code=status_code, error=error, duration_ms=elapsed, final=final
            )

        body = delivery.body.encode()
        try:
            keys = tuple(self._box.open(s, delivery.endpoint_id) for s in claimed.sealed_secrets)
        except ValueError as exc:
            return outcome(None, str(exc))
        headers = {
            "Content-Type": "application/json",
            WEBHOOK_ID_HEADER: delivery.id,
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            SIGNATURE_HEADER: signature_header(keys, int(time.time()), body),
        }
        timeout = self._settings.webhook_timeout_s
        try:
            # The rules may have changed since the endpoint was registered (an allow-list
            # narrowed); the transport checks the addresses the name resolves to now.
            validate_public_url(
                claimed.url, allow_private=self._allow_private, allowlist=self._allowlist
            )
            async with asyncio.timeout(timeout):
                request = self._client.build_request(
                    "POST", claimed.url, content=body, headers=headers
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()  # the answer's body is not read: a receiver could drip
        except UnsafeUrlError as exc:
            # The address rules refuse it: retrying for a day cannot help. Failed now; replay
            # it once the endpoint's URL (or the allow-list) is changed.
            return outcome(None, exc.detail, final=True)
        except FetchError as exc:
            return outcome(None, exc.detail)
        except (TimeoutError, httpx.TimeoutException):
            return outcome(None, f"The endpoint did not answer within {timeout:g} s.")
        except httpx.ConnectError:
            return outcome(
                None, "The endpoint could not be reached (connection refused or failed)."
            )
        except httpx.HTTPError as exc:
            return outcome(None, f"The request failed: {type(exc).__name__}.")
        code = response.status_code
        if 200 <= code < 300:
            return outcome(code, None)
        if 300 <= code < 400:
            return outcome(code, f"The endpoint answered HTTP {code}; redirects are not followed.")
        return outcome(code, f"The endpoint answered HTTP {code}.")
