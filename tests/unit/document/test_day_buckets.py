"""Day buckets' pure parts (adr/0013): which day a moment falls on, the markers, the bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kglab_document.domain import SortOrder
from kglab_document.store.mongo import (
    _beyond_bucket,
    _beyond_day,
    day_markers,
    day_of,
    initial_marker,
)


def test_day_is_the_utc_day() -> None:
    assert day_of(datetime(2026, 3, 1, 0, 0, tzinfo=UTC)) == "2026-03-01"
    assert day_of(datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)) == "2026-02-28"
    # 01:30 in UTC+2 is still the previous day in UTC.
    assert day_of(datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-02-28"


def test_markers_of_different_owners_never_share_an_id() -> None:
    # An owner id holding the separator of a naive "owner|day" key must not collide.
    first = {m["_id"] for m in day_markers("a|2026-03-01", "2026-03-02", "text/plain")}
    second = {m["_id"] for m in day_markers("a", "2026-03-01|2026-03-02", "text/plain")}
    assert not first & second
    kinds = {m["kind"]: m for m in day_markers("a", "2026-03-02", "text/plain")}
    assert set(kinds) == {"month", "day", "month_media_type", "day_media_type"}
    assert all(m["month"] == "2026-03" for m in kinds.values())
    assert kinds["day_media_type"]["media_type"] == "text/plain"
    assert "day" not in kinds["month"]


def test_beyond_day_keeps_the_tighter_bound() -> None:
    start = datetime(2026, 3, 5, tzinfo=UTC)
    assert _beyond_day({"owner_id": "a"}, "2026-03-05", newest=True) == {
        "owner_id": "a",
        "created_at": {"$lt": start},
    }
    earlier = start - timedelta(days=2)
    narrowed = _beyond_day({"created_at": {"$lt": earlier}}, "2026-03-05", newest=True)
    assert narrowed == {"created_at": {"$lt": earlier}}
    oldest = _beyond_day({"created_at": {"$gte": earlier}}, "2026-03-05", newest=False)
    assert oldest == {"created_at": {"$gte": start + timedelta(days=1)}}


def test_titles_past_an_initial_start_with_a_later_character() -> None:
    query = {"owner_id": "a"}
    assert _beyond_bucket(query, SortOrder.TITLE, "R") == {"owner_id": "a", "title": {"$gte": "S"}}
    assert _beyond_bucket(query, SortOrder.TITLE, "") == {"owner_id": "a", "title": {"$gt": ""}}
    assert _beyond_bucket(query, SortOrder.TITLE, chr(0x10FFFF)) is None
    titles = ["", "R", "Report 1", "Rz", "S", "alpha", "\u00c4rger"]
    beyond = chr(ord("R") + 1)
    assert [t for t in titles if t >= beyond] == [t for t in titles if t[:1] > "R"]
    assert initial_marker("a", "\u00c4rger")["initial"] == "\u00c4"
    assert initial_marker("a", "")["initial"] == ""
