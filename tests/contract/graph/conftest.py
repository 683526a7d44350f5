"""One graph store per test, over every adapter; Neo4j tests isolate by a unique owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kglab_graph.store.neo4j import Neo4jGraphStore
from kglab_graph.store.port import GraphStore
from kglab_graph.store.sqlite import SqliteGraphStore
from tests.conftest import unique_name
from tests.graph_owners import delete_owner


@pytest.fixture
def owners() -> list[str]:
    """Owner ids unique to this test (and xdist worker): the isolation unit in a shared Neo4j."""
    return [unique_name("owner") for _ in range(2)]


@pytest.fixture(params=["sqlite", "neo4j"])
async def graph_store(
    request: pytest.FixtureRequest, tmp_path: Path, owners: list[str]
) -> AsyncIterator[GraphStore]:
    if request.param == "sqlite":
        store: GraphStore = SqliteGraphStore(tmp_path / "graph.sqlite3")
        await store.start()
        try:
            yield store
        finally:
            await store.close()
        return
    neo4j = Neo4jGraphStore(request.getfixturevalue("neo4j_url"), max_pool_size=4)
    await neo4j.start()
    try:
        yield neo4j
    finally:
        for owner in owners:
            await delete_owner(neo4j.driver, owner, timeout_s=30)
        await neo4j.close()
