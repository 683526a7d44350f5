"""The one place the embedded or the real graph store is chosen, from settings."""

from __future__ import annotations

from kglab_graph.config import GraphSettings
from kglab_graph.store.port import GraphStore
from kglab_graph.store.sqlite import SqliteGraphStore
from kglab_shared.settings import StoreKind


def create_graph_store(settings: GraphSettings) -> tuple[str, GraphStore]:
    """The store and the name its readiness check goes by."""
    if settings.stores is StoreKind.REAL:
        # Imported here: the driver takes about a second to import, which make dev never needs.
        from kglab_graph.store.neo4j import Neo4jGraphStore

        store = Neo4jGraphStore(
            settings.secret("neo4j_url"),
            database=settings.neo4j_database,
            max_pool_size=settings.neo4j_pool_size,
        )
        return "neo4j", store
    return "graph_store", SqliteGraphStore(settings.data_dir / settings.sqlite_file)
