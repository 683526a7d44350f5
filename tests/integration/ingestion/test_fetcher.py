"""``PageFetcher`` against a real HTTP server on a loopback port: robots.txt, redirects (also to
internal addresses), the size cap, timeouts, 429/503 backoff, per-host pacing, DNS pinning.

The fetcher refuses loopback by default (tested first); the other tests allow 127.0.0.1 alone
through ``allowed_private_networks`` so every other internal address stays refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from kglab_ingestion.fetching import (
    FetchError,
    FetcherSettings,
    PageFetcher,
    UnsafeUrlError,
)
from tests.isolation import LOOPBACK, free_port

PAGE = "<html><head><title>Hello</title></head><body><p>An article.</p></body></html>"
MB = 1024 * 1024


@dataclass
class Site:
    """The test server's behaviour and what it saw."""

    base: str = ""
    robots: str | None = "User-agent: *\nDisallow: /private\n"
    robots_status: int = 200
    busy_left: int = 0
    retry_after: str | None = None
    seen: list[tuple[float, str, str]] = field(default_factory=list)  # (time, path, user agent)

    def hits(self, path: str) -> list[float]:
        return [t for t, p, _ in self.seen if p == path]


def make_app(site: Site) -> Starlette:
    async def record(request: Request) -> None:
        site.seen.append(
            (time.monotonic(), request.url.path, request.headers.get("user-agent", ""))
        )

    async def robots(request: Request) -> Response:
        await record(request)
        if site.robots is None:
            return PlainTextResponse("no robots here", status_code=404)
        return PlainTextResponse(site.robots, status_code=site.robots_status)

    async def page(request: Request) -> Response:
        await record(request)
        return Response(PAGE, media_type="text/html; charset=utf-8")

    async def host(request: Request) -> Response:
        await record(request)
        return Response(f"<p>{request.headers.get('host')}</p>", media_type="text/html")

    async def pdf(request: Request) -> Response:
        await record(request)
        return Response(b"%PDF-1.7\n", media_type="application/pdf")

    async def missing(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("gone", status_code=404)

    async def redirect(request: Request) -> Response:
        await record(request)
        return Response(status_code=302, headers={"Location": request.query_params["to"]})

    async def loop(request: Request) -> Response:
        await record(request)
        return Response(status_code=301, headers={"Location": "/loop"})

    async def big(request: Request) -> Response:
        await record(request)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(6 * 16):
                yield b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>"

        return StreamingResponse(chunks(), media_type="text/html")

    async def big_declared(request: Request) -> Response:
        await record(request)
        return Response(b"x" * (6 * MB), media_type="text/html")

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.sleep(2)
        return Response(PAGE, media_type="text/html")

    async def drip(request: Request) -> Response:
        await record(request)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"x"
                await asyncio.sleep(0.1)

        return StreamingResponse(chunks(), media_type="text/html")

    async def busy(request: Request) -> Response:
        await record(request)
        if site.busy_left > 0:
            site.busy_left -= 1
            headers = {"Retry-After": site.retry_after} if site.retry_after else {}
            status = 429 if site.retry_after else 503
            return PlainTextResponse("busy", status_code=status, headers=headers)
        return Response(PAGE, media_type="text/html")

    routes = [
        Route("/robots.txt", robots),
        Route("/page", page),
        Route("/other", page),
        Route("/private/secret", page),
        Route("/host", host),
        Route("/doc.pdf", pdf),
        Route("/missing", missing),
        Route("/redirect", redirect),
        Route("/loop", loop),
        Route("/big", big),
        Route("/big-declared", big_declared),
        Route("/slow", slow),
        Route("/drip", drip),
        Route("/busy", busy),
    ]
    return Starlette(routes=routes)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(state),
            host=LOOPBACK,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the local test server did not start"
    state.base = f"http://{LOOPBACK}:{port}"
    try:
        yield state
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)


def settings(tmp_path: Path, **overrides: object) -> FetcherSettings:
    values: dict[str, object] = {
        "allowed_private_networks": LOOPBACK_ONLY,
        "per_host_interval_s": 0.0,
        "backoff_base_s": 0.05,
        "tmp_dir": tmp_path / "bodies",
        "connect_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        "total_timeout_s": 10.0,
    }
    values.update(overrides)
    return FetcherSettings.model_validate(values)


@pytest.fixture
async def fetcher(tmp_path: Path) -> AsyncIterator[PageFetcher]:
    async with PageFetcher(settings(tmp_path)) as page_fetcher:
        yield page_fetcher


# ---------------------------------------------------------------------- the door stays shut


