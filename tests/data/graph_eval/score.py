"""Scores a graph extractor against ``passages.jsonl`` (adr/0024).

Each passage is extracted as a one-chunk document with :func:`extract_graph`, exactly as the
graph service does. Matching is by entity key (:func:`normalise_key`, the key the graph stores),
per passage:

- ``entities``: the set of keys found against the set of keys annotated (names only);
- ``typed_entities``: (key, type) pairs; the extractor's type is mapped into the evaluation's
  vocabulary with :data:`TYPE_MAP` (spaCy's GPE, LOC and FAC are one LOCATION);
- ``relations``: (head key, type, tail key) triples of the extractor's typed relations
  (co-occurrence is not a typed relation and counts for nothing here);
- ``pairs``: unordered entity pairs of any relation, co-occurrence included: whether two things
  the text relates end up joined at all.

Counts are summed over passages (micro-averaged), overall and per text kind.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kglab_graph.domain import normalise_key
from kglab_graph.extraction import ChunkText, EntityRecogniser, extract_graph

PASSAGES = Path(__file__).resolve().parent / "passages.jsonl"

#: Extractor types in the evaluation's vocabulary (anything else is kept as it is).
TYPE_MAP = {"GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "LAW": "STANDARD"}


def load_passages(path: Path = PASSAGES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, found: set[Any], expected: set[Any]) -> None:
        self.tp += len(found & expected)
        self.fp += len(found - expected)
        self.fn += len(expected - found)

    def scores(self) -> dict[str, float | int]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


METRICS = ("entities", "typed_entities", "relations", "pairs")


@dataclass
class Report:
    counts: dict[str, dict[str, Counts]] = field(
        default_factory=lambda: defaultdict(lambda: {m: Counts() for m in METRICS})
    )
    #: Wrong entities found (key, type), for reading what the extractor gets wrong.
    false_entities: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            kind: {metric: counts.scores() for metric, counts in by_metric.items()}
            for kind, by_metric in sorted(self.counts.items())
        }


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def score(recogniser: EntityRecogniser, passages: Iterable[dict[str, Any]] | None = None) -> Report:
    report = Report()
    for passage in passages if passages is not None else load_passages():
        graph = extract_graph(
            "eval", passage["id"], [ChunkText(f"{passage['id']}-0", 0, passage["text"])], recogniser
        )
        found_keys = {e.key for e in graph.entities}
        found_typed = {(e.key, TYPE_MAP.get(e.type, e.type)) for e in graph.entities}
        expected_typed = {(normalise_key(e["text"]), e["type"]) for e in passage["entities"]}
        expected_keys = {key for key, _ in expected_typed}
        found_relations = {
            (r.source_key, r.type, r.target_key) for r in graph.relations if r.type != "RELATED_TO"
        }
        expected_relations = {
            (normalise_key(r["head"]), r["type"], normalise_key(r["tail"]))
            for r in passage["relations"]
        }
        found_pairs = {_pair(r.source_key, r.target_key) for r in graph.relations}
        expected_pairs = {_pair(h, t) for h, _, t in expected_relations}
        for kind in ("all", passage["kind"]):
            counts = report.counts[kind]
            counts["entities"].add(found_keys, expected_keys)
            counts["typed_entities"].add(found_typed, expected_typed)
            counts["relations"].add(found_relations, expected_relations)
            counts["pairs"].add(found_pairs, expected_pairs)
        report.false_entities.extend(
            (passage["id"], key, label) for key, label in sorted(found_typed - expected_typed)
        )
    return report
