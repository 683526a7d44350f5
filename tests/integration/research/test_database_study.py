"""The databases study of the research brief (``research/databases.py``) on the real servers:
every store answers every query right on a small set of records, and leaves nothing behind on
the shared server (its scratch database, nodes or keys are gone afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from neo4j import AsyncGraphDatabase
from pymongo import AsyncMongoClient
from sqlalchemy.engine import make_url

from research.databases import (
    Budget,
    MongoStore,
    Neo4jStore,
    PostgresStore,
    RedisStore,
    Store,
    make_records,
    measure,
    neo4j_address,
)


async def _postgres_left(url: str, store: Store) -> int:
    assert isinstance(store, PostgresStore)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        found = await admin.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", store.database
        )
    finally:
        await admin.close()
    return int(found)


async def _mongo_left(url: str, store: Store) -> int:
    assert isinstance(store, MongoStore)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        return int(store.database_name in await client.list_database_names())
    finally:
        await client.close()


async def _neo4j_left(url: str, store: Store) -> int:
    assert isinstance(store, Neo4jStore)
    address, auth = neo4j_address(url)
    driver = AsyncGraphDatabase.driver(address, auth=auth)
    try:
        records, _, _ = await driver.execute_query(
            "MATCH (n) WHERE (n:KglabStudyOwner OR n:KglabStudyDocument OR n:KglabStudyChunk)"
            " AND n.run = $run RETURN count(n) AS left",
            run=store.run,
        )
        return int(records[0]["left"])
    finally:
        await driver.close()


async def _redis_left(url: str, store: Store) -> int:
    assert isinstance(store, RedisStore)
    client = aioredis.Redis.from_url(url)
    try:
        return len([key async for key in client.scan_iter(match=f"{store.prefix}*")])
    finally:
        await client.aclose()


STORES: dict[
    str,
    tuple[str, Callable[[str, str], Store], Callable[[str, Store], Awaitable[int]]],
] = {
    "postgres": ("postgres_url", PostgresStore, _postgres_left),
    "mongo": ("mongo_url", MongoStore, _mongo_left),
    "neo4j": ("neo4j_url", Neo4jStore, _neo4j_left),
    "redis": ("redis_url", RedisStore, _redis_left),
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.backend(name)) for name in STORES]
)
async def test_every_query_right_and_nothing_left_behind(
    name: str, request: pytest.FixtureRequest
) -> None:
    fixture, make, left = STORES[name]
    url = request.getfixturevalue(fixture)
    tag = f"t{uuid.uuid4().hex[:9]}"
    store = make(url, tag)
    await store.open()
    try:
        [result] = await measure([store], make_records(300, 10, tag), Budget(20, 2, 10.0))
    finally:
        await store.close()
    operations = result["operations"]
    for key in ("get", "page", "complex", "update", "delete"):
        assert operations[key]["correct"], (key, operations[key])
        assert operations[key]["samples"] >= 2, (key, operations[key])
    if name == "redis":
        assert operations["complex_ad_hoc"]["correct"]
    assert await left(url, store) == 0
