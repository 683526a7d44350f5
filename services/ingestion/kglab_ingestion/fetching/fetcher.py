"""``PageFetcher``: fetch one web page politely and safely, its body streamed to a file.

Polite: robots.txt honoured (cached per site), one request per host per interval (robots.txt
Crawl-delay may lengthen it), 429/503 answered with a bounded wait (Retry-After, else an
exponential backoff), a user agent that names us. Safe: http(s) only, no credentials, every
redirect re-validated, every connection pinned to an address checked at connect time, a size
cap, connect/read timeouts and a deadline for the whole fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.robotparser import RobotFileParser

import httpx

from kglab_ingestion.fetching.addresses import UnsafeUrlError, validate_public_url
from kglab_ingestion.fetching.errors import FetchError
from kglab_ingestion.fetching.politeness import (
    HostPacing,
    RobotsCache,
    allow_all_robots,
    parse_retry_after,
    parse_robots,
)
from kglab_ingestion.fetching.settings import MB, FetcherSettings
from kglab_ingestion.fetching.transport import (
    GuardedTransport,
    Resolver,
    resolve_checked,
    system_resolver,
)
from kglab_shared.logging import get_logger
from kglab_shared.ratelimit import RateLimiter, memory_rate_limiter

_log = get_logger(__name__)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BUSY = frozenset({429, 503})
_WRITE_BATCH = 256 * 1024
_ROBOTS_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class FetchedPage:
    final_url: str
    #: The media type without parameters, lower case ("text/html").
    content_type: str
    #: A temporary file holding the body; the caller owns it (delete it when done).
    body_path: Path
    size: int


class PageFetcher:
    """Fetch pages; one instance per process (it keeps connections, robots rules, host slots)."""

    def __init__(
        self,
        settings: FetcherSettings,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """``limiter`` paces hosts (the fetcher closes it); without one, in this process."""
        self._settings = settings
        self._resolver = resolver or system_resolver
        # A transport given here (tests) does not pin connections: addresses are then checked
        # before each request instead.
        self._precheck = transport is not None
        self._client = httpx.AsyncClient(
            transport=transport
            or GuardedTransport(
                self._resolver,
                allow_private=settings.allow_private_addresses,
                allowlist=settings.allowed_private_networks,
                resolve_timeout_s=settings.connect_timeout_s,
            ),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.read_timeout_s,
                pool=settings.connect_timeout_s,
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": settings.user_agent},
        )
        self._pacing_store = limiter or memory_rate_limiter()
        self._limiter = HostPacing(self._pacing_store, settings.per_host_interval_s)
        self._robots = RobotsCache(settings.robots_ttl_s, settings.robots_cache_size)
        self._robots_agent = settings.user_agent.split("/", 1)[0]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._pacing_store.close()

    def validate(self, url: str) -> str:
        """The normalised URL, or :class:`UnsafeUrlError` (before any job is created)."""
        return validate_public_url(
            url,
            max_length=self._settings.max_url_length,
            allow_private=self._settings.allow_private_addresses,
            allowlist=self._settings.allowed_private_networks,
        )

    async def fetch(self, url: str) -> FetchedPage:
        """Fetch ``url``; raise :class:`UnsafeUrlError` or :class:`FetchError` with a detail."""
        current = self.validate(url)
        deadline = self._settings.total_timeout_s
        try:
            async with asyncio.timeout(deadline):
                for _ in range(self._settings.max_redirects + 1):
                    parsed = httpx.URL(current)
                    crawl_delay = await self._check_robots(parsed)
                    response = await self._get_politely(parsed, crawl_delay)
                    try:
                        if response.status_code in _REDIRECTS:
                            current = self._redirect_target(parsed, response)
                            continue
                        return await self._save(parsed, response)
                    finally:
                        await response.aclose()
        except TimeoutError:
            unit = "second" if deadline == 1 else "seconds"
            raise FetchError(
                f"The site did not send the page within {deadline:g} {unit}; try again later.",
                retryable=True,
            ) from None
        raise FetchError(
            f"The page redirected more than {self._settings.max_redirects} times.",
            retryable=False,
        )

    # ------------------------------------------------------------------ requests

    async def _send(self, url: httpx.URL) -> httpx.Response:
        if self._precheck:
            await resolve_checked(
                self._resolver,
                url.host,
                url.port or (443 if url.scheme == "https" else 80),
                allow_private=self._settings.allow_private_addresses,
                allowlist=self._settings.allowed_private_networks,
                timeout_s=self._settings.connect_timeout_s,
            )
        request = self._client.build_request("GET", url)
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise FetchError(
                f"The site {url.host} did not answer in time.", retryable=True
            ) from None
        except httpx.ConnectError:
            raise FetchError(f"The site {url.host} could not be reached.", retryable=True) from None
        except httpx.HTTPError as exc:
            _log.info("fetch_protocol_error", host=url.host, error=str(exc))
            raise FetchError(f"The site {url.host} sent a broken answer.", retryable=True) from None

    async def _get_politely(self, url: httpx.URL, crawl_delay: float | None) -> httpx.Response:
        settings = self._settings
        for attempt in range(settings.max_retries + 1):
            await self._limiter.wait(url.host, interval_s=crawl_delay)
            response = await self._send(url)
            if response.status_code not in _BUSY:
                return response
            await response.aclose()
            reason = _reason(response.status_code)
            requested = parse_retry_after(response.headers.get("retry-after"))
            if requested is not None and requested > settings.max_retry_after_s:
                raise FetchError(
                    f"The site asked us to wait {requested:.0f} seconds before trying again "
                    f"(HTTP {response.status_code} {reason}).",
                    retryable=True,
                )
            if attempt == settings.max_retries:
                break
            if requested is None:
                requested = settings.backoff_base_s * 2**attempt * random.uniform(1.0, 1.25)
            _log.info("fetch_backoff", host=url.host, status=response.status_code, wait=requested)
            await self._limiter.defer(url.host, requested)
        raise FetchError(
            f"The site kept answering HTTP {response.status_code} ({reason}); try again later.",
            retryable=True,
        )

    def _redirect_target(self, url: httpx.URL, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise FetchError("The site redirected without saying where to.", retryable=False)
        try:
            target = str(url.join(location))
        except (httpx.InvalidURL, ValueError):
            raise FetchError(
                "The site redirected to an invalid address.", retryable=False
            ) from None
        try:
            return self.validate(target)
        except UnsafeUrlError as exc:
            raise UnsafeUrlError(
                f"The page redirected to an address we may not fetch. {exc.detail}"
            ) from None

    # ------------------------------------------------------------------ robots.txt

    async def _check_robots(self, url: httpx.URL) -> float | None:
        """Refuse a page robots.txt disallows; return the site's Crawl-delay (bounded)."""
        rules = await self._robots_for(url)
        if not rules.can_fetch(self._settings.user_agent, str(url)):
            raise FetchError(
                "The site's robots.txt does not allow fetching this page.", retryable=False
            )
        delay = rules.crawl_delay(self._robots_agent)
        if delay is None:
            return None
        return min(float(delay), self._settings.max_crawl_delay_s)

    async def _robots_for(self, url: httpx.URL) -> RobotFileParser:
        origin = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        rules = self._robots.get(origin)
        if rules is not None:
            return rules
        async with self._robots.lock(origin):
            rules = self._robots.get(origin)
            if rules is None:
                rules = await self._download_robots(httpx.URL(origin + "/robots.txt"))
                self._robots.put(origin, rules)
        return rules

    async def _download_robots(self, url: httpx.URL) -> RobotFileParser:
        # RFC 9309: 4xx means no rules; 5xx or no answer means "assume everything disallowed"
        # for now, which for one job is a retryable failure.
        for _ in range(_ROBOTS_REDIRECTS + 1):
            await self._limiter.wait(url.host)
            try:
                response = await self._send(url)
            except FetchError as exc:
                raise FetchError(
                    f"The site's robots.txt could not be read: {exc.detail}", retryable=True
                ) from None
            try:
                status = response.status_code
                if status in _REDIRECTS and response.headers.get("location"):
                    url = httpx.URL(self._redirect_target(url, response))
                    continue
                if 200 <= status < 300:
                    return parse_robots(await self._read_capped_text(response))
                if 400 <= status < 500 and status != 429:
                    return allow_all_robots()
                raise FetchError(
                    f"The site's robots.txt could not be read (HTTP {status}); try again later.",
                    retryable=True,
                )
            finally:
                await response.aclose()
        return allow_all_robots()

    async def _read_capped_text(self, response: httpx.Response) -> str:
        limit = self._settings.robots_max_bytes
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= limit:
                break
        return bytes(data[:limit]).decode("utf-8", "replace")

    # ------------------------------------------------------------------ the body

    async def _save(self, url: httpx.URL, response: httpx.Response) -> FetchedPage:
        status = response.status_code
        if status >= 400:
            raise FetchError(
                f"The page answered HTTP {status} ({_reason(status)}).", retryable=status >= 500
            )
        if status != 200:
            raise FetchError(
                f"The page answered HTTP {status} ({_reason(status)}) instead of content.",
                retryable=False,
            )
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in self._settings.allowed_content_types:
            shown = content_type or "no content type"
            raise FetchError(f"The address serves {shown}, not a web page.", retryable=False)
        limit = self._settings.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large()
        path, size = await self._stream_to_file(response, limit)
        return FetchedPage(final_url=str(url), content_type=content_type, body_path=path, size=size)

    async def _stream_to_file(self, response: httpx.Response, limit: int) -> tuple[Path, int]:
        tmp_dir = self._settings.tmp_dir
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="kglab-page-", suffix=".body", dir=tmp_dir)
        path = Path(name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                buffer = bytearray()
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large()
                    buffer += chunk
                    if len(buffer) >= _WRITE_BATCH:
                        await _write(out, bytes(buffer))
                        buffer.clear()
                await _write(out, bytes(buffer))
        except httpx.TimeoutException:
            path.unlink(missing_ok=True)
            raise FetchError("The site stopped sending the page.", retryable=True) from None
        except httpx.HTTPError:
            path.unlink(missing_ok=True)
            raise FetchError(
                "The connection broke while the page was sent.", retryable=True
            ) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size

    def _too_large(self) -> FetchError:
        return FetchError(
            f"The page is larger than {self._settings.max_bytes / MB:g} MB.", retryable=False
        )


async def _write(out: IO[bytes], data: bytes) -> None:
    if data:
        await asyncio.to_thread(out.write, data)


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "unknown status"
