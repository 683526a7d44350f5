"""Forward requests to the services over httpx, with timeouts, retries of idempotent requests
and a circuit breaker per service (adr/0017).

One client for every call: per service, one httpx transport, a connection pool
(``httpx.AsyncHTTPTransport``, http or https) or, for a service hosted in this process
(``make dev``, tests), its ASGI app (``httpx.ASGITransport``). Proxied calls go to the
transport itself: a proxy wants none of the client layer's cookie jar, redirects or default
headers. The control-plane calls (JWKS, API keys, readiness, OpenAPI documents) use the
``httpx.AsyncClient`` in ``UpstreamPool.clients`` over the same transport and pool.
"""

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
# Failures after which an idempotent request may safely be sent again: the request never
# reached the service, or the connection broke before an answer (never a read timeout).
_RETRYABLE_ERRORS = (httpx.ConnectTimeout, httpx.NetworkError, httpx.RemoteProtocolError)
# Waits between attempts: 50 ms, then 100, 200, ... at most 500 ms.
_FIRST_RETRY_WAIT_S = 0.05
#: An idle pooled connection is dropped after this long: below uvicorn's 5 s keep-alive, so
#: the gateway never writes a request to a connection the service is closing.
_KEEPALIVE_EXPIRY_S = 4.0

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
# Response headers not relayed. Content-Length is relayed: bodies are relayed raw (never
# decompressed), so the upstream's length stays true and the answer need not be chunked.
# Date and Server are the gateway's own (uvicorn sets them), not repeated.
_RESPONSE_DROPPED = frozenset(
    name.encode() for name in (HOP_BY_HOP - {"content-length"}) | {"x-request-id", "date", "server"}
)


class GatewayTimeoutError(DomainError):
    status, title, code = 504, "Gateway timeout", "gateway_timeout"


class UnforwardableRequestError(DomainError):
    status, title, code = 400, "Bad request", "unforwardable_request"


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


def relayed_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The answer's headers to relay: lower-case names, hop-by-hop ones and the service's
    request id, Date and Server dropped."""
    return [
        (lower, value)
        for name, value in response.headers.raw
        if (lower := name.lower()) not in _RESPONSE_DROPPED
    ]


class UpstreamPool:
    """One transport (a bounded connection pool), one client and one breaker per service."""

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
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=_KEEPALIVE_EXPIRY_S,
        )
        # Waiting for a busy pool counts against the whole timeout, not the short connect
        # one, so a slow but healthy service under a burst queues its callers.
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._timeout = timeout.as_dict()
        self._transports: dict[str, httpx.AsyncBaseTransport] = {
            name: (transports or {}).get(name) or httpx.AsyncHTTPTransport(limits=limits)
            for name in base_urls
        }
        self._base_urls = {name: httpx.URL(url.rstrip("/")) for name, url in base_urls.items()}
        self.clients = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout, transport=transport)
            for (name, transport), url in zip(
                self._transports.items(), base_urls.values(), strict=True
            )
        }
        self.breakers = {
            name: CircuitBreaker(name, breaker_threshold, breaker_reset_s) for name in base_urls
        }
        self._retries = retries

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()  # closes its transport too

    async def send(
        self,
        service: str,
        method: str,
        target: bytes,
        *,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> httpx.Response:
        """Send ``method target`` (path and query as the caller encoded them) to ``service``
        and return its answer with the body unread; the caller must ``aclose`` it."""
        breaker = self.breakers[service]
        breaker.before_call()
        base = self._base_urls[service]
        request = httpx.Request(
            method,
            base.copy_with(raw_path=base.raw_path.rstrip(b"/") + target),
            headers=headers,
            content=body,
            extensions={"timeout": self._timeout},
        )
        transport = self._transports[service]
        replayable = method in IDEMPOTENT_METHODS and not isinstance(body, AsyncIterator)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._retries + 1 if replayable else 1),
                wait=wait_exponential(multiplier=_FIRST_RETRY_WAIT_S, max=0.5),
                retry=retry_if_exception_type(_RETRYABLE_ERRORS),
                reraise=True,
            ):
                with attempt:
                    response = await transport.handle_async_request(request)
        except httpx.LocalProtocolError as exc:
            # The caller's request, not the service, is at fault: no breaker failure.
            raise UnforwardableRequestError(
                "A header of this request cannot be forwarded: it holds a line break or "
                "another character HTTP does not allow there."
            ) from exc
        except httpx.TransportError as exc:
            breaker.record_failure()
            raise _failure(service, exc) from exc
        breaker.record_success()
        return response

    async def read_whole(self, service: str, response: httpx.Response) -> bytes:
        """The answer's whole body; the response is closed either way. A connection that
        breaks mid-answer is a readable 503 (or 504 if the service stalls), not a 500."""
        try:
            return b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.TransportError as exc:
            self.breakers[service].record_failure()
            raise _failure(service, exc) from exc
        finally:
            await response.aclose()


async def stream_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The answer's body as it arrives (read on demand: a slow caller slows the service, not
    the gateway's memory); closed however the iteration ends, since a Starlette
    ``StreamingResponse`` whose body raises never runs its background task."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


def _failure(service: str, exc: httpx.TransportError) -> DomainError:
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        # The service took the connection but did not answer (or read) in time.
        return GatewayTimeoutError(
            f"The {service} service took too long to answer; try again shortly."
        )
    return ServiceUnavailableError(
        f"The {service} service is unavailable right now; try again shortly.",
        headers={"Retry-After": "5"},
    )
