"""Every log line is JSON with the correlation id (issue 15): structlog's own, the standard
library's, and uvicorn's access line, captured from a real uvicorn serving a service app."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter

from kglab_shared.app import create_service_app
from kglab_shared.correlation import set_correlation_id
from kglab_shared.logging import configure_logging, get_logger
from kglab_shared.serving import GuardedHttpProtocol
from kglab_shared.settings import ServiceSettings
from tests.waiting import wait_until

router = APIRouter()


@router.get("/items/{item_id}")
async def read_item(item_id: str) -> dict[str, str]:
    """Read an item."""
    logging.getLogger("a.client.library").info("fetched %s", item_id)
    return {"id": item_id}


@pytest.fixture(autouse=True)
def _plain_logs_afterwards() -> Iterator[None]:
    yield
    configure_logging("kglab", "INFO", json=False)
    set_correlation_id(None)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON: a line that is not fails the test."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_standard_library_and_structlog_lines_are_json_with_the_correlation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("probe", "INFO", json=True)
    set_correlation_id("req-123")
    logging.getLogger("some.library").warning("disk %s", "full")
    get_logger("kglab.probe").info("handled", password="hunter2")
    set_correlation_id(None)
    logging.getLogger("some.library").error("no request here")
    stdlib, own, outside = json_lines(capsys.readouterr().err)
    assert stdlib["event"] == "disk full"
    assert stdlib["level"] == "warning"
    assert stdlib["logger"] == "some.library"
    assert stdlib["service"] == "probe"
    assert stdlib["correlation_id"] == "req-123"
    assert "timestamp" in stdlib
    assert own["event"] == "handled"
    assert own["correlation_id"] == "req-123"
    assert own["password"] == "[redacted]"
    assert "correlation_id" not in outside


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_uvicorn_s_access_line_is_json_with_the_request_s_correlation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    # As the image's command runs it: uvicorn configures its own logging first, then builds
    # the app (the factory), which configures ours.
    config = uvicorn.Config(
        app="tests.unit.shared.test_json_logs:build",
        factory=True,
        host="127.0.0.1",
        port=port,
        http=GuardedHttpProtocol,
        log_level="info",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await wait_until(started, timeout_s=20, step_s=0.05)
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{port}/items/7?token=secret-value",
                headers={"X-Request-ID": "trace-me-please"},
            )
        assert response.status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=20)
    lines = json_lines(capsys.readouterr().err)
    access = [line for line in lines if line.get("logger") == "uvicorn.access"]
    assert len(access) == 1, lines
    assert access[0]["event"] == "http_access"
    assert access[0]["method"] == "GET"
    assert access[0]["path"] == "/items/7?token=[redacted]"
    assert access[0]["status"] == 200
    assert access[0]["correlation_id"] == "trace-me-please"
    assert access[0]["service"] == "json-logs-probe"
    library = [line for line in lines if line.get("logger") == "a.client.library"]
    assert library[0]["event"] == "fetched 7"
    assert library[0]["correlation_id"] == "trace-me-please"
    # uvicorn's own start-up and shut-down lines are JSON too (json_lines parsed every line).
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    assert "secret-value" not in json.dumps(lines)


def build() -> Any:
    settings = ServiceSettings(
        service_name="json-logs-probe", KGLAB_LOG_JSON=True, KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0
    )
    return create_service_app(settings, title="probe", routers=[router])


async def test_services_sharing_one_process_each_tag_their_own_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As in make dev: the gateway calls a service in its own task, and a service's lifespan
    starts a background task; each line names the service it came from, not the process."""

    def app(name: str, *, calls: httpx.AsyncBaseTransport | None = None) -> Any:
        routes = APIRouter()

        @routes.get("/work")
        async def work() -> dict[str, str]:
            """Work, and ask the other service when there is one."""
            get_logger(__name__).info("working")
            if calls is not None:
                async with httpx.AsyncClient(transport=calls, base_url="http://inner") as inner:
                    (await inner.get("/work")).raise_for_status()
                get_logger(__name__).info("back")
            return {"by": name}

        started = asyncio.Event()

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            async def consume() -> None:
                logging.getLogger("a.consumer").info("consuming")
                started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            yield
            await task

        settings = ServiceSettings(
            service_name=name, KGLAB_LOG_JSON=True, KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0
        )
        return create_service_app(settings, title=name, routers=[routes], lifespan=lifespan)

    inner = app("inner-service")
    outer = app("outer-service", calls=httpx.ASGITransport(app=inner))
    async with (
        inner.router.lifespan_context(inner),
        outer.router.lifespan_context(outer),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://o") as client,
    ):
        assert (await client.get("/work")).json() == {"by": "outer-service"}
    lines = json_lines(capsys.readouterr().err)
    tagged = [(line["event"], line["service"]) for line in lines]
    assert tagged == [
        ("consuming", "inner-service"),
        ("consuming", "outer-service"),
        ("working", "outer-service"),
        ("working", "inner-service"),
        ("back", "outer-service"),
    ]
