"""Forward requests to the services, with timeouts, retries of idempotent requests and a
circuit breaker per service (adr/0017).

One client for every call, behind httpx's transport interface: per service, one transport, an
aiohttp session (its connection pool, http or https) or, for a service hosted in this process
(``make dev``, tests), its ASGI app (``httpx.ASGITransport``). Proxied calls go to the
transport itself: a proxy wants none of the client layer's cookie jar, redirects or default
headers. The control-plane calls (JWKS, API keys, readiness, OpenAPI documents) use the
``httpx.AsyncClient`` in ``UpstreamPool.clients`` over the same transport and pool.

Why aiohttp under httpx's interface rather than httpx's own transport: httpcore (pure Python
HTTP/1.1 on anyio) cost 5-10 times aiohttp's CPU per call and stalled under concurrency in the
gateway's benchmark (bench/bench_gateway_upstream.py; adr/0017).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
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


# aiohttp's failures as httpx's, most specific first: the retry, breaker and 504/503 logic
# below reads httpx's classes only.
_AIOHTTP_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # connecting or a full pool
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),  # the body broke off
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not valid HTTP
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        mapped = next(to for source, to in _AIOHTTP_ERRORS if isinstance(exc, source))
        raise mapped(str(exc) or type(exc).__name__) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over one aiohttp session (pool limit, keep-alive expiry,
    no cookie jar, no added headers, bodies relayed as they are, never decompressed)."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=self._max_connections,
                    keepalive_timeout=_KEEPALIVE_EXPIRY_S,
                    ttl_dns_cache=300,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]
        headers = [
            (name.decode("latin-1"), value.decode("utf-8"))
            for name, value in request.headers.raw
            if name.lower() not in (b"host", b"transfer-encoding")  # aiohttp's to set
        ]
        data: bytes | httpx.AsyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload
            data = request.stream  # type: ignore[assignment]
        with _as_httpx_errors():
            response = await self._client().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout["pool"],  # waiting for a pooled connection, then connecting
                    sock_connect=timeout["connect"],
                    sock_read=timeout["read"],
                ),
            )
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpBody(response),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _AiohttpBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


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
        # Waiting for a busy pool counts against the whole timeout, not the short connect
        # one, so a slow but healthy service under a burst queues its callers.
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._timeout = timeout.as_dict()
        self._transports: dict[str, httpx.AsyncBaseTransport] = {
            name: (transports or {}).get(name) or AiohttpTransport(max_connections=max_connections)
            for name in base_urls
        }
        self._base_urls = {name: url.rstrip("/") for name, url in base_urls.items()}
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
        if any(_unsendable(value) for _, value in headers):
            # The caller's request, not the service, is at fault: no breaker failure.
            raise UnforwardableRequestError(
                "A header of this request cannot be forwarded: it holds a line break or "
                "bytes that are not UTF-8 text."
            )
        breaker = self.breakers[service]
        breaker.before_call()
        request = httpx.Request(
            method,
            # One parse of one string: half the CPU of URL.copy_with on every request.
            httpx.URL(self._base_urls[service] + target.decode("latin-1")),
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


def _unsendable(value: bytes) -> bool:
    """A header value that would split the request (line breaks, NUL) or that aiohttp cannot
    write back byte for byte (it writes header text as UTF-8)."""
    if b"\r" in value or b"\n" in value or b"\0" in value:
        return True
    if value.isascii():
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


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
