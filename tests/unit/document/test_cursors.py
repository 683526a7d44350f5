"""Cursors and filters of the document domain: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kglab_document.domain import (
    ChunkCursor,
    DocumentCursor,
    DocumentFilters,
    InvalidCursorError,
    InvalidQueryError,
    SortOrder,
    utc_millis,
)


def test_document_cursor_round_trips_for_each_sort() -> None:
    moment = datetime(2026, 11, 26, 9, 30, 1, 123000, tzinfo=UTC)
    for sort in SortOrder:
        key: datetime | str = "Title ü" if sort is SortOrder.TITLE else moment
        cursor = DocumentCursor(sort=sort, key=key, id="doc-1")
        assert DocumentCursor.decode(cursor.encode(), sort) == cursor


@pytest.mark.parametrize(
    "token", ["", "x", "!!!!", "bm90IGpzb24", "eyJ2IjoxfQ", "eyJ2IjoyLCJwIjoxfQ", "a" * 5000]
)
def test_malformed_cursors_are_refused(token: str) -> None:
    with pytest.raises(InvalidCursorError):
        DocumentCursor.decode(token, SortOrder.NEWEST)
    with pytest.raises(InvalidCursorError):
        ChunkCursor.decode(token)


def test_cursor_of_another_sort_is_refused_with_a_reason() -> None:
    token = DocumentCursor(SortOrder.TITLE, "a", "doc-1").encode()

    with pytest.raises(InvalidCursorError, match="sorted by 'title'"):
        DocumentCursor.decode(token, SortOrder.NEWEST)


def test_chunk_cursor_round_trips() -> None:
    assert ChunkCursor.decode(ChunkCursor(41).encode()) == ChunkCursor(41)


def test_times_are_utc_milliseconds() -> None:
    local = datetime(2026, 11, 26, 10, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))

    assert utc_millis(local) == datetime(2026, 11, 26, 9, 0, 0, 999000, tzinfo=UTC)
    assert utc_millis(datetime(2026, 1, 1)).tzinfo is UTC


def test_empty_date_range_is_refused() -> None:
    with pytest.raises(InvalidQueryError, match="earlier"):
        DocumentFilters(
            created_from=datetime(2026, 11, 27, tzinfo=UTC),
            created_to=datetime(2026, 11, 27, tzinfo=UTC),
        )
