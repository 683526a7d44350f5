"""The whole system composed as ``make dev`` composes it, driven through the gateway."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.isolation import fresh_postgres_database

_RUN = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "run.py"


def _load_composition() -> object:
    spec = importlib.util.spec_from_file_location("kglab_dev_run", _RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.backend("postgres"))])
async def gateway_app(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """The system as ``make dev`` composes it: on embedded stores, or on the real servers
    (PostgreSQL, Redis, Neo4j, MongoDB wire, clamd; a fresh database or prefix per test)."""
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "development")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    monkeypatch.setenv("KGLAB_AUTH_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
    monkeypatch.setenv("KGLAB_AUTH_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
    # Off unless a test asks for the cache (revocation must then get through it).
    cache = request.node.get_closest_marker("api_key_cache_s")
    monkeypatch.setenv("KGLAB_GATEWAY_API_KEY_CACHE_S", str(cache.args[0]) if cache else "0")
    async with AsyncExitStack() as stack:
        if request.param == "real":
            server = request.getfixturevalue("postgres_url")
            database = await stack.enter_async_context(fresh_postgres_database(server))
            prefix = f"test:{uuid.uuid4().hex}:"
            mongo_prefix = f"kglab_e2e_{uuid.uuid4().hex[:12]}"
            monkeypatch.setenv("KGLAB_STORES", "real")
            monkeypatch.setenv("KGLAB_POSTGRES_URL", database)
            monkeypatch.setenv("KGLAB_REDIS_URL", request.getfixturevalue("redis_url"))
            monkeypatch.setenv("KGLAB_NEO4J_URL", request.getfixturevalue("neo4j_url"))
            monkeypatch.setenv("KGLAB_MONGO_URL", request.getfixturevalue("mongo_url"))
            monkeypatch.setenv("KGLAB_CLAMD_URL", request.getfixturevalue("clamd_url"))
            for service in ("AUTH", "GATEWAY"):
                monkeypatch.setenv(f"KGLAB_{service}_REDIS_KEY_PREFIX", prefix)
            monkeypatch.setenv("KGLAB_VECTOR_REDIS_PREFIX", f"{prefix}vector:")
            # Databases of their own, dropped afterwards; Neo4j data is scoped by the users'
            # ids, which are fresh per test.
            monkeypatch.setenv("KGLAB_DOCUMENT_MONGO_DATABASE", f"{mongo_prefix}_doc")
            monkeypatch.setenv("KGLAB_INGESTION_MONGO_DATABASE", f"{mongo_prefix}_ing")
            stack.push_async_callback(
                _drop_mongo_databases,
                request.getfixturevalue("mongo_url"),
                [f"{mongo_prefix}_doc", f"{mongo_prefix}_ing"],
            )
            # No Qdrant server exists on this machine: the vector service keeps Qdrant Edge
            # (Qdrant's engine in process), with the Redis answer cache.
            monkeypatch.setenv("KGLAB_VECTOR_STORES", "embedded")
            monkeypatch.setenv("KGLAB_VECTOR_CACHE", "redis")
        else:
            monkeypatch.setenv("KGLAB_STORES", "embedded")
            # make dev scans in process with the project's signatures, whatever is exported.
            monkeypatch.delenv("KGLAB_CLAMD_URL", raising=False)
        app: FastAPI = _load_composition().build()  # type: ignore[attr-defined]
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield app


async def _drop_mongo_databases(url: str, names: list[str]) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        for name in names:
            await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
async def gateway(gateway_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
