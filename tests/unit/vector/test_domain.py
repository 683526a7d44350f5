"""Point ids, query validation, expansions, snippets and cache keys."""

from __future__ import annotations

import json

import pytest

from kglab_vector.cache.port import query_key
from kglab_vector.domain import (
    MAX_QUERY_CHARS,
    ChunkRecord,
    InvalidSearchError,
    SearchFilters,
    SearchMode,
    SearchQuery,
    parse_expand,
    point_id,
    snippet,
    validate_query,
)


def test_point_ids_are_deterministic_and_do_not_collide_across_parts() -> None:
    assert point_id("alice", "doc", "c1") == point_id("alice", "doc", "c1")
    assert point_id("alice", "doc", "c1") != point_id("bob", "doc", "c1")
    assert point_id("a/b", "c", "d") != point_id("a", "b/c", "d")
    record = ChunkRecord("alice", "doc", "c1", 0, "text", "Title")
    assert record.point_id == point_id("alice", "doc", "c1")


def test_passage_puts_title_and_heading_before_the_text() -> None:
    record = ChunkRecord("o", "d", "c", 0, "Body.", "Velmora", heading="Economy")
    assert record.passage == "Velmora\nEconomy\nBody."
    assert ChunkRecord("o", "d", "c", 0, "Body.", "T", heading="T").passage == "T\nBody."


def test_queries_are_trimmed_and_bounded() -> None:
    assert validate_query("  salt \n mining ") == "salt mining"
    with pytest.raises(InvalidSearchError, match="empty"):
        validate_query(" \t ")
    with pytest.raises(InvalidSearchError, match=f"limit is {MAX_QUERY_CHARS}"):
        validate_query("x" * (MAX_QUERY_CHARS + 1))


def test_unknown_expansions_are_refused_readably() -> None:
    assert parse_expand(None) == frozenset()
    assert parse_expand(["", " "]) == frozenset()
    assert parse_expand(["graph"]) == frozenset({"graph"})
    assert parse_expand(["graph,graph"]) == frozenset({"graph"})
    with pytest.raises(InvalidSearchError, match=r"'pictures'.*supported values: graph"):
        parse_expand(["pictures"])
    with pytest.raises(InvalidSearchError, match="'a', 'b'"):
        parse_expand(["b,a"])


def test_snippet_keeps_short_text_and_windows_long_text_around_a_query_word() -> None:
    assert snippet("  Short text. ", "anything") == "Short text."
    text = " ".join(["filler"] * 100) + " the salt mines of Velmora " + " ".join(["end"] * 100)
    cut = snippet(text, "velmora salt", max_chars=80)
    assert "Velmora" in cut
    assert cut.startswith("…")
    assert cut.endswith("…")
    assert len(cut) <= 82
    assert snippet(text, "zzz", max_chars=50).startswith("filler")


def test_cache_key_ignores_case_and_spacing_but_not_what_changes_the_answer() -> None:
    def key(text: str, **kwargs: object) -> str:
        return query_key(SearchQuery(owner_id="o", text=text, **kwargs).cache_fields())  # type: ignore[arg-type]

    assert key("Salt  Mining") == key("salt mining")
    assert key("salt") != key("salt", mode=SearchMode.DENSE)
    assert key("salt") != key("salt", limit=5)
    assert key("salt") != key("salt", filters=SearchFilters(document_id="d"))
    assert key("salt") != key("salt", filters=SearchFilters(media_type="text/plain"))


def test_a_query_comes_back_from_its_cache_fields() -> None:
    # Refresh-ahead runs hot queries again from what the cache stored of them.
    query = SearchQuery(
        owner_id="alice",
        text="Salt  Shafts",
        mode=SearchMode.SPARSE,
        limit=7,
        filters=SearchFilters(document_id="doc-1", media_type="application/pdf"),
        expand=frozenset({"graph"}),
    )
    fields = json.loads(json.dumps(query.cache_fields()))
    again = SearchQuery.from_cache_fields("alice", fields)
    assert again.cache_fields() == query.cache_fields()
    assert again.text == "salt shafts"
    assert again.filters == query.filters


@pytest.mark.parametrize(
    "change",
    [
        {"q": ""},
        {"q": "x" * 513},
        {"q": 5},
        {"limit": 0},
        {"limit": 51},
        {"limit": "10"},
        {"mode": "fuzzy"},
        {"document_id": ["a"]},
        {"expand": ["everything"]},
        {"expand": "graph"},
    ],
)
def test_a_damaged_cache_description_is_refused(change: dict[str, object]) -> None:
    fields = {**SearchQuery(owner_id="alice", text="salt").cache_fields(), **change}
    with pytest.raises(ValueError, match=r"."):
        SearchQuery.from_cache_fields("alice", fields)


def test_a_description_missing_a_field_is_refused() -> None:
    fields = SearchQuery(owner_id="alice", text="salt").cache_fields()
    del fields["mode"]
    with pytest.raises(ValueError, match="not a search query description"):
        SearchQuery.from_cache_fields("alice", fields)
