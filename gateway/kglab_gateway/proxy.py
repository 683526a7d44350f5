"""Forward requests to the services over pooled HTTP, with timeouts, retries of idempotent
requests, and a circuit breaker per service.

Three clients, each where it is cheapest or the only one that fits:

- Calls to a service on the network go through the gateway's own small HTTP/1.1 client
  (``kglab_gateway.upstream_http``): it costs about a third of aiohttp's CPU per call
  (bench/bench_gateway.py; adr/0014).
- HEAD requests and streamed uploads go through aiohttp, which measured about a tenth of the
  CPU per request of httpx (httpcore's pool and anyio streams were a quarter of the gateway's
  CPU under load).
- A service hosted in this process (``make dev``, tests) is reached over its httpx ASGI
  transport. The small httpx clients in ``UpstreamPool.clients`` also serve the rare
  control-plane calls (JWKS, API-key look-ups, readiness, OpenAPI documents).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from yarl import URL

from kglab_gateway.upstream_http import (
    UnsendableRequestError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHttpPool,
    UpstreamHttpResponse,
    UpstreamProtocolError,
    UpstreamReadTimeoutError,
)
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
    UpstreamConnectError,
    UpstreamClosedError,
    UpstreamProtocolError,
)
_TRANSPORT_ERRORS = (TimeoutError, httpx.TransportError, aiohttp.ClientError, UpstreamError)

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


class UpstreamResponse:
    """A service's answer, head read, body not yet: relay it, then ``aclose``."""

    __slots__ = ("_aiohttp", "_httpx", "_lean", "content_length", "headers", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        *,
        aiohttp_response: aiohttp.ClientResponse | None = None,
        httpx_response: httpx.Response | None = None,
        lean_response: UpstreamHttpResponse | None = None,
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
        self._lean = lean_response

    @classmethod
    def of_lean(cls, response: UpstreamHttpResponse) -> UpstreamResponse:
        # Names are already lower-case (the client lowers them as it parses).
        headers = [
            (name, value) for name, value in response.headers if name not in _RESPONSE_DROPPED
        ]
        return cls(response.status_code, headers, lean_response=response)

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
        if self._lean is not None:
            return await self._lean.read()
        if self._aiohttp is not None:
            return await self._aiohttp.read()
        assert self._httpx is not None
        return await self._httpx.aread()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            if self._lean is not None:
                async for chunk in self._lean.aiter_raw():
                    yield chunk
            elif self._aiohttp is not None:
                async for chunk in self._aiohttp.content.iter_any():
                    yield chunk
            else:
                assert self._httpx is not None
                async for chunk in self._httpx.aiter_raw():
                    yield chunk
        finally:
            # A streamed body that raises never reaches the response's background aclose.
            await self.aclose()

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        elif self._aiohttp is not None:
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
        builtin_client: bool = True,
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
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._lean: dict[str, UpstreamHttpPool] = {}
        #: Services on plain http (the own client speaks no TLS; https ones use aiohttp).
        self._plain = frozenset(
            name
            for name, url in base_urls.items()
            if builtin_client and name not in transports and urlsplit(url).scheme == "http"
        )
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

    def _lean_pool(self, service: str) -> UpstreamHttpPool:
        # Created lazily, like the aiohttp sessions: a pool belongs to the running event loop.
        pool = self._lean.get(service)
        if pool is None:
            parts = urlsplit(self._base_urls[service])
            assert parts.hostname is not None
            pool = UpstreamHttpPool(
                parts.hostname,
                parts.port or 80,
                host_header=parts.netloc.rpartition("@")[2],
                path_prefix=parts.path,
                max_connections=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._timeout_s,
                # As with aiohttp before: waiting for a busy pool counts against the whole
                # timeout, not the (short) connect timeout, so a slow but healthy service
                # under a burst queues its callers instead of failing them.
                pool_timeout_s=self._timeout_s,
            )
            self._lean[service] = pool
        return pool

    async def close(self) -> None:
        for pool in self._lean.values():
            await pool.close()
        self._lean.clear()
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
        except UnsendableRequestError as exc:
            # The caller's request, not the service, is at fault: no breaker failure.
            raise UnforwardableRequestError(
                "A header of this request cannot be forwarded: it holds a line break or "
                "characters outside Latin-1."
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            breaker.record_failure()
            raise _failure(service, exc) from exc
        breaker.record_success()
        return response

    async def read_whole(self, service: str, response: UpstreamResponse) -> bytes:
        """The answer's whole body; the response is closed either way. A connection that
        breaks mid-answer is a readable 503 (or 504 if the service stalls), not a 500."""
        try:
            return await response.read()
        except _TRANSPORT_ERRORS as exc:
            self.breakers[service].record_failure()
            raise _failure(service, exc) from exc
        finally:
            await response.aclose()

    async def _send_once(
        self,
        service: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        if service in self._plain and method != "HEAD" and not hasattr(body, "__aiter__"):
            lean = await self._lean_pool(service).request(
                method, target, headers, body if isinstance(body, bytes) else None
            )
            return UpstreamResponse.of_lean(lean)
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


def _failure(service: str, exc: BaseException) -> DomainError:
    if _is_read_timeout(exc):
        return GatewayTimeoutError(
            f"The {service} service took too long to answer; try again shortly."
        )
    return ServiceUnavailableError(
        f"The {service} service is unavailable right now; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _is_read_timeout(exc: BaseException) -> bool:
    """A service that took the connection but did not answer in time (not a connect failure)."""
    if isinstance(exc, UpstreamError):
        return isinstance(exc, UpstreamReadTimeoutError)
    if isinstance(exc, httpx.TimeoutException):
        return not isinstance(exc, httpx.ConnectTimeout)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return False
    return isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError)
