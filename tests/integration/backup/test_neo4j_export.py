"""The Neo4j export round-trips what the graph service stores, temporal values included, and
touches only the owners it is scoped to."""

from __future__ import annotations

import uuid
from datetime import UTC
from pathlib import Path

import pytest
from neo4j.time import DateTime

from deploy.backup.stores import Neo4jStore

pytestmark = pytest.mark.backend("neo4j")


def test_export_and_restore_keep_labels_types_properties_and_other_owners(
    tmp_path: Path, neo4j_url: str
) -> None:
    owner, bystander = f"bk-{uuid.uuid4().hex[:10]}", f"bk-{uuid.uuid4().hex[:10]}"
    store = Neo4jStore(neo4j_url, "neo4j", [owner])
    driver = store._driver()
    at = DateTime(2026, 12, 6, 23, 13, 42, 573344000, tzinfo=UTC)
    try:
        driver.execute_query(
            "CREATE (a:Entity:Person {id: 'a', owner: $o, name: 'Ada', seen: $at, "
            "tags: ['x', 'y']})"
            "-[:RELATED_TO {weight: 3, evidence: ['d1']}]->(b:Entity {id: 'b', owner: $o}), "
            "(c:Chunk {id: 'c', owner: $o, position: 0})-[:MENTIONS {count: 2}]->(a), "
            "(:Entity {id: 'z', owner: $other, name: 'Not mine'})",
            o=owner,
            other=bystander,
            at=at,
        )
        counts = store.dump(tmp_path)
        assert (counts["nodes"], counts["relationships"]) == (3, 2)
        driver.execute_query("MATCH (n {owner: $o}) SET n.name = 'changed'", o=owner)
        driver.execute_query("CREATE (:Entity {id: 'late', owner: $o})", o=owner)

        assert store.restore(tmp_path) == {"nodes": 3, "relationships": 2}

        records, _, _ = driver.execute_query(
            "MATCH (a:Entity {owner: $o, id: 'a'})-[r:RELATED_TO]->(b) "
            "MATCH (c:Chunk {owner: $o})-[m:MENTIONS]->(a) "
            "RETURN labels(a) AS labels, a.name AS name, a.seen AS seen, a.tags AS tags, "
            "r.weight AS weight, b.id AS b, m.count AS count, "
            "a.kglab_restore_id IS NULL AS clean",
            o=owner,
        )
        row = records[0]
        assert sorted(row["labels"]) == ["Entity", "Person"]
        assert row["name"] == "Ada"
        assert row["seen"] == at
        assert row["tags"] == ["x", "y"]
        assert (row["weight"], row["b"], row["count"], row["clean"]) == (3, "b", 2, True)
        late, _, _ = driver.execute_query("MATCH (n {owner: $o, id: 'late'}) RETURN n", o=owner)
        assert late == []
        others, _, _ = driver.execute_query(
            "MATCH (n {owner: $o}) RETURN n.name AS name", o=bystander
        )
        assert [r["name"] for r in others] == ["Not mine"]
    finally:
        driver.execute_query(
            "MATCH (n) WHERE n.owner IN [$o, $other] DETACH DELETE n", o=owner, other=bystander
        )
        driver.close()
