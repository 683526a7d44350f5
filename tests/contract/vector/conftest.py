"""One ``VectorStore`` per test, for each way the Qdrant adapter runs; search caches on memory
and on a real Redis.

``edge`` is the embedded adapter (Qdrant's engine in process, qdrant-edge-py: what make dev runs,
dense vectors stored as turbo8, adr/0029); ``edge-float32``, ``edge-float16`` and ``edge-turbo16``
are the same adapter storing dense vectors in the other datatypes (adr/0025 measured them).
``memory`` and ``path`` are qdrant-client's local mode: they run the *server* adapter's code (its
filters, queries, aliases and migration) at unit speed where no server exists. ``server`` is a real
Qdrant: ``KGLAB_QDRANT_URL`` when set, else a testcontainers Qdrant (compose's image) when Docker
runs, else the test is skipped with the reason. That skip stays a skip under
KGLAB_REQUIRE_BACKENDS=1: no Qdrant server can be had on the development machines and `.ci/run` (no
Docker, no server binary in any reachable registry); the README's status section says so. The
GitHub Actions workflow runs a Qdrant server and fails any skip. Each server test works in
collections of its own (a unique alias), dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient

from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.cache.port import SearchCache
from kglab_vector.cache.redis import RedisSearchCache
from kglab_vector.store.edge import EdgeVectorStore
from kglab_vector.store.qdrant import QdrantVectorStore
from tests.backends import docker_available, server_image
from tests.conftest import unique_name

_server: dict[str, Any] = {}


def qdrant_server_url() -> str:
    url = os.environ.get("KGLAB_QDRANT_URL")
    if url:
        return url
    if "url" in _server:
        return str(_server["url"])
    if docker_available():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer(server_image("qdrant")).with_exposed_ports(6333)
        container.start()
        wait_for_logs(container, "Qdrant HTTP listening", timeout=60)
        host, port = container.get_container_host_ip(), container.get_exposed_port(6333)
        _server.update(container=container, url=f"http://{host}:{port}")
        return str(_server["url"])
    pytest.skip(
        "No Qdrant server: set KGLAB_QDRANT_URL or install Docker for testcontainers. "
        "(Not a failure under KGLAB_REQUIRE_BACKENDS=1: no Qdrant server can run on this "
        "machine; the edge and local-mode variants run the same contract, and the GitHub Actions "
        "workflow runs this one.)"
    )


@pytest.fixture(scope="session", autouse=True)
def _stop_qdrant_container() -> Any:
    yield
    container = _server.pop("container", None)
    if container is not None:
        container.stop()


#: Both adapters of the port (the contract also reads ``space`` after ``open``).
AnyStore = QdrantVectorStore | EdgeVectorStore
StoreFactory = Callable[[], AnyStore]


@pytest.fixture(
    params=["edge", "edge-float32", "edge-float16", "edge-turbo16", "memory", "path", "server"]
)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Makes stores on one backing Qdrant; the test opens them. Local mode and Edge allow one
    client per folder at a time, so a test closes a store before making the next on a path."""
    alias = unique_name("kglab_test_chunks")
    made: list[AnyStore] = []
    shared: list[AsyncQdrantClient] = []
    url = qdrant_server_url() if request.param == "server" else None

    def make() -> AnyStore:
        if request.param.startswith("edge"):
            datatype = request.param.partition("-")[2] or "float32"
            edge = EdgeVectorStore(tmp_path / "edge", alias, candidates=20, dense_datatype=datatype)
            made.append(edge)
            return edge
        if url is not None:
            client = AsyncQdrantClient(url=url, timeout=30)
        elif request.param == "path":
            client = AsyncQdrantClient(path=str(tmp_path / "qdrant"))
        else:
            # ":memory:" lives as long as its client: every store of the test shares one.
            shared.append(shared[0] if shared else AsyncQdrantClient(location=":memory:"))
            store: QdrantVectorStore = SharedClientStore(
                shared[0], alias, local=True, candidates=20
            )
            made.append(store)
            return store
        store = QdrantVectorStore(client, alias, local=url is None, candidates=20)
        made.append(store)
        return store

    yield make
    if url is not None:
        cleaner = AsyncQdrantClient(url=url, timeout=30)
        try:
            for collection in (await cleaner.get_collections()).collections:
                if collection.name.startswith(alias):
                    await cleaner.delete_collection(collection.name)
        finally:
            await cleaner.close()
    for store in made:
        await store.close()  # closing twice is harmless
    if shared:
        await shared[0].close()


class SharedClientStore(QdrantVectorStore):
    """A store whose client outlives it (an in-memory Qdrant shared by a test's stores)."""

    async def close(self) -> None:
        return None


@pytest.fixture
def backend(store_factory: StoreFactory, request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["store_factory"])


CacheFactory = Callable[..., SearchCache]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backend("redis"))])
async def cache_factory(request: pytest.FixtureRequest) -> AsyncIterator[CacheFactory]:
    """Makes search caches (options: ``hot_tracked``, ``ttl_s``) on one backing store; a real
    Redis works under a unique key prefix, deleted afterwards."""
    if request.param == "memory":
        yield lambda **options: InMemorySearchCache(**options)
        return
    from redis.asyncio import Redis

    redis: Redis = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = unique_name("kglab_test_search") + ":"
    try:
        yield lambda **options: RedisSearchCache(redis, prefix=prefix, **options)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
def cache(cache_factory: CacheFactory) -> SearchCache:
    return cache_factory(ttl_s=60)
