"""Forward requests to the services over pooled HTTP, with timeouts, retries of idempotent
requests, and a circuit breaker per service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from kglab_shared.errors import DomainError, ServiceUnavailableError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures after which an idempotent request may safely be sent again.
_RETRYABLE_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
)

# Hop-by-hop headers (RFC 9110 7.6.1) and ones the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class GatewayTimeoutError(DomainError):
    status, title, code = 504, "Gateway timeout", "gateway_timeout"


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after ``threshold`` consecutive transport failures; one trial after ``reset_s``."""

    name: str
    threshold: int
    reset_s: float
    failures: int = 0
    opened_at: float | None = None

    def before_call(self) -> None:
        if self.opened_at is None:
            return
        waited = time.monotonic() - self.opened_at
        if waited < self.reset_s:
            retry_in = max(1, round(self.reset_s - waited))
            raise ServiceUnavailableError(
                f"The {self.name} service is not answering; try again in {retry_in} s.",
                headers={"Retry-After": str(retry_in)},
            )
        # Half-open: let this call through as the trial.
        self.opened_at = time.monotonic()

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


class UpstreamPool:
    """One pooled client and one breaker per service."""

    def __init__(
        self,
        base_urls: dict[str, str],
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_connections: int,
        retries: int,
        breaker_threshold: int,
        breaker_reset_s: float,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        transports = transports or {}
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.clients = {
            name: httpx.AsyncClient(
                base_url=url,
                timeout=timeout,
                limits=limits,
                transport=transports.get(name),
            )
            for name, url in base_urls.items()
        }
        self.breakers = {
            name: CircuitBreaker(name, breaker_threshold, breaker_reset_s) for name in base_urls
        }
        self._retries = retries

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str | int | float | bool | None]],
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> httpx.Response:
        """Send and return a streaming response; the caller must close it."""
        client = self.clients[service]
        breaker = self.breakers[service]
        breaker.before_call()
        replayable = method in IDEMPOTENT_METHODS and not hasattr(body, "__aiter__")
        attempts = self._retries + 1 if replayable else 1
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(_RETRYABLE_ERRORS),
                reraise=True,
            ):
                with attempt:
                    request = client.build_request(
                        method, path, params=params, headers=headers, content=body
                    )
                    response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            breaker.record_failure()
            if isinstance(exc, httpx.TimeoutException) and not isinstance(
                exc, httpx.ConnectTimeout
            ):
                raise GatewayTimeoutError(
                    f"The {service} service took too long to answer; try again shortly."
                ) from exc
            raise ServiceUnavailableError(
                f"The {service} service is unavailable right now; try again shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        breaker.record_success()
        return response
