"""Chunks are bounded, follow headings, keep tables and paragraphs whole, and overlap."""

from __future__ import annotations

import itertools
import random

import pytest

from kglab_ingestion.extraction import Section, TextChunk, chunk_sections
from tests.data.generate import prose


def overlap_between(previous: str, following: str) -> str:
    """The longest start of ``following`` that ``previous`` ends with."""
    for size in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:size]):
            return following[:size]
    return ""


def test_small_sections_under_one_heading_share_a_chunk() -> None:
    chunks = chunk_sections(
        [Section("Intro", "First paragraph."), Section("Intro", "Second paragraph.")]
    )
    assert chunks == [TextChunk(0, "First paragraph.\n\nSecond paragraph.", "Intro")]


def test_chunks_never_span_two_headings() -> None:
    chunks = chunk_sections(
        [
            Section("A", "Under A."),
            Section("B", "Under B."),
            Section("B", "Also under B."),
            Section(None, "No heading."),
        ]
    )
    assert [(c.position, c.heading, c.text) for c in chunks] == [
        (0, "A", "Under A."),
        (1, "B", "Under B.\n\nAlso under B."),
        (2, None, "No heading."),
    ]


@pytest.mark.parametrize(("max_chars", "overlap"), [(1500, 200), (400, 80), (120, 0), (60, 20)])
def test_every_chunk_is_within_the_bound_and_nothing_is_lost(max_chars: int, overlap: int) -> None:
    rng = random.Random(max_chars)
    sections = [
        Section(f"H{i % 3}", prose(rng, rng.randint(1, 30)), "paragraph") for i in range(12)
    ]
    sections.append(Section("H9", "x" * 5000, "paragraph"))  # one unbroken "word"
    chunks = chunk_sections(sections, max_chars=max_chars, overlap_chars=overlap)
    assert all(0 < len(c.text) <= max_chars for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    words = [w for s in sections for w in s.text.split()]
    for word in set(words):
        if len(word) < max_chars // 2:
            assert any(word in c.text for c in chunks)
    assert sum(c.text.count("x") for c in chunks if c.heading == "H9") >= 5000


def test_long_paragraphs_split_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} says something about rivers." for i in range(60)]
    chunks = chunk_sections(
        [Section("Long", " ".join(sentences))], max_chars=500, overlap_chars=100
    )
    assert len(chunks) > 4
    for previous, following in itertools.pairwise(chunks):
        shared = overlap_between(previous.text, following.text)
        assert 20 <= len(shared) <= 100
        assert shared.startswith("Sentence number")  # the overlap starts at a sentence
        assert previous.text.endswith(".")  # and chunks end at one
    joined = " ".join(chunks[0].text.split())
    assert joined.startswith(sentences[0])


def test_overlap_stays_inside_one_heading() -> None:
    text = " ".join(f"Alpha sentence {i} is here." for i in range(40))
    chunks = chunk_sections(
        [Section("One", text), Section("Two", "Beta starts fresh.")],
        max_chars=300,
        overlap_chars=60,
    )
    assert chunks[-1] == TextChunk(len(chunks) - 1, "Beta starts fresh.", "Two")


def test_a_table_that_fits_is_never_split() -> None:
    table = "\n".join(f"Row {i} | value {i}" for i in range(20))  # about 340 characters
    chunks = chunk_sections(
        [Section("T", "Intro " * 30, "paragraph"), Section("T", table, "table")],
        max_chars=400,
        overlap_chars=50,
    )
    assert any(table in c.text for c in chunks)  # whole, after the overlap


def test_a_long_table_splits_between_rows_and_repeats_its_header() -> None:
    rows = ["Name | Count"] + [f"Item {i:03d} | {i * 7}" for i in range(200)]
    chunks = chunk_sections(
        [Section("T", "\n".join(rows), "table")], max_chars=300, overlap_chars=50
    )
    assert len(chunks) > 5
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[0] == "Name | Count"
        assert all(line in rows for line in lines)  # whole rows only
    body = [line for c in chunks for line in c.text.split("\n")[1:]]
    assert body == rows[1:]


def test_code_and_lists_split_between_lines() -> None:
    items = "\n".join(f"- item {i} with a few words" for i in range(100))
    chunks = chunk_sections([Section(None, items, "list")], max_chars=200, overlap_chars=0)
    assert all(line.startswith("- item") for c in chunks for line in c.text.split("\n"))
    assert [line for c in chunks for line in c.text.split("\n")] == items.split("\n")


def test_empty_sections_make_no_chunks() -> None:
    assert chunk_sections([Section("A", "   "), Section("A", "\n\n", "table")]) == []


@pytest.mark.parametrize(("max_chars", "overlap"), [(10, 0), (100, 60), (100, -1)])
def test_impossible_bounds_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        chunk_sections([Section(None, "x")], max_chars=max_chars, overlap_chars=overlap)
