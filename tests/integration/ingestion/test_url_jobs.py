"""URL jobs: the worker fetches a page from a local site (robots.txt honoured) and extracts the
article; a page the site does not allow, or that is gone, fails with a readable error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from kglab_ingestion.fetching import FetcherSettings
from kglab_shared.events import DocumentExtracted
from tests.integration.ingestion.conftest import IngestionApp
from tests.isolation import LOOPBACK, free_port
from tests.waiting import wait_until

DATA = Path(__file__).resolve().parents[2] / "data"
ARTICLE = (DATA / "news-wire.html").read_bytes()


async def robots(_: Request) -> Response:
    return PlainTextResponse("User-agent: *\nDisallow: /private/\n")


async def article(_: Request) -> Response:
    return Response(ARTICLE, media_type="text/html; charset=utf-8")


async def missing(_: Request) -> Response:
    return PlainTextResponse("gone", status_code=404)


site = Starlette(
    routes=[
        Route("/robots.txt", robots),
        Route("/news/solar", article),
        Route("/private/solar", article),
        Route("/news/missing", missing),
    ]
)


@pytest.fixture
async def local_site() -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(site, host=LOOPBACK, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: _started(server), timeout_s=10)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 10)


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


@pytest.fixture
async def fetching_app(ingestion_factory: Callable[..., Any]) -> IngestionApp:
    # Loopback is refused by default; the test site is the one address let through.
    app: IngestionApp = await ingestion_factory(
        fetcher=FetcherSettings(
            allowed_private_networks=("127.0.0.1/32",),  # type: ignore[arg-type]
            per_host_interval_s=0,
            max_retries=0,
        )
    )
    return app


async def submit(app: IngestionApp, url: str) -> dict[str, Any]:
    response = await app.client.post("/api/v1/urls", json={"url": url}, headers=app.headers())
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_web_page_becomes_a_document_with_its_article(
    fetching_app: IngestionApp, local_site: str
) -> None:
    url = f"{local_site}/news/solar"
    accepted = await submit(fetching_app, url)
    assert accepted["kind"] == "url"
    assert accepted["url"] == url
    job = await fetching_app.wait_for_status(accepted["job_id"], "completed", "failed")
    assert job["status"] == "completed", job
    assert job["provenance"]["content_type"] == "text/html"
    assert job["provenance"]["sha256"]
    assert job["provenance"]["source_name"] == url

    async def announced() -> bool:
        return len(fetching_app.extracted) == 1

    await wait_until(announced)
    event = DocumentExtracted.model_validate(fetching_app.extracted[0].data)
    text = fetching_app.texts[event.document_id]
    assert "polysilicon" in text
    assert "Subscribe to our newsletter" not in text  # boilerplate left behind
    assert "cookies" not in text


@pytest.mark.parametrize(
    ("path", "fragment"),
    [("/private/solar", "robots.txt"), ("/news/missing", "404")],
)
async def test_a_page_that_cannot_be_fetched_fails_readably(
    fetching_app: IngestionApp, local_site: str, path: str, fragment: str
) -> None:
    accepted = await submit(fetching_app, f"{local_site}{path}")
    job = await fetching_app.wait_for_status(accepted["job_id"], "completed", "failed")
    assert job["status"] == "failed"
    assert fragment in job["error"]
    assert job["error"].endswith(".")
