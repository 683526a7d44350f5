"""Entity resolution and relation candidates (no I/O)."""

from __future__ import annotations

import pytest

from kglab_graph.domain import Alias, ChunkRef, entity_id, normalise_key
from kglab_graph.extraction import (
    ChunkText,
    RuleBasedRecogniser,
    SpacyRecogniser,
    apply_aliases,
    declared_acronyms,
    decode_extraction,
    encode_extraction,
    extract_graph,
    load_spacy_recogniser,
    resolve_aliases,
    variant_aliases,
)
from tests.contract.graph.fakes import ScriptedRecogniser, script

CURIE = (
    "Marie Curie worked with Pierre Curie in Paris at the University of Paris. "
    "M. Curie won the Nobel Prize in 1903. Albert Einstein met her in Brussels."
)


@pytest.mark.parametrize(
    ("surface", "key"),
    [
        ("Marie Curie", "marie curie"),
        ("  MARIE   curie. ", "marie curie"),
        ("Marie-Curie", "marie curie"),
        ("Marié Curie", "marie curie"),
        ("The University of Paris", "university of paris"),
    ],
)
def test_normalised_keys_ignore_case_punctuation_and_whitespace(surface: str, key: str) -> None:
    assert normalise_key(surface) == key


def test_ids_are_stable_per_owner_and_key() -> None:
    assert entity_id("u1", "marie curie") == entity_id("u1", "marie curie")
    assert entity_id("u1", "marie curie") != entity_id("u2", "marie curie")


def test_an_initial_resolves_to_the_one_full_name_the_document_has() -> None:
    assert resolve_aliases(["marie curie", "m curie", "paris"]) == {"m curie": "marie curie"}


def test_an_ambiguous_initial_stays_apart() -> None:
    # "M. Curie" could be Marie or Maurice: the document does not say which.
    assert resolve_aliases(["marie curie", "maurice curie", "m curie"]) == {}
    assert resolve_aliases(["pierre curie", "m curie"]) == {}


def test_variants_merge_and_the_commonest_spelling_names_the_entity() -> None:
    graph = extract_graph(
        "u1",
        "d1",
        [
            ChunkText(
                "c1", 0, script("Marie Curie/PERSON", "MARIE CURIE./PERSON", "Marie  Curie/PERSON")
            )
        ],
        ScriptedRecogniser(),
    )
    assert [(e.name, e.key) for e in graph.entities] == [("Marie Curie", "marie curie")]
    assert [(m.entity_key, m.count) for m in graph.mentions] == [("marie curie", 3)]


def test_relations_come_from_sentences_weighted_by_evidence() -> None:
    graph = extract_graph(
        "u1",
        "d1",
        [
            ChunkText("c1", 0, script("A One/X; B Two/X", "A One/X; B Two/X; C Three/X")),
            ChunkText("c2", 1, script("A One/X", "B Two/X")),  # different sentences: no relation
        ],
        ScriptedRecogniser(),
    )
    relations = {(r.source_key, r.target_key): r.evidence for r in graph.relations}
    assert relations == {
        ("a one", "b two"): ("d1:c1:0", "d1:c1:1"),
        ("a one", "c three"): ("d1:c1:1",),
        ("b two", "c three"): ("d1:c1:1",),
    }


def test_rule_based_recogniser_finds_capitalised_spans_and_resolves_initials() -> None:
    graph = extract_graph("u1", "d1", [ChunkText("c1", 0, CURIE)], RuleBasedRecogniser())
    names = {e.name for e in graph.entities}
    assert {"Marie Curie", "Pierre Curie", "University of Paris", "Albert Einstein"} <= names
    assert "M. Curie" not in names
    assert "The" not in names
    mentions = {m.entity_key: m.count for m in graph.mentions}
    assert mentions["marie curie"] == 2


@pytest.fixture(scope="module")
def spacy_recogniser() -> SpacyRecogniser:
    return load_spacy_recogniser()


def test_spacy_recognises_typed_entities_and_resolves_initials(
    spacy_recogniser: SpacyRecogniser,
) -> None:
    graph = extract_graph("u1", "d1", [ChunkText("c1", 0, CURIE)], spacy_recogniser)
    by_name = {e.name: e.type for e in graph.entities}
    assert by_name["Marie Curie"] == "PERSON"
    assert by_name["Albert Einstein"] == "PERSON"
    assert by_name["Brussels"] == "GPE"
    assert "1903" not in by_name  # dates are not graph entities
    assert "M. Curie" not in by_name
    relations = {(r.source_key, r.target_key) for r in graph.relations}
    assert ("marie curie", "nobel prize") in relations  # from "M. Curie won the Nobel Prize"
    assert ("albert einstein", "brussels") in relations


def test_declared_acronyms_need_matching_initials() -> None:
    texts = [
        "Richard Stallman founded the Free Software Foundation (FSF) in 1985.",
        "It runs on the Java Virtual Machine (JVM). Files use Unicode (ISO).",
    ]
    assert declared_acronyms(texts) == {
        "fsf": "free software foundation",
        "jvm": "java virtual machine",
    }


def test_variants_merge_into_the_owners_existing_spelling_and_records_are_respected() -> None:
    graph = extract_graph(
        "u1",
        "d1",
        [ChunkText("c1", 0, script("Node JS/SOFTWARE; FSF/ORG", "Free Software Foundation/ORG"))],
        ScriptedRecogniser(),
    )
    text = "The Free Software Foundation (FSF) likes Node JS."
    found = variant_aliases(graph, [text], {"nodejs": ["nodejs"]}, recorded=set())
    assert {(a.alias_key, a.canonical_key) for a in found} == {
        ("fsf", "free software foundation"),
        ("node js", "nodejs"),
    }
    # A key with a record (a merge undone) is left alone.
    assert [a.alias_key for a in variant_aliases(graph, [text], {}, recorded={"fsf"})] == []


def test_applying_aliases_rekeys_mentions_and_relations_and_drops_self_relations() -> None:
    graph = extract_graph(
        "u1",
        "d1",
        [ChunkText("c1", 0, script("FSF/ORG; Free Software Foundation/ORG; Boston/GPE"))],
        ScriptedRecogniser(),
    )
    aliases = {"fsf": Alias("fsf", "free software foundation", "declared")}
    merged = apply_aliases("u1", graph, aliases)
    assert [e.key for e in merged.entities] == ["boston", "free software foundation"]
    assert {(m.entity_key, m.count) for m in merged.mentions} == {
        ("boston", 1),
        ("free software foundation", 2),
    }
    assert [(r.source_key, r.target_key) for r in merged.relations] == [
        ("boston", "free software foundation")
    ]
    # Kept apart: nothing changes.
    apart = {"fsf": Alias("fsf", "fsf", "undone")}
    assert apply_aliases("u1", graph, apart) == graph
    # The saved form reads back the same.
    title, refs, decoded = decode_extraction(
        encode_extraction("T", [ChunkRef("c1", 0, "H")], graph)
    )
    assert (title, refs, decoded) == ("T", [ChunkRef("c1", 0, "H")], graph)
