"""The VectorStore contract: one body, both adapters (Qdrant Edge embedded; the server adapter
on local mode and on a server)."""

from __future__ import annotations

import pytest

from kglab_vector.cache.memory import InMemorySearchCache
from kglab_vector.domain import (
    ChunkRecord,
    EmbeddingModelMismatchError,
    IndexedChunk,
    SearchFilters,
    SearchMode,
    SearchQuery,
)
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.service import Indexer, VectorService
from tests.contract.vector.conftest import AnyStore, StoreFactory

ALICE, BOB = "user-alice", "user-bob"
INDEXER = Indexer(HashingEmbedder(64), Bm25SparseEncoder())
SPACE = INDEXER.space
TEXTS = [
    "Salt is mined in deep shafts under the town.",
    "Wool is woven on hand looms by every family.",
    "A lantern procession walks the streets each midwinter.",
]


def records(
    owner: str, document_id: str, texts: list[str], media_type: str = "text/plain"
) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            owner_id=owner,
            document_id=document_id,
            chunk_id=f"{document_id}-{i}",
            position=i,
            text=text,
            title=f"Title of {document_id}",
            heading="Section",
            media_type=media_type,
        )
        for i, text in enumerate(texts)
    ]


async def index(chunks: list[ChunkRecord]) -> list[IndexedChunk]:
    return await INDEXER.index(chunks)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AnyStore:
    opened = store_factory()
    await opened.open(SPACE)
    return opened


async def chunk_ids(
    store: AnyStore,
    owner: str,
    text: str,
    *,
    mode: str = "hybrid",
    limit: int = 10,
    filters: SearchFilters | None = None,
) -> list[str]:
    dense = INDEXER.embedder.embed_query(text) if mode in ("hybrid", "dense") else None
    sparse = INDEXER.sparse.encode_query(text) if mode in ("hybrid", "sparse") else None
    hits = await store.search(
        owner, dense=dense, sparse=sparse, limit=limit, filters=filters or SearchFilters()
    )
    return [h.chunk_id for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
async def test_each_mode_finds_the_matching_chunk_first(store: AnyStore, mode: str) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    found = await chunk_ids(store, ALICE, "salt mined in shafts", mode=mode)
    assert found[0] == "doc-a-0"
    assert set(found) <= {"doc-a-0", "doc-a-1", "doc-a-2"}


async def test_hits_carry_the_payload(store: AnyStore) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    dense = INDEXER.embedder.embed_query("wool looms")
    hits = await store.search(
        ALICE,
        dense=dense,
        sparse=INDEXER.sparse.encode_query("wool looms"),
        limit=1,
        filters=SearchFilters(),
    )
    (hit,) = hits
    assert (hit.document_id, hit.chunk_id, hit.position) == ("doc-a", "doc-a-1", 1)
    assert hit.title == "Title of doc-a"
    assert hit.heading == "Section"
    assert hit.text == TEXTS[1]
    assert hit.score > 0


async def test_another_owners_chunks_are_never_returned(store: AnyStore) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await store.upsert(await index(records(BOB, "doc-b", ["Salt salt salt mined in shafts."])))
    for mode in ("hybrid", "dense", "sparse"):
        found = await chunk_ids(store, ALICE, "salt mined in shafts", mode=mode)
        assert "doc-b-0" not in found
        bobs = await chunk_ids(store, BOB, "salt mined in shafts", mode=mode)
        assert bobs == ["doc-b-0"]
    # Bob's deleting a document of Alice's id changes nothing for Alice.
    await store.delete_document(BOB, "doc-a")
    assert await store.count(ALICE, "doc-a") == 3
    assert await chunk_ids(store, "user-nobody", "salt") == []


async def test_filters_by_document_and_media_type(store: AnyStore) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await store.upsert(await index(records(ALICE, "doc-p", TEXTS, media_type="application/pdf")))
    by_document = await chunk_ids(store, ALICE, "salt", filters=SearchFilters(document_id="doc-p"))
    assert by_document
    assert all(c.startswith("doc-p-") for c in by_document)
    by_type = await chunk_ids(store, ALICE, "salt", filters=SearchFilters(media_type="text/plain"))
    assert by_type
    assert all(c.startswith("doc-a-") for c in by_type)
    none = await chunk_ids(
        store, ALICE, "salt", filters=SearchFilters(document_id="doc-a", media_type="x/y")
    )
    assert none == []


async def test_upsert_is_idempotent_and_rechunking_drops_stale_chunks(
    store: AnyStore,
) -> None:
    chunks = await index(records(ALICE, "doc-a", TEXTS))
    await store.upsert(chunks)
    await store.upsert(chunks)
    assert await store.count(ALICE, "doc-a") == 3
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS[:1])))
    await store.remove_other_chunks(ALICE, "doc-a", ["doc-a-0"])
    assert await store.count(ALICE, "doc-a") == 1
    await store.remove_other_chunks(ALICE, "doc-a", [])
    assert await store.count(ALICE, "doc-a") == 0


