"""What the on-call surface costs (ADR 0027), side by side in one run, medians of 5 rounds:

1. The shared request middleware per request, with and without the route-template header a
   service adds for the gateway's labels (an in-process ASGI call, no network).
2. One scrape of the registry: on the metrics port (prometheus_client's own HTTP server, a
   thread) and on the API's /metrics route (through the app).
3. One standard-library log line rendered as JSON with the correlation id (structlog's
   ProcessorFormatter) against the plain ``%(message)s`` it replaces.

Bounded: a fixed count per round (2,000 requests, 200 scrapes, 5,000 log lines). Timings on a
shared machine are inflated: the load average is recorded beside them.

    .venv/bin/python bench/bench_observability.py

Writes ``bench/results/observability.json``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KGLAB_ENVIRONMENT", "test")

from fastapi import APIRouter
from machine import save

from kglab_shared.app import RequestContextMiddleware, create_service_app
from kglab_shared.logging import configure_logging
from kglab_shared.settings import ServiceSettings

ROUNDS = 5
REQUESTS = 2000
SCRAPES = 200
LOG_LINES = 5000

router = APIRouter()


@router.get("/items/{item_id}")
async def read_item(item_id: str) -> dict[str, str]:
    """Read an item."""
    return {"id": item_id}


async def call(app: Any, path: str) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)


def app_with(names_routes: bool) -> Any:
    settings = ServiceSettings(service_name="bench", KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0)
    app = create_service_app(settings, title="bench", routers=[router])
    for middleware in app.user_middleware:
        if middleware.cls is RequestContextMiddleware:
            middleware.kwargs["names_routes"] = names_routes
    return app


async def per_request_us(app: Any) -> float:
    for i in range(200):
        await call(app, f"/items/{i}")
    started = time.perf_counter()
    for i in range(REQUESTS):
        await call(app, f"/items/{i}")
    return (time.perf_counter() - started) / REQUESTS * 1e6


async def scrape_ms(app: Any, port: int) -> tuple[float, float]:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(SCRAPES):
            (await client.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status()
        on_port = (time.perf_counter() - started) / SCRAPES * 1000
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        started = time.perf_counter()
        for _ in range(SCRAPES):
            (await client.get("/metrics")).raise_for_status()
        on_route = (time.perf_counter() - started) / SCRAPES * 1000
    return on_port, on_route


def log_line_us(json_lines: bool) -> float:
    configure_logging("bench", "INFO", json=json_lines)
    root = logging.getLogger()
    stream = io.StringIO()
    handler = root.handlers[0]
    if json_lines:
        handler.setStream(stream)  # type: ignore[attr-defined]
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.handlers = [handler]
    logger = logging.getLogger("bench.library")
    started = time.perf_counter()
    for i in range(LOG_LINES):
        logger.warning("request %s answered %s", i, 200)
    return (time.perf_counter() - started) / LOG_LINES * 1e6


async def main() -> None:
    load_before = os.getloadavg()
    plain, named, port_ms, route_ms, json_us, text_us = [], [], [], [], [], []
    settings = ServiceSettings(
        service_name="bench-scrape", KGLAB_METRICS_PORT=0, KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0
    )
    scraped = create_service_app(settings, title="bench", routers=[router])
    without, with_header = app_with(False), app_with(True)
    async with scraped.router.lifespan_context(scraped):
        for _ in range(ROUNDS):
            plain.append(await per_request_us(without))
            named.append(await per_request_us(with_header))
            on_port, on_route = await scrape_ms(scraped, scraped.state.metrics_server.port)
            port_ms.append(on_port)
            route_ms.append(on_route)
            text_us.append(log_line_us(False))
            json_us.append(log_line_us(True))
    configure_logging("bench", "INFO", json=False)
    result = {
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "note": "2 shared cores, 8 engineers: absolute times are inflated; compare the pairs",
        "rounds": ROUNDS,
        "request_us": {
            "without_route_header": round(statistics.median(plain), 1),
            "with_route_header": round(statistics.median(named), 1),
            "ratio": round(statistics.median(named) / statistics.median(plain), 3),
        },
        "scrape_ms": {
            "metrics_port": round(statistics.median(port_ms), 2),
            "api_route": round(statistics.median(route_ms), 2),
        },
        "stdlib_log_line_us": {
            "plain_text": round(statistics.median(text_us), 1),
            "json_with_correlation_id": round(statistics.median(json_us), 1),
            "ratio": round(statistics.median(json_us) / statistics.median(text_us), 2),
        },
    }
    path = save("observability", result)
    print(f"request: {result['request_us']} us")
    print(f"scrape: {result['scrape_ms']} ms")
    print(f"stdlib log line: {result['stdlib_log_line_us']} us")
    print(f"load {load_before} -> {result['load_average_after']}; wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
