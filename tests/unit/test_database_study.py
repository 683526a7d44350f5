"""The pure parts of the databases study (``research/databases.py``): the records every store
receives, and the answers each store's queries are checked against."""

from __future__ import annotations

from collections import Counter

import pytest

from research.databases import (
    MAX_CHUNKS,
    OwnerTotal,
    Record,
    expected_page,
    expected_top,
    make_records,
    newest_first,
    percentile,
)


def _record(id_: str, owner: str, size: int, ms: int, chunks: int = 1) -> Record:
    return Record(id_, owner, "t", "text/plain", size, ms, chunks)


def test_records_are_reproducible_skewed_and_tagged() -> None:
    records = make_records(2_000, 20, "tag1")
    assert records == make_records(2_000, 20, "tag1")
    assert len({r.id for r in records}) == 2_000
    assert all(r.id.startswith("tag1-") and r.owner_id.startswith("tag1-") for r in records)
    assert all(1 <= r.chunks <= MAX_CHUNKS for r in records)
    owners = Counter(r.owner_id for r in records).most_common()
    assert len(owners) == 20
    assert owners[0][1] > 5 * owners[-1][1]  # Zipf: the first owner has many times the last's


def test_a_page_is_newest_first_after_the_cursor_with_ties_broken_by_id() -> None:
    ordered = newest_first(
        [
            _record("a", "o", 1, 100),
            _record("b", "o", 1, 300),
            _record("c", "o", 1, 200),
            _record("d", "o", 1, 200),
        ]
    )
    assert [r.id for r in ordered] == ["b", "d", "c", "a"]
    assert expected_page(ordered, None, 2) == ["b", "d"]
    assert expected_page(ordered, (200, "d"), 2) == ["c", "a"]  # same time, smaller id next
    assert expected_page(ordered, (100, "a"), 2) == []


def test_the_complex_answer_sums_per_owner_and_ranks_by_size_then_owner() -> None:
    records = [
        _record("1", "ann", 10, 1, chunks=2),
        _record("2", "ann", 5, 2, chunks=3),
        _record("3", "bob", 15, 3, chunks=1),
        _record("4", "cid", 1, 4, chunks=4),
    ]
    assert expected_top(records, 2) == [OwnerTotal("ann", 2, 5, 15), OwnerTotal("bob", 1, 1, 15)]
    assert expected_top(records, 10)[-1] == OwnerTotal("cid", 1, 4, 1)


def test_percentiles_are_samples_that_happened() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
