"""Removing everything of a test's (or a benchmark's) owners from a Neo4j server.

The service never removes a whole owner; tests and benchmarks do, after themselves, with
unique owner ids on a shared server. Bounded batches, so a big benchmark graph does not
need one huge transaction.
"""

from __future__ import annotations

import time

from neo4j import AsyncDriver


async def delete_owner(
    driver: AsyncDriver,
    owner: str,
    *,
    database: str = "neo4j",
    batch: int = 10_000,
    timeout_s: float = 120,
) -> int:
    """Remove every node of ``owner``; return how many."""
    removed = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records, _, _ = await driver.execute_query(
            "MATCH (n {owner: $owner}) WITH n LIMIT $batch DETACH DELETE n "
            "RETURN count(*) AS removed",
            {"owner": owner, "batch": batch},
            database_=database,
        )
        count = int(records[0]["removed"])
        removed += count
        if count < batch:
            return removed
    raise TimeoutError(f"Deleting the nodes of {owner!r} took longer than {timeout_s} s.")