async def test_delete_document_removes_only_that_document(store: AnyStore) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await store.upsert(await index(records(ALICE, "doc-b", TEXTS)))
    await store.delete_document(ALICE, "doc-a")
    await store.delete_document(ALICE, "doc-a")  # again: nothing to delete, no error
    assert await store.count(ALICE, "doc-a") == 0
    assert await store.count(ALICE) == 3
    assert all(c.startswith("doc-b") for c in await chunk_ids(store, ALICE, "salt"))


async def test_a_query_without_terms_or_vectors_finds_nothing(store: AnyStore) -> None:
    await store.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    assert await chunk_ids(store, ALICE, "the of and", mode="sparse") == []
    # Hybrid with no terms falls back to the dense half.
    assert await chunk_ids(store, ALICE, "the of and", mode="hybrid")
    assert (
        await store.search(ALICE, dense=None, sparse=None, limit=5, filters=SearchFilters()) == []
    )


async def test_reopening_with_the_same_model_keeps_the_chunks(
    store_factory: StoreFactory,
) -> None:
    first = store_factory()
    await first.open(SPACE)
    await first.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await first.close()
    second = store_factory()
    await second.open(SPACE)
    assert await second.count(ALICE) == 3
    await second.ping()


async def test_another_model_is_refused_with_a_readable_error(
    store_factory: StoreFactory,
) -> None:
    first = store_factory()
    await first.open(SPACE)
    await first.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await first.close()
    other = Indexer(HashingEmbedder(32), Bm25SparseEncoder())
    second = store_factory()
    with pytest.raises(EmbeddingModelMismatchError) as refused:
        await second.open(other.space)
    message = str(refused.value)
    assert "kglab-hashing-v1-64" in message
    assert "kglab-hashing-v1-32" in message
    assert "KGLAB_VECTOR_REEMBED_ON_MODEL_CHANGE" in message
    # Nothing was touched: the old model still opens and finds its chunks.
    await second.close()
    third = store_factory()
    await third.open(SPACE)
    assert await third.count(ALICE) == 3


async def test_an_explicit_migration_reembeds_every_chunk(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open(SPACE)
    await first.upsert(await index(records(ALICE, "doc-a", TEXTS)))
    await first.upsert(await index(records(BOB, "doc-b", TEXTS[:1])))
    await first.close()

    other = Indexer(HashingEmbedder(32), Bm25SparseEncoder())
    migrated = store_factory()
    await migrated.open(other.space, reembed=other.index)
    assert migrated.space == other.space
    assert await migrated.count(ALICE) == 3
    assert await migrated.count(BOB) == 1
    hits = await migrated.search(
        ALICE,
        dense=other.embedder.embed_query("wool looms"),
        sparse=None,
        limit=1,
        filters=SearchFilters(),
    )
    assert hits[0].chunk_id == "doc-a-1"
    assert hits[0].text == TEXTS[1]
    await migrated.close()
    # The old model is now the one refused.
    again = store_factory()
    with pytest.raises(EmbeddingModelMismatchError):
        await again.open(SPACE)


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
async def test_a_dense_floor_keeps_unrelated_documents_out(store: AnyStore, mode: str) -> None:
    """One document is about the query, one is not: with the floor, fusion (or the dense
    ranking) no longer fills the limit with the unrelated one (adr/0024, "salt mining" answered
    with a Python history); without it, it does (what the floor changes)."""
    await store.upsert(await index(records(ALICE, "salt", ["Salt mining in the Nordic hills."])))
    unrelated = ["Guido van Rossum released the first version of Python in 1991."]
    await store.upsert(await index(records(ALICE, "python", unrelated)))
    text = "salt mining"
    dense = INDEXER.embedder.embed_query(text)
    sparse = INDEXER.sparse.encode_query(text) if mode == "hybrid" else None

    async def found(floor: float) -> list[str]:
        hits = await store.search(
            ALICE, dense=dense, sparse=sparse, limit=10, filters=SearchFilters(), dense_floor=floor
        )
        return [h.chunk_id for h in hits]

    assert await found(0.0) == ["salt-0", "python-0"]
    assert await found(0.3) == ["salt-0"]
    # A floor above every chunk's cosine leaves only what has the query's words.
    assert await found(0.999) == (["salt-0"] if mode == "hybrid" else [])


async def test_the_service_answers_with_the_relevant_document_only(store: AnyStore) -> None:
    """Through the service as it runs: once one chunk is relevant, the threshold still keeps
    the far ones out of the answer."""
    await store.upsert(await index(records(ALICE, "salt", ["Salt mining in the Nordic hills."])))
    unrelated = ["Guido van Rossum released the first version of Python in 1991."]
    await store.upsert(await index(records(ALICE, "python", unrelated)))
    service = VectorService(store, INDEXER, InMemorySearchCache(), min_relevance=0.3)
    for mode in (SearchMode.HYBRID, SearchMode.DENSE):
        hits, _ = await service.search(SearchQuery(owner_id=ALICE, text="salt mining", mode=mode))
        assert [h.document_id for h in hits] == ["salt"], mode
    off = VectorService(store, INDEXER, InMemorySearchCache(), min_relevance=0.0)
    hits, _ = await off.search(SearchQuery(owner_id=ALICE, text="salt mining"))
    assert [h.document_id for h in hits] == ["salt", "python"]  # what the threshold removes
