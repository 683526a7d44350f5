"""The graph store port and its adapters (Neo4j, SQLite)."""
