"""The operational surface every service shares: errors, ids, health, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from kglab_shared.app import create_service_app
from kglab_shared.errors import NotFoundError
from kglab_shared.identity import IDENTITY_HEADER, CurrentIdentity, Identity, IdentityCodec
from kglab_shared.settings import ServiceSettings

router = APIRouter()


class Item(BaseModel):
    name: str
    size: int


@router.post("/items")
async def create_item(item: Item) -> Item:
    """Create an item."""
    return item


@router.get("/items/{item_id}")
async def get_item(item_id: str) -> dict[str, str]:
    """Read an item."""
    raise NotFoundError(f"There is no item {item_id}.")


@router.get("/boom")
async def boom() -> None:
    """Fail unexpectedly."""
    raise RuntimeError("database password is hunter2")


@router.get("/db/{failure}")
async def database_failure(failure: str) -> None:
    """Fail the way a database driver does."""
    if failure == "pool":
        raise PoolTimeoutError("QueuePool limit of size 20 overflow 0 reached")
    raise DBAPIError(
        "SELECT 1", {}, ConnectionError("server closed"), connection_invalidated=failure == "lost"
    )


@router.get("/mine")
async def mine(identity: CurrentIdentity) -> dict[str, str]:
    """Return the caller."""
    return {"user_id": identity.user_id}


def build(checks: dict[str, object] | None = None) -> FastAPI:
    settings = ServiceSettings(service_name="example")
    app = create_service_app(settings, title="example", routers=[router])
    app.state.identity_codec = IdentityCodec(settings.internal_token_secret.get_secret_value())
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://test",
        ) as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_request_id_is_echoed_or_created(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    created = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert created.headers["X-Request-ID"] != "bad id\nwith newline"
    assert len(created.headers["X-Request-ID"]) == 32


async def test_domain_error_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/42", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "There is no item 42."
    assert body["status"] == 404
    assert body["correlation_id"] == "req-1"


async def test_validation_error_is_readable(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "x", "size": "big"})
    assert response.status_code == 422
    body = response.json()
    assert "'size'" in body["detail"]
    missing = await client.post("/items", json={"size": 1})
    assert missing.json()["detail"] == "'name' is required."
    broken = await client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert "JSON" in broken.json()["detail"]


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "There is nothing at /nowhere."
    wrong = await client.delete("/items")
    assert wrong.status_code == 405
    assert "DELETE is not allowed" in wrong.json()["detail"]


async def test_unexpected_error_hides_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert "hunter2" not in response.text
    assert body["correlation_id"]
    assert "correlation id" in body["detail"]


async def test_identity_is_required_and_verified(client: httpx.AsyncClient) -> None:
    assert (await client.get("/mine")).status_code == 401
    forged = IdentityCodec("f" * 32).mint(Identity("someone"))
    assert (await client.get("/mine", headers={IDENTITY_HEADER: forged})).status_code == 401
    codec: IdentityCodec = client.app.state.identity_codec  # type: ignore[attr-defined]
    ok = await client.get("/mine", headers={IDENTITY_HEADER: codec.mint(Identity("u-9"))})
    assert ok.json() == {"user_id": "u-9"}


async def test_ready_names_each_dependency(client: httpx.AsyncClient) -> None:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    app.state.readiness.timeout_s = 0.2

    async def up() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError("connection refused")

    async def hangs() -> None:
        await asyncio.sleep(5)

    app.state.readiness.add("postgres", up)
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["dependencies"]["postgres"]["status"] == "up"

    app.state.readiness.add("redis", down)
    app.state.readiness.add("neo4j", hangs)
    not_ready = await client.get("/ready")
    assert not_ready.status_code == 503
    dependencies = not_ready.json()["dependencies"]
    assert dependencies["redis"]["status"] == "down"
    assert "connection refused" in dependencies["redis"]["detail"]
    assert "No answer within 0.2 s" in dependencies["neo4j"]["detail"]


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/items/1")
    await client.get("/items/2")
    text = (await client.get("/metrics")).text
    assert 'route="/items/{item_id}"' in text
    assert 'route="/items/1"' not in text


async def test_an_in_process_call_leaves_the_callers_request_id_alone(
    client: httpx.AsyncClient,
) -> None:
    # In make dev a service is called through httpx's ASGI transport, in the caller's task:
    # the callee's request id must not replace (or clear) the caller's.
    from kglab_shared.correlation import get_correlation_id, set_correlation_id

    set_correlation_id("caller-request")
    try:
        response = await client.get("/health", headers={"X-Request-ID": "callee-request"})
        assert response.headers["X-Request-ID"] == "callee-request"
        assert get_correlation_id() == "caller-request"
    finally:
        set_correlation_id(None)


@pytest.mark.parametrize(
    ("failure", "says"),
    [("lost", "connection to the database was lost"), ("pool", "database is busy")],
)
async def test_a_database_out_of_reach_is_a_readable_503(
    client: httpx.AsyncClient, failure: str, says: str
) -> None:
    response = await client.get(f"/db/{failure}")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["Retry-After"] == "1"
    assert says in response.json()["detail"]


async def test_any_other_database_error_stays_an_opaque_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/db/syntax")
    assert response.status_code == 500
    assert "SELECT" not in response.text


async def test_startup_heap_is_frozen_out_of_the_collector() -> None:
    """After start-up, what start-up allocated no longer costs full collections: the app
    object is in the collector's permanent generation (gc.freeze), so a gen-2 pass under load
    does not walk it."""
    import gc

    gc.unfreeze()
    try:
        app = build()
        gc.collect()  # a survivor of a full collection lands in generation 2 ...
        assert any(obj is app for obj in gc.get_objects(generation=2))
        assert gc.get_freeze_count() == 0
        async with app.router.lifespan_context(app):  # ... unless frozen
            assert gc.get_freeze_count() > 0
            assert not any(obj is app for obj in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
