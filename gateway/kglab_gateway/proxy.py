"""Forward requests to the services over pooled HTTP, with timeouts, retries of idempotent
requests, and a circuit breaker per service.

Requests to a service on the network go through aiohttp: measured side by side in
bench/bench_gateway.py it costs the gateway about a tenth of the CPU per request that httpx
does (httpcore's pool and anyio streams were a quarter of the gateway's CPU under load). A
service hosted in this process (``make dev``, tests) is reached over its httpx ASGI transport.
The small httpx clients in ``UpstreamPool.clients`` stay for the rare control-plane calls
(JWKS, API-key look-ups, readiness, OpenAPI documents).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from yarl import URL

from kglab_shared.errors import DomainError, ServiceUnavailableError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures after which an idempotent request may safely be sent again: the request never
# reached the service, or the connection broke before an answer (never a read timeout).
_RETRYABLE_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)

# Waits between attempts: 50 ms, then 100, 200, ... at most 500 ms.
_FIRST_RETRY_WAIT_S = 0.05

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


class UpstreamResponse:
    """A service's answer, head read, body not yet: relay it, then ``aclose``."""

    __slots__ = ("_aiohttp", "_httpx", "content_length", "headers", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        *,
        aiohttp_response: aiohttp.ClientResponse | None = None,
        httpx_response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        #: Lower-case names, hop-by-hop ones and the request id already dropped.
        self.headers = headers
        self.content_length: int | None = None
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                self.content_length = int(value)
        self._aiohttp = aiohttp_response
        self._httpx = httpx_response

    @classmethod
    def of_aiohttp(cls, response: aiohttp.ClientResponse) -> UpstreamResponse:
        headers = [
            (lower, value)
            for name, value in response.raw_headers
            if (lower := name.lower()) not in _RESPONSE_DROPPED
        ]
        return cls(response.status, headers, aiohttp_response=response)

    @classmethod
    def of_httpx(cls, response: httpx.Response) -> UpstreamResponse:
        headers = [
            (lower, value)
            for name, value in response.headers.raw
            if (lower := name.lower()) not in _RESPONSE_DROPPED
        ]
        # An in-process transport hands over decoded chunks with no length of their own.
        headers = [(n, v) for n, v in headers if n != b"content-length"]
        return cls(response.status_code, headers, httpx_response=response)

    async def read(self) -> bytes:
        if self._aiohttp is not None:
            return await self._aiohttp.read()
        assert self._httpx is not None
        return await self._httpx.aread()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self._aiohttp is not None:
            async for chunk in self._aiohttp.content.iter_any():
                yield chunk
            return
        assert self._httpx is not None
        async for chunk in self._httpx.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        if self._aiohttp is not None:
            self._aiohttp.release()
        elif self._httpx is not None:
            await self._httpx.aclose()


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
        self._base_urls = {name: url.rstrip("/") for name, url in base_urls.items()}
        self._in_process = frozenset(transports)
        self._max_connections = max_connections
        # Waiting for a pooled connection counts against the whole timeout, as with httpx.
        self._aiohttp_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=timeout_s,
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self.breakers = {
            name: CircuitBreaker(name, breaker_threshold, breaker_reset_s) for name in base_urls
        }
        self._retries = retries

    def _session(self, service: str) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the running event loop.
        session = self._sessions.get(service)
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=self._max_connections,
                    ttl_dns_cache=300,
                ),
                timeout=self._aiohttp_timeout,
                # Relay bodies as they are (compressed stays compressed) and add no headers
                # the caller did not send.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                raise_for_status=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[service] = session
        return session

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def send(
        self,
        service: str,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        """Send ``method target`` (path and query, already percent-encoded) to ``service``
        and return its answer with the body unread; the caller must ``aclose`` it."""
        breaker = self.breakers[service]
        breaker.before_call()
        replayable = method in IDEMPOTENT_METHODS and not hasattr(body, "__aiter__")
        attempts = self._retries + 1 if replayable else 1
        try:
            try:
                # The first attempt is made directly: building tenacity's machinery for every
                # request was about 7% of the gateway's CPU; it takes over for the retries.
                response = await self._send_once(service, method, target, headers, body)
            except _RETRYABLE_ERRORS:
                if attempts == 1:
                    raise
                await asyncio.sleep(_FIRST_RETRY_WAIT_S)
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(attempts - 1),
                    wait=wait_exponential(multiplier=2 * _FIRST_RETRY_WAIT_S, max=0.5),
                    retry=retry_if_exception_type(_RETRYABLE_ERRORS),
                    reraise=True,
                ):
                    with attempt:
                        response = await self._send_once(service, method, target, headers, body)
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            breaker.record_failure()
            if _is_read_timeout(exc):
                raise GatewayTimeoutError(
                    f"The {service} service took too long to answer; try again shortly."
                ) from exc
            raise ServiceUnavailableError(
                f"The {service} service is unavailable right now; try again shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        breaker.record_success()
        return response

    async def _send_once(
        self,
        service: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        if service in self._in_process:
            return await self._send_httpx(service, method, target, headers, body)
        return await self._send_aiohttp(service, method, target, headers, body)

    async def _send_aiohttp(
        self,
        service: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        url = URL(self._base_urls[service] + target, encoded=True)
        response = await self._session(service).request(
            method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
        )
        return UpstreamResponse.of_aiohttp(response)

    async def _send_httpx(
        self,
        service: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        client = self.clients[service]
        request = client.build_request(
            method, self._base_urls[service] + target, headers=headers, content=body
        )
        return UpstreamResponse.of_httpx(await client.send(request, stream=True))


def _is_read_timeout(exc: BaseException) -> bool:
    """A service that took the connection but did not answer in time (not a connect failure)."""
    if isinstance(exc, httpx.TimeoutException):
        return not isinstance(exc, httpx.ConnectTimeout)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return False
    return isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError)
