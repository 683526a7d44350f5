"""The ``DocumentStore`` contract: one set of bodies, run against every adapter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kglab_document.domain import (
    Chunk,
    ChunkCursor,
    DeletionState,
    Document,
    DocumentCursor,
    DocumentFilters,
    DocumentStatus,
    SortOrder,
    deletion_status,
)
from kglab_document.store.port import DocumentStore

BASE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
OWNER = "user-a"
OTHER = "user-b"


def make_document(
    doc_id: str,
    *,
    owner: str = OWNER,
    title: str | None = None,
    media_type: str = "text/plain",
    source: str = "notes.txt",
    created_at: datetime = BASE,
    chunks: int = 3,
) -> tuple[Document, list[Chunk]]:
    document = Document(
        id=doc_id,
        owner_id=owner,
        job_id=f"job-{doc_id}",
        title=title or f"Title {doc_id}",
        media_type=media_type,
        source=source,
        created_at=created_at,
        chunk_count=chunks,
        metadata={"pages": 2, "language": "en"},
        provenance={"source_name": source, "sha256": "ab" * 32},
    )
    chunk_list = [
        Chunk(
            document_id=doc_id,
            owner_id=owner,
            chunk_id=f"{doc_id}-c{i}",
            position=i,
            text=f"Chunk {i} of {doc_id}.",
            heading="Intro" if i == 0 else None,
        )
        for i in range(chunks)
    ]
    return document, chunk_list


async def save(store: DocumentStore, document: Document, chunks: list[Chunk]) -> None:
    result = await store.save_extracted(document, chunks)
    assert result.created


async def walk(
    store: DocumentStore,
    sort: SortOrder,
    *,
    limit: int,
    filters: DocumentFilters | None = None,
    owner: str = OWNER,
) -> list[str]:
    """Every id, page by page, in the order served; bounded so a cursor bug cannot loop."""
    seen: list[str] = []
    after: DocumentCursor | None = None
    for _ in range(1000):
        page = await store.list_documents(
            owner, filters=filters or DocumentFilters(), sort=sort, limit=limit, after=after
        )
        assert len(page.items) <= limit
        seen.extend(d.id for d in page.items)
        if page.next_cursor is None:
            return seen
        after = DocumentCursor.decode(page.next_cursor, sort)
    raise AssertionError("pagination did not end")


def expected_order(documents: list[Document], sort: SortOrder) -> list[str]:
    if sort is SortOrder.TITLE:
        return [d.id for d in sorted(documents, key=lambda d: (d.title, d.id))]
    ordered = sorted(documents, key=lambda d: (d.created_at, d.id))
    if sort is SortOrder.NEWEST:
        ordered.reverse()
    return [d.id for d in ordered]


async def seed_listing(store: DocumentStore) -> list[Document]:
    """23 documents for OWNER with tied timestamps and mixed-case titles, 4 for OTHER."""
    titles = ["alpha", "Beta", "Ärger", "beta", "Zeta", "alpha"]
    documents: list[Document] = []
    rng = random.Random(7)
    for i in range(23):
        document, _ = make_document(
            f"doc-{i:02d}",
            title=titles[i % len(titles)],
            media_type="application/pdf" if i % 3 == 0 else "text/plain",
            source="https://example.org/a" if i % 4 == 0 else f"file-{i % 2}.txt",
            # Pairs share a timestamp: ties must be broken by id, never dropped or repeated.
            created_at=BASE + timedelta(minutes=i // 2),
            chunks=1,
        )
        documents.append(document)
    for document in rng.sample(documents, len(documents)):
        await save(store, document, [])
    for i in range(4):
        await save(store, *make_document(f"other-{i}", owner=OTHER, created_at=BASE))
    return documents


async def test_save_is_idempotent(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-1", chunks=4)

    first = await document_store.save_extracted(document, chunks)
    again = await document_store.save_extracted(document, chunks)

    assert first.created
    assert not again.created
    assert again.document == document
    page = await document_store.chunks(OWNER, "doc-1", limit=100)
    assert [c.position for c in page.items] == [0, 1, 2, 3]
    listed = await document_store.list_documents(
        OWNER, filters=DocumentFilters(), sort=SortOrder.NEWEST, limit=10
    )
    assert [d.id for d in listed.items] == ["doc-1"]


async def test_saved_document_round_trips(document_store: DocumentStore) -> None:
    created = datetime(2026, 11, 26, 10, 11, 12, 345678, tzinfo=UTC)
    document, chunks = make_document("doc-rt", created_at=created)
    await save(document_store, document, chunks)

    stored = await document_store.get(OWNER, "doc-rt")

    assert stored is not None
    assert stored.created_at == datetime(2026, 11, 26, 10, 11, 12, 345000, tzinfo=UTC)
    assert stored.title == document.title
    assert stored.metadata == {"pages": 2, "language": "en"}
    assert stored.provenance == document.provenance
    assert stored.status is DocumentStatus.STORED
    assert not await document_store.is_stored_event_published(OWNER, "doc-rt")


async def test_stored_event_flag_is_kept_across_redelivery(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-2")
    await save(document_store, document, chunks)

    assert not await document_store.is_stored_event_published(OWNER, "doc-2")
    await document_store.mark_stored_event_published(OWNER, "doc-2")
    await document_store.mark_stored_event_published(OWNER, "doc-2")  # a repeat is a no-op
    after = await document_store.save_extracted(document, chunks)

    assert await document_store.is_stored_event_published(OWNER, "doc-2")
    assert not await document_store.is_stored_event_published("someone-else", "doc-2")
    assert not after.created


async def test_pagination_walks_every_document_once_in_order(
    document_store: DocumentStore,
) -> None:
    documents = await seed_listing(document_store)

    for sort in SortOrder:
        for limit in (1, 5, 23, 100):
            assert await walk(document_store, sort, limit=limit) == expected_order(
                documents, sort
            ), (sort, limit)


async def test_filters_combine_with_pagination(document_store: DocumentStore) -> None:
    documents = await seed_listing(document_store)
    window_from, window_to = BASE + timedelta(minutes=2), BASE + timedelta(minutes=8)
    cases: list[tuple[DocumentFilters, Callable[[Document], bool]]] = [
        (DocumentFilters(media_type="application/pdf"), lambda d: "pdf" in d.media_type),
        (DocumentFilters(source="https://example.org/a"), lambda d: d.source.startswith("https")),
        (
            DocumentFilters(created_from=window_from, created_to=window_to),
            lambda d: window_from <= d.created_at < window_to,
        ),
        (
            DocumentFilters(media_type="text/plain", created_from=window_from),
            lambda d: d.media_type == "text/plain" and d.created_at >= window_from,
        ),
        (DocumentFilters(media_type="image/png"), lambda d: False),
        (
            # Every filter at once: all equalities, the range and (limit 1) the cursor together.
            DocumentFilters(
                media_type="application/pdf", source="https://example.org/a", created_to=window_to
            ),
            lambda d: (
                "pdf" in d.media_type and d.source.startswith("https") and d.created_at < window_to
            ),
        ),
    ]
    for filters, keep in cases:
        wanted = [d for d in documents if keep(d)]
        for sort in SortOrder:
            for limit in (1, 4):
                served = await walk(document_store, sort, limit=limit, filters=filters)
                assert served == expected_order(wanted, sort), (filters, sort, limit)


async def test_pagination_is_stable_under_inserts(document_store: DocumentStore) -> None:
    documents = await seed_listing(document_store)
    sort = SortOrder.NEWEST
    seen: list[str] = []
    after: DocumentCursor | None = None
    inserted = 0
    for _ in range(100):
        page = await document_store.list_documents(
            OWNER, filters=DocumentFilters(), sort=sort, limit=5, after=after
        )
        seen.extend(d.id for d in page.items)
        # Newer documents arrive while the client pages: before the cursor, never in the walk.
        await save(
            document_store,
            *make_document(f"new-{inserted}", created_at=BASE + timedelta(days=1), chunks=0),
        )
        inserted += 1
        if page.next_cursor is None:
            break
        after = DocumentCursor.decode(page.next_cursor, sort)
    assert seen == expected_order(documents, sort)


async def test_owner_isolation(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-mine", chunks=2)
    await save(document_store, document, chunks)
    now = datetime.now(UTC)

    assert await document_store.get(OTHER, "doc-mine") is None
    assert (await document_store.chunks(OTHER, "doc-mine", limit=10)).items == []
    assert await document_store.delete(OTHER, "doc-mine", at=now) is None
    assert not await document_store.mark_part_removed(OTHER, "doc-mine", "vector", at=now)
    listed = await document_store.list_documents(
        OTHER, filters=DocumentFilters(), sort=SortOrder.NEWEST, limit=10
    )
    assert listed.items == []
    mine = await document_store.get(OWNER, "doc-mine")
    assert mine is not None
    assert mine.status is DocumentStatus.STORED
    assert mine.removed_parts == {}
    assert len((await document_store.chunks(OWNER, "doc-mine", limit=10)).items) == 2


async def test_chunks_come_in_position_order_page_by_page(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-long", chunks=12)
    await save(document_store, document, random.Random(3).sample(chunks, len(chunks)))

    positions: list[int] = []
    after: ChunkCursor | None = None
    for _ in range(20):
        page = await document_store.chunks(OWNER, "doc-long", limit=5, after=after)
        positions.extend(c.position for c in page.items)
        if page.next_cursor is None:
            break
        after = ChunkCursor.decode(page.next_cursor)

    assert positions == list(range(12))
    first = (await document_store.chunks(OWNER, "doc-long", limit=1)).items[0]
    assert first == chunks[0]


async def test_delete_then_parts_removed(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-del")
    await save(document_store, document, chunks)
    requested = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    deleted = await document_store.delete(OWNER, "doc-del", at=requested)
    assert deleted is not None
    assert deleted.status is DocumentStatus.DELETING
    assert (await document_store.chunks(OWNER, "doc-del", limit=10)).items == []
    listed = await document_store.list_documents(
        OWNER, filters=DocumentFilters(), sort=SortOrder.NEWEST, limit=10
    )
    assert listed.items == []
    assert deletion_status(deleted).state is DeletionState.IN_PROGRESS

    # A repeated delete keeps the first request's time.
    again = await document_store.delete(OWNER, "doc-del", at=requested + timedelta(hours=1))
    assert again is not None
    assert again.deletion_requested_at == requested

    assert await document_store.mark_part_removed(OWNER, "doc-del", "vector", at=requested)
    halfway = await document_store.get(OWNER, "doc-del")
    assert halfway is not None
    status = deletion_status(halfway)
    assert status.state is DeletionState.IN_PROGRESS
    assert status.parts == {"document": True, "vector": True, "graph": False}

    assert await document_store.mark_part_removed(OWNER, "doc-del", "graph", at=requested)
    assert await document_store.mark_part_removed(
        OWNER, "doc-del", "graph", at=requested + timedelta(hours=2)
    )
    done = await document_store.get(OWNER, "doc-del")
    assert done is not None
    assert deletion_status(done).state is DeletionState.COMPLETE
    assert done.removed_parts["graph"] == requested


async def test_concurrent_reports_and_publish_marks_lose_nothing(
    document_store: DocumentStore,
) -> None:
    # The deletion, both parts' reports and the stored-event mark arrive together, as they
    # can from several consumers; a store that rewrites the whole document per update would
    # lose one of them (FerretDB 1.x did, in CI).
    now = datetime.now(UTC)
    for n in range(5):
        doc_id = f"doc-race-{n}"
        document, chunks = make_document(doc_id)
        await save(document_store, document, chunks)
        await asyncio.gather(
            document_store.delete(OWNER, doc_id, at=now),
            document_store.mark_stored_event_published(OWNER, doc_id),
        )
        await asyncio.gather(
            document_store.mark_part_removed(OWNER, doc_id, "vector", at=now),
            document_store.mark_part_removed(OWNER, doc_id, "graph", at=now),
            document_store.mark_stored_event_published(OWNER, doc_id),
        )
        stored = await document_store.get(OWNER, doc_id)
        assert stored is not None
        assert stored.status is DocumentStatus.DELETING
        assert deletion_status(stored).state is DeletionState.COMPLETE
        assert await document_store.is_stored_event_published(OWNER, doc_id)


async def test_redelivery_after_delete_does_not_resurrect(document_store: DocumentStore) -> None:
    document, chunks = make_document("doc-zombie")
    await save(document_store, document, chunks)
    await document_store.delete(OWNER, "doc-zombie", at=datetime.now(UTC))

    result = await document_store.save_extracted(document, chunks)

    assert not result.created
    assert result.document.status is DocumentStatus.DELETING
    assert (await document_store.chunks(OWNER, "doc-zombie", limit=10)).items == []


async def test_unknown_documents_are_absent(document_store: DocumentStore) -> None:
    now = datetime.now(UTC)
    assert await document_store.get(OWNER, "nope") is None
    assert await document_store.delete(OWNER, "nope", at=now) is None
    assert not await document_store.mark_part_removed(OWNER, "nope", "graph", at=now)


async def test_ping(document_store: DocumentStore) -> None:
    await document_store.ping()


async def seed_days(store: DocumentStore) -> list[Document]:
    """41 documents over 40 days, sparse and dense days, on and either side of midnight UTC,
    titles under four first characters (with ties)."""
    documents: list[Document] = []
    rng = random.Random(13)
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    offsets = [
        timedelta(0),
        timedelta(milliseconds=-1),
        timedelta(milliseconds=1),
        timedelta(hours=12),
        timedelta(days=1),  # another document exactly at the next midnight
    ]
    for i in range(41):
        day = (i * 7) % 40 if i % 5 else 3  # day 3 is dense, the rest one or two a day
        created = midnight + timedelta(days=day) + offsets[i % len(offsets)]
        document, _ = make_document(
            f"day-{i:02d}",
            # Titles under several first characters, some sharing a title (ties by id).
            title=f"{'abZÄ'[i % 4]}{'xy'[i % 2]} {i % 3}",
            media_type="application/pdf" if i % 4 == 0 else "text/plain",
            source="https://example.org/d" if i % 6 == 0 else "notes.txt",
            created_at=created,
            chunks=0,
        )
        documents.append(document)
    for document in rng.sample(documents, len(documents)):
        await save(store, document, [])
    await save(store, *make_document("other-day", owner=OTHER, created_at=midnight, chunks=0))
    return documents


async def test_listings_across_many_days(document_store: DocumentStore) -> None:
    """Pages that span days, date ranges whose bounds meet the cursor's key, documents sharing
    a timestamp or a title: every sort, filter and page size serves each document once, in
    order."""
    documents = await seed_days(document_store)
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    ranges = [
        (midnight + timedelta(days=3), midnight + timedelta(days=20)),  # on day boundaries
        (midnight + timedelta(days=2, hours=23), midnight + timedelta(days=9, milliseconds=1)),
        (midnight + timedelta(days=25), midnight + timedelta(days=35, hours=1)),  # into April
    ]
    cases: list[tuple[DocumentFilters, Callable[[Document], bool]]] = [
        (DocumentFilters(), lambda d: True),
        (DocumentFilters(media_type="application/pdf"), lambda d: "pdf" in d.media_type),
        (DocumentFilters(source="https://example.org/d"), lambda d: d.source.endswith("/d")),
        *[
            (
                DocumentFilters(created_from=start, created_to=end),
                lambda d, s=start, e=end: s <= d.created_at < e,
            )
            for start, end in ranges
        ],
        (
            DocumentFilters(media_type="text/plain", created_to=midnight + timedelta(days=10)),
            lambda d: d.media_type == "text/plain" and d.created_at < midnight + timedelta(days=10),
        ),
    ]
    for filters, keep in cases:
        wanted = [d for d in documents if keep(d)]
        for sort in SortOrder:
            for limit in (1, 3, 20, 100):
                served = await walk(document_store, sort, limit=limit, filters=filters)
                assert served == expected_order(wanted, sort), (filters, sort, limit)


async def test_deleted_documents_leave_day_pages_full(document_store: DocumentStore) -> None:
    documents = await seed_days(document_store)
    gone = {d.id for d in documents[::3]}
    for doc_id in gone:
        assert await document_store.delete(OWNER, doc_id, at=BASE) is not None
    kept = [d for d in documents if d.id not in gone]

    for sort in (SortOrder.NEWEST, SortOrder.OLDEST):
        page = await document_store.list_documents(
            OWNER, filters=DocumentFilters(), sort=sort, limit=10
        )
        assert [d.id for d in page.items] == expected_order(kept, sort)[:10]
        assert await walk(document_store, sort, limit=4) == expected_order(kept, sort)


async def test_a_deletion_is_owed_to_the_bus_until_marked_announced(
    document_store: DocumentStore,
) -> None:
    # The outbox of document.deleted: written with the deletion, cleared once the bus
    # confirmed the event, written again by a repeated request.
    assert await document_store.unannounced_deletions(10) == []
    for doc_id in ("doc-owed-1", "doc-owed-2"):
        document, chunks = make_document(doc_id)
        await save(document_store, document, chunks)
    first = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    await document_store.delete(OWNER, "doc-owed-1", at=first)
    await document_store.delete(OWNER, "doc-owed-2", at=first + timedelta(seconds=1))
    assert await document_store.delete(OWNER, "never-stored", at=first) is None
    owed = await document_store.unannounced_deletions(10)
    assert [(d.id, d.status) for d in owed] == [
        ("doc-owed-1", DocumentStatus.DELETING),
        ("doc-owed-2", DocumentStatus.DELETING),
    ]
    assert [d.id for d in await document_store.unannounced_deletions(1)] == ["doc-owed-1"]
    await document_store.mark_deletion_announced(OWNER, "doc-owed-1")
    assert [d.id for d in await document_store.unannounced_deletions(10)] == ["doc-owed-2"]
    await document_store.mark_deletion_announced(OWNER, "doc-owed-2")
    assert await document_store.unannounced_deletions(10) == []
    await document_store.delete(OWNER, "doc-owed-1", at=first + timedelta(hours=1))
    assert [d.id for d in await document_store.unannounced_deletions(10)] == ["doc-owed-1"]
    # Another owner cannot clear it.
    await document_store.mark_deletion_announced("someone-else", "doc-owed-1")
    assert [d.id for d in await document_store.unannounced_deletions(10)] == ["doc-owed-1"]
