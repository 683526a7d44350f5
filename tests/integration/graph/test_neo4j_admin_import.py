"""The CSV export loads with Neo4j's own ``neo4j-admin database import full`` (issue 17), names
with commas, quotes, line breaks and non-ASCII letters included, every row and property kept."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from kglab_graph.domain import Entity, Relation, Statement, Subgraph
from kglab_graph.export import to_neo4j_csv
from tests.neo4j_admin import neo4j_admin_import

NAMES = {
    "ent_a": "Curie, Marie",
    "ent_b": 'The "Radium" Institute',
    "ent_c": "Ecole\nNormale",
    "ent_d": "Łódź; Poland",
}


def tricky_graph() -> Subgraph:
    entities = tuple(
        Entity(id=i, name=name, type="ORG", key=name.lower()) for i, name in NAMES.items()
    )
    founded = Statement(
        source_id="ent_a",
        target_id="ent_b",
        type="FOUNDED",
        verb="found",
        document_id="d1",
        evidence=("d1:d1-00001:0", "d1:d1-00001:2"),
        sentences=("Marie Curie founded the Radium Institute.",),
    )
    relations = (
        Relation("ent_a", "ent_b", 2, ("d1:d1-00001:0",), (founded,)),
        Relation("ent_c", "ent_d", 1, ("d2:d2-00004:1",)),
    )
    return Subgraph(entities=entities, relations=relations)


def test_the_csv_export_loads_with_neo4j_admin_import(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(to_neo4j_csv(tricky_graph()))) as archive:
        archive.extractall(tmp_path)
    rows = list(csv.reader((tmp_path / "entities.csv").open(newline="")))
    assert {row[0]: row[1] for row in rows[1:]} == {
        **NAMES,
        "ent_c": "Ecole Normale",  # one line: no --multiline-fields needed
    }

    imported = neo4j_admin_import(
        tmp_path / "neo4j", tmp_path / "entities.csv", tmp_path / "relations.csv"
    )

    relations = list(csv.reader((tmp_path / "relations.csv").open(newline="")))
    evidence = {(row[0], row[1], row[2]): row[5] for row in relations[1:]}
    assert evidence == {
        ("ent_a", "ent_b", "RELATED_TO"): "d1:d1-00001:0",
        ("ent_c", "ent_d", "RELATED_TO"): "d2:d2-00004:1",
        ("ent_a", "ent_b", "FOUNDED"): "d1:d1-00001:0;d1:d1-00001:2",
    }
    # 4 entities; per pair the co-occurrence edge, and the typed FOUNDED edge.
    assert (imported.nodes, imported.relationships) == (4, 3)
    # Nodes: id, name, type each (12). RELATED_TO: weight and evidence (4; the empty verb is
    # absent). FOUNDED: weight, verb, evidence (3).
    assert imported.properties == 12 + 4 + 3