async def test_by_default_the_loopback_server_is_refused(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(FetcherSettings(tmp_dir=tmp_path)) as default_fetcher:
        for url in (f"{site.base}/page", f"http://localhost:{site.base.rsplit(':', 1)[1]}/page"):
            with pytest.raises(UnsafeUrlError, match="private, loopback"):
                await default_fetcher.fetch(url)
    assert site.seen == []


async def test_a_name_that_resolves_inward_is_refused_before_connecting(
    site: Site, tmp_path: Path
) -> None:
    async def intranet(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    port = site.base.rsplit(":", 1)[1]
    async with PageFetcher(FetcherSettings(tmp_dir=tmp_path), resolver=intranet) as guarded:
        with pytest.raises(UnsafeUrlError, match=r"The host intranet\.example cannot be fetched"):
            await guarded.fetch(f"http://intranet.example:{port}/page")
    assert site.seen == []


async def test_every_resolved_address_must_be_allowed(site: Site, tmp_path: Path) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.0.0.7"]

    port = site.base.rsplit(":", 1)[1]
    async with PageFetcher(settings(tmp_path), resolver=mixed) as guarded:
        with pytest.raises(UnsafeUrlError):
            await guarded.fetch(f"http://mixed.example:{port}/page")
    assert site.seen == []


async def test_the_connection_goes_to_the_address_that_was_checked(
    site: Site, tmp_path: Path
) -> None:
    calls: list[str] = []

    async def pinned(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    port = site.base.rsplit(":", 1)[1]
    async with PageFetcher(settings(tmp_path), resolver=pinned) as guarded:
        page = await guarded.fetch(f"http://news.example:{port}/host")
    # The server was reached through the checked address, under the requested host name.
    assert page.body_path.read_text() == f"<p>news.example:{port}</p>"
    assert set(calls) == {"news.example"}


async def test_dns_rebinding_cannot_reach_the_rebound_address(site: Site, tmp_path: Path) -> None:
    # First answer public, every later one loopback: a fetcher that checked one lookup and
    # connected after another would reach the local server. Ours connects to what it checked
    # (a public address unreachable from here), so the local server sees nothing.
    answers = iter(["93.184.215.14"] + ["127.0.0.1"] * 10)

    async def rebinding(host: str, port: int) -> list[str]:
        return [next(answers)]

    port = site.base.rsplit(":", 1)[1]
    strict = settings(tmp_path, allowed_private_networks=(), connect_timeout_s=0.5)
    async with PageFetcher(strict, resolver=rebinding) as guarded:
        with pytest.raises((FetchError, UnsafeUrlError)):
            await guarded.fetch(f"http://rebind.example:{port}/page")
    assert site.seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://10.1.2.3/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused(
    site: Site, fetcher: PageFetcher, target: str
) -> None:
    with pytest.raises(UnsafeUrlError, match="redirected to an address we may not fetch"):
        await fetcher.fetch(f"{site.base}/redirect?to={target}")
    assert [p for _, p, _ in site.seen] == ["/robots.txt", "/redirect"]


# ---------------------------------------------------------------------- the happy path


async def test_a_page_is_fetched_to_a_file_with_our_user_agent(
    site: Site, fetcher: PageFetcher
) -> None:
    page = await fetcher.fetch(f"{site.base}/page")
    assert page.final_url == f"{site.base}/page"
    assert page.content_type == "text/html"
    assert page.body_path.read_text() == PAGE
    assert page.size == len(PAGE)
    assert {agent for _, _, agent in site.seen} == {"KnowledgeGraphLab/1.0"}


async def test_redirects_are_followed_and_each_hop_checked(
    site: Site, fetcher: PageFetcher
) -> None:
    page = await fetcher.fetch(f"{site.base}/redirect?to=/redirect%3Fto%3D/page")
    assert page.final_url == f"{site.base}/page"
    assert [p for _, p, _ in site.seen] == ["/robots.txt", "/redirect", "/redirect", "/page"]


async def test_a_redirect_loop_stops_at_the_limit(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(settings(tmp_path, max_redirects=2)) as limited:
        with pytest.raises(FetchError, match="redirected more than 2 times") as caught:
            await limited.fetch(f"{site.base}/loop")
    assert not caught.value.retryable
    assert len(site.hits("/loop")) == 3


# ---------------------------------------------------------------------- robots.txt


async def test_robots_txt_disallow_is_honoured(site: Site, fetcher: PageFetcher) -> None:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"{site.base}/private/secret")
    assert caught.value.detail == "The site's robots.txt does not allow fetching this page."
    assert not caught.value.retryable
    assert site.hits("/private/secret") == []


async def test_robots_txt_rules_for_our_agent_apply(site: Site, fetcher: PageFetcher) -> None:
    site.robots = "User-agent: KnowledgeGraphLab\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    with pytest.raises(FetchError, match=r"robots\.txt does not allow"):
        await fetcher.fetch(f"{site.base}/page")


async def test_robots_txt_is_cached_per_site(site: Site, fetcher: PageFetcher) -> None:
    await fetcher.fetch(f"{site.base}/page")
    await fetcher.fetch(f"{site.base}/other")
    assert len(site.hits("/robots.txt")) == 1


async def test_robots_txt_is_read_again_after_its_ttl(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(settings(tmp_path, robots_ttl_s=0)) as fresh:
        await fresh.fetch(f"{site.base}/page")
        await fresh.fetch(f"{site.base}/page")
    assert len(site.hits("/robots.txt")) == 2


async def test_a_missing_robots_txt_allows_everything(site: Site, fetcher: PageFetcher) -> None:
    site.robots = None
    page = await fetcher.fetch(f"{site.base}/private/secret")
    assert page.size == len(PAGE)


async def test_an_unreadable_robots_txt_is_a_retryable_failure(
    site: Site, fetcher: PageFetcher
) -> None:
    site.robots_status = 500
    with pytest.raises(FetchError, match=r"robots\.txt could not be read") as caught:
        await fetcher.fetch(f"{site.base}/page")
    assert caught.value.retryable
    assert site.hits("/page") == []


async def test_crawl_delay_spaces_requests_to_the_site(site: Site, tmp_path: Path) -> None:
    site.robots = "User-agent: *\nCrawl-delay: 1\n"
    async with PageFetcher(settings(tmp_path)) as polite:
        await polite.fetch(f"{site.base}/page")
        await polite.fetch(f"{site.base}/other")
    first, second = site.hits("/page")[0], site.hits("/other")[0]
    assert second - first >= 0.95


# ---------------------------------------------------------------------- limits


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
async def test_a_page_over_the_size_cap_is_refused_and_nothing_is_left(
    site: Site, fetcher: PageFetcher, tmp_path: Path, path: str
) -> None:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"{site.base}{path}")
    assert caught.value.detail == "The page is larger than 5 MB."
    assert not caught.value.retryable
    assert list((tmp_path / "bodies").glob("*")) == []


async def test_a_server_that_does_not_answer_times_out(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(settings(tmp_path, read_timeout_s=0.3)) as impatient:
        with pytest.raises(FetchError, match="did not answer in time") as caught:
            await impatient.fetch(f"{site.base}/slow")
    assert caught.value.retryable


async def test_a_server_that_drips_hits_the_overall_deadline(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(settings(tmp_path, total_timeout_s=1.0)) as impatient:
        started = time.monotonic()
        with pytest.raises(FetchError, match="within 1 second;") as caught:
            await impatient.fetch(f"{site.base}/drip")
    assert time.monotonic() - started < 3
    assert caught.value.retryable
    assert list((tmp_path / "bodies").glob("*")) == []


async def test_a_non_html_answer_is_refused(site: Site, fetcher: PageFetcher) -> None:
    with pytest.raises(FetchError, match="serves application/pdf, not a web page"):
        await fetcher.fetch(f"{site.base}/doc.pdf")


async def test_a_404_is_a_permanent_failure(site: Site, fetcher: PageFetcher) -> None:
    with pytest.raises(FetchError, match=r"HTTP 404 \(Not Found\)") as caught:
        await fetcher.fetch(f"{site.base}/missing")
    assert not caught.value.retryable


# ---------------------------------------------------------------------- backoff and pacing


async def test_429_with_retry_after_is_honoured(site: Site, fetcher: PageFetcher) -> None:
    site.busy_left, site.retry_after = 1, "1"
    page = await fetcher.fetch(f"{site.base}/busy")
    assert page.size == len(PAGE)
    first, second = site.hits("/busy")
    assert second - first >= 0.95


async def test_503_backs_off_exponentially_then_gives_up_retryably(
    site: Site, tmp_path: Path
) -> None:
    site.busy_left = 100
    async with PageFetcher(settings(tmp_path, max_retries=3, backoff_base_s=0.1)) as patient:
        with pytest.raises(FetchError, match="kept answering HTTP 503") as caught:
            await patient.fetch(f"{site.base}/busy")
    assert caught.value.retryable
    times = site.hits("/busy")
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= expected * 0.95


async def test_a_retry_after_beyond_the_bound_fails_retryably_at_once(
    site: Site, fetcher: PageFetcher
) -> None:
    site.busy_left, site.retry_after = 1, "3600"
    with pytest.raises(FetchError, match="asked us to wait 3600 seconds") as caught:
        await fetcher.fetch(f"{site.base}/busy")
    assert caught.value.retryable
    assert len(site.hits("/busy")) == 1


async def test_requests_to_one_host_are_spaced(site: Site, tmp_path: Path) -> None:
    async with PageFetcher(settings(tmp_path, per_host_interval_s=0.3)) as paced:
        await asyncio.gather(paced.fetch(f"{site.base}/page"), paced.fetch(f"{site.base}/other"))
    times = sorted(t for t, _, _ in site.seen)
    assert len(times) == 3  # robots.txt once, two pages
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.28, gaps
