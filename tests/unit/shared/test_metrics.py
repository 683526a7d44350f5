"""What Prometheus scrapes from every service (issue 15): the process's memory, CPU and open
files, requests by route template, each dependency's state; on a port of its own that needs
no token (KGLAB_METRICS_PORT), which closes with the service."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from kglab_shared.app import create_service_app
from kglab_shared.metrics import REGISTRY
from kglab_shared.settings import ServiceSettings
from tests.waiting import wait_until

router = APIRouter()


@router.get("/items/{item_id}")
async def read_item(item_id: str) -> dict[str, str]:
    """Read an item."""
    return {"id": item_id}


def samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


async def test_the_metrics_port_serves_process_request_and_dependency_series() -> None:
    settings = ServiceSettings(
        service_name="metrics-probe",
        KGLAB_METRICS_PORT=0,
        KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0.05,
    )
    app = create_service_app(settings, title="probe", routers=[router])

    async def store_down() -> None:
        raise ConnectionRefusedError("connection refused")

    async with app.router.lifespan_context(app):
        app.state.readiness.add("store", store_down)
        port = app.state.metrics_server.port
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://probe"
        ) as client:
            item = await client.get("/items/42")
        assert item.status_code == 200
        # The service names the template that answered, for the gateway's label.
        assert item.headers["x-kglab-route"] == "/items/{item_id}"

        def dependency_state() -> float | None:
            return REGISTRY.get_sample_value(
                "kglab_dependency_up", {"service": "metrics-probe", "dependency": "store"}
            )

        async def watched() -> bool:
            return dependency_state() == 0.0

        await wait_until(watched, timeout_s=10, step_s=0.05)

        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        text = scraped.text
        for series in (
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
        ):
            value = samples(text, series)
            assert value, f"{series} is not scraped"
            assert float(value[0].split()[-1]) > 0, value
        requests = samples(text, "kglab_http_requests_total{")
        assert any(
            'service="metrics-probe"' in line and 'route="/items/{item_id}"' in line
            for line in requests
        ), requests
        assert not any('route="/items/42"' in line for line in requests)
        assert 'kglab_dependency_up{dependency="store",service="metrics-probe"} 0.0' in text
    # The port closes with the service.
    async with httpx.AsyncClient() as scraper:
        with pytest.raises(httpx.ConnectError):
            await scraper.get(f"http://127.0.0.1:{port}/metrics")


async def test_without_a_metrics_port_none_is_opened() -> None:
    app = create_service_app(ServiceSettings(service_name="no-port"), title="probe")
    async with app.router.lifespan_context(app):
        assert not hasattr(app.state, "metrics_server")
