"""A service app with tracing on, run in a process of its own by the tracing tests (a tracer
provider is installed once per process, so the test process itself stays untraced).

One request does what a service's request does: SQL (SQLite here, through SQLAlchemy), and with
``PROBE_REDIS_URL`` and ``PROBE_RABBITMQ_URL`` a Redis call and a message published through
aio-pika (to a queue of its own, deleted with its connection). The spans go to the OTLP/HTTP
endpoint in ``PROBE_ENDPOINT``; the process flushes them before it exits.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from fastapi import APIRouter, Request
from opentelemetry import trace
from sqlalchemy import text

from kglab_shared.app import create_service_app
from kglab_shared.settings import ServiceSettings
from kglab_shared.sql import create_engine

router = APIRouter()


@router.get("/items/{item_id}")
async def read_item(item_id: str, request: Request) -> dict[str, Any]:
    """Read an item, touching every kind of client."""
    async with request.app.state.engine.connect() as connection:
        row = (await connection.execute(text("SELECT 41 + 1"))).scalar_one()
    redis_url = os.environ.get("PROBE_REDIS_URL")
    if redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        try:
            await client.ping()
        finally:
            await client.aclose()
    rabbitmq_url = os.environ.get("PROBE_RABBITMQ_URL")
    if rabbitmq_url:
        import aio_pika

        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await channel.default_exchange.publish(
                aio_pika.Message(body=b"probe"), routing_key=queue.name
            )
    return {"id": item_id, "answer": row}


async def main() -> None:
    settings = ServiceSettings(
        service_name="trace-probe",
        KGLAB_OTEL_EXPORTER="otlp",
        KGLAB_OTEL_ENDPOINT=os.environ["PROBE_ENDPOINT"],
        KGLAB_DEPENDENCY_CHECK_INTERVAL_S=0,
    )
    app = create_service_app(settings, title="probe", routers=[router])
    # Created after the app, as a lifespan creates it, with the services' own helper.
    app.state.engine = create_engine("sqlite+aiosqlite:///:memory:")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as c,
    ):
        response = await c.get("/items/7")
        response.raise_for_status()
    await app.state.engine.dispose()
    provider: Any = trace.get_tracer_provider()
    provider.force_flush()
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
