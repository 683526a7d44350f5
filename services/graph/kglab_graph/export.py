"""An owner's graph as GraphML, JSON-LD, or the CSV files ``neo4j-admin database import``
loads (adr/0024). Pure functions of a :class:`Subgraph` whose relations carry statements."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from kglab_graph.domain import Relation, Subgraph

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
#: The vocabulary JSON-LD terms expand into (names, types and links; schema.org where it fits).
JSONLD_CONTEXT: dict[str, Any] = {
    "@vocab": "https://kglab.dev/vocab#",
    "name": "http://schema.org/name",
    "source": {"@type": "@id"},
    "target": {"@type": "@id"},
}
#: Neo4j's array delimiter in import CSV (``--array-delimiter`` default).
ARRAY_DELIMITER = ";"


@dataclass(frozen=True, slots=True)
class Edge:
    """One exported edge: the co-occurrence of a pair, or a typed statement directed as the
    sentence says; ``evidence`` names its sentences (``document:chunk:sentence``) and
    ``sentences`` holds the text of the first few (why the edge exists)."""

    source: str
    target: str
    type: str
    weight: int
    verb: str
    evidence: tuple[str, ...]
    sentences: tuple[str, ...]


def _edges(relation: Relation) -> list[Edge]:
    """The co-occurrence edge and one edge per typed statement, each with its evidence."""
    edges = [
        Edge(
            relation.source_id,
            relation.target_id,
            "RELATED_TO",
            relation.weight,
            "",
            relation.evidence,
            # Every statement's sentence names both entities: each is a co-occurrence.
            tuple(dict.fromkeys(text for st in relation.statements for text in st.sentences)),
        )
    ]
    for statement in relation.statements:
        if statement.type != "RELATED_TO":
            edges.append(
                Edge(
                    statement.source_id,
                    statement.target_id,
                    statement.type,
                    len(statement.evidence),
                    statement.verb,
                    statement.evidence,
                    statement.sentences,
                )
            )
    return edges


def to_graphml(graph: Subgraph) -> str:
    ElementTree.register_namespace("", GRAPHML_NS)
    root = ElementTree.Element(f"{{{GRAPHML_NS}}}graphml")
    for key, owner, name, kind in (
        ("d0", "node", "name", "string"),
        ("d1", "node", "type", "string"),
        ("d2", "edge", "type", "string"),
        ("d3", "edge", "weight", "int"),
        ("d4", "edge", "verb", "string"),
        # GraphML has no list type: references joined by ";" (as in the CSV), texts by lines.
        ("d5", "edge", "evidence", "string"),
        ("d6", "edge", "sentences", "string"),
    ):
        ElementTree.SubElement(
            root,
            f"{{{GRAPHML_NS}}}key",
            {"id": key, "for": owner, "attr.name": name, "attr.type": kind},
        )
    body = ElementTree.SubElement(
        root, f"{{{GRAPHML_NS}}}graph", {"id": "kglab", "edgedefault": "directed"}
    )
    for entity in graph.entities:
        node = ElementTree.SubElement(body, f"{{{GRAPHML_NS}}}node", {"id": entity.id})
        for key, value in (("d0", entity.name), ("d1", entity.type)):
            ElementTree.SubElement(node, f"{{{GRAPHML_NS}}}data", {"key": key}).text = value
    for number, found in enumerate(
        edge for relation in graph.relations for edge in _edges(relation)
    ):
        edge = ElementTree.SubElement(
            body,
            f"{{{GRAPHML_NS}}}edge",
            {"id": f"e{number}", "source": found.source, "target": found.target},
        )
        for key, value in (
            ("d2", found.type),
            ("d3", str(found.weight)),
            ("d4", found.verb),
            ("d5", ARRAY_DELIMITER.join(found.evidence)),
            ("d6", "\n".join(_one_line(text) for text in found.sentences)),
        ):
            ElementTree.SubElement(edge, f"{{{GRAPHML_NS}}}data", {"key": key}).text = value
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def to_jsonld(graph: Subgraph) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"@id": f"urn:kglab:entity:{e.id}", "@type": e.type, "name": e.name} for e in graph.entities
    ]
    for number, edge in enumerate(
        edge for relation in graph.relations for edge in _edges(relation)
    ):
        link: dict[str, Any] = {
            "@id": f"urn:kglab:relation:{number}",
            "@type": edge.type,
            "source": f"urn:kglab:entity:{edge.source}",
            "target": f"urn:kglab:entity:{edge.target}",
            "weight": edge.weight,
            "evidence": list(edge.evidence),
            "sentences": list(edge.sentences),
        }
        if edge.verb:
            link["verb"] = edge.verb
        nodes.append(link)
    return {"@context": JSONLD_CONTEXT, "@graph": nodes}


def _one_line(text: str) -> str:
    """Line breaks as spaces: neo4j-admin refuses a field that spans lines unless it is run
    with ``--multiline-fields=true``, and names are whitespace-normalised when extracted."""
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text


def to_neo4j_csv(graph: Subgraph) -> bytes:
    """A zip of ``entities.csv`` and ``relations.csv`` with neo4j-admin's import headers:
    ``neo4j-admin database import full --nodes=entities.csv --relationships=relations.csv``.

    One global ID space (entity ids are unique per owner); fields are quoted the RFC 4180 way
    (a ``"`` doubled), which the importer reads by default; evidence references
    (``document:chunk:sentence``) hold no ``;``, the array delimiter."""
    nodes = io.StringIO()
    writer = csv.writer(nodes, lineterminator="\n")
    writer.writerow(["id:ID", "name", "type", ":LABEL"])
    for entity in graph.entities:
        writer.writerow([entity.id, _one_line(entity.name), _one_line(entity.type), "Entity"])
    links = io.StringIO()
    writer = csv.writer(links, lineterminator="\n")
    writer.writerow([":START_ID", ":END_ID", ":TYPE", "weight:int", "verb", "evidence:string[]"])
    for relation in graph.relations:
        for edge in _edges(relation):
            writer.writerow(
                [
                    edge.source,
                    edge.target,
                    edge.type,
                    edge.weight,
                    _one_line(edge.verb),
                    ARRAY_DELIMITER.join(edge.evidence),
                ]
            )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("entities.csv", nodes.getvalue())
        archive.writestr("relations.csv", links.getvalue())
    return buffer.getvalue()
