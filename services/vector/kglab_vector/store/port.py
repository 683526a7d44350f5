"""The ``VectorStore`` port, in domain terms; Qdrant's filters and queries stay in the adapter.

Every read and delete is scoped to an owner: another user's chunks do not exist here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from kglab_vector.domain import ChunkRecord, IndexedChunk, SearchFilters, SearchHit, SparseVector

#: Re-embeds stored chunks for a model migration: records in, indexed chunks out.
Reembed = Callable[[Sequence[ChunkRecord]], Awaitable[list[IndexedChunk]]]


@dataclass(frozen=True, slots=True)
class IndexSpace:
    """What the vectors of a collection mean; recorded with it, checked on every start."""

    model_name: str
    dimension: int
    sparse_encoder: str


class VectorStore(Protocol):
    async def open(self, space: IndexSpace, *, reembed: Reembed | None = None) -> None:
        """Create the collection, or check that it holds vectors of ``space``.

        A collection built with another model raises ``EmbeddingModelMismatchError``, unless
        ``reembed`` is given: then every stored chunk is embedded again into a new collection
        that replaces the old one.
        """

    async def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        """Insert or overwrite chunks (the point id is derived from owner, document, chunk)."""

    async def remove_other_chunks(
        self, owner_id: str, document_id: str, keep_chunk_ids: Sequence[str]
    ) -> None:
        """Delete the document's chunks that are not in ``keep_chunk_ids`` (a re-chunking)."""

    async def delete_document(self, owner_id: str, document_id: str) -> None:
        """Delete every chunk of the document; deleting nothing is not an error."""

    async def count(self, owner_id: str, document_id: str | None = None) -> int:
        """How many chunks the owner (or one of their documents) has."""

    async def search(
        self,
        owner_id: str,
        *,
        dense: list[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters,
        dense_floor: float = 0.0,
    ) -> list[SearchHit]:
        """The owner's best chunks: dense or sparse alone, or both fused by reciprocal rank.

        A chunk enters by meaning only with a cosine of at least ``dense_floor`` (0: any):
        fusion then ranks close chunks and chunks with the query's words, never filling the
        limit with the rest of the collection."""

    async def ping(self) -> None:
        """Raise if the store cannot answer (for /ready)."""

    async def close(self) -> None:
        """Release the client."""
