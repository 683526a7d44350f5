"""The ``GraphStore`` port: what the graph service may ask of its store, in domain terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kglab_graph.domain import (
    Alias,
    ChunkRef,
    Entity,
    EntityDetail,
    Mention,
    Path,
    RankedEntity,
    RelatedDocument,
    RelationCandidate,
    ScoredEntity,
    Statement,
    Subgraph,
)


class GraphStore(Protocol):
    """Every method is scoped to ``owner``: nothing of another owner is read, written or seen."""

    async def start(self) -> None:
        """Connect and apply schema migrations (versioned, idempotent)."""

    async def close(self) -> None: ...

    async def apply_document(
        self,
        owner: str,
        document_id: str,
        title: str,
        chunks: Sequence[ChunkRef],
        entities: Sequence[Entity],
        mentions: Sequence[Mention],
        relations: Sequence[RelationCandidate],
    ) -> None:
        """Make the store hold exactly this extraction for the document (batched, idempotent).

        Applying the same extraction twice changes nothing; applying a new one replaces the
        document's previous mentions and evidence.
        """

    async def delete_document(self, owner: str, document_id: str) -> bool:
        """Remove the document, its chunks and mentions, entities no longer mentioned, and
        relations whose evidence is gone. False when there was nothing to delete."""

    async def search_entities(self, owner: str, query: str, limit: int) -> list[ScoredEntity]:
        """Entities whose name matches ``query``, tolerating typos; best first."""

    async def get_entity(self, owner: str, entity_id: str, top: int = 5) -> EntityDetail | None: ...

    async def neighbors(
        self,
        owner: str,
        entity_id: str,
        *,
        depth: int,
        types: Sequence[str] = (),
        min_weight: int = 1,
        limit: int = 50,
    ) -> Subgraph | None:
        """Entities within ``depth`` hops (of ``types`` if given, over relations of at least
        ``min_weight``), nearest first, and the relations among them; None if no such entity."""

    async def shortest_path(
        self, owner: str, source_id: str, target_id: str, *, max_depth: int
    ) -> Path | None:
        """A shortest path of at most ``max_depth`` relations, or None."""

    async def document_graph(self, owner: str, document_id: str, limit: int) -> Subgraph | None:
        """The entities one document mentions and the relations its sentences support."""

    async def related_documents(
        self,
        owner: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[RelatedDocument]:
        """Documents (other than ``exclude_documents``) whose chunks mention an entity that
        ``chunk_ids`` mention, ranked by how many such entities they share."""

    async def statements(
        self, owner: str, pairs: Sequence[tuple[str, str]], per_pair: int
    ) -> list[Statement]:
        """What the owner's documents say relates each pair of entity ids (either direction),
        typed relations first, at most ``per_pair`` per pair."""

    async def top_entities(
        self, owner: str, *, types: Sequence[str], limit: int
    ) -> list[RankedEntity]:
        """The most connected entities (of ``types`` if given), most relations first."""

    async def export_graph(self, owner: str, *, entities: int, relations: int) -> Subgraph:
        """The ``entities`` most connected entities and up to ``relations`` relations among
        them, heaviest first."""

    async def aliases(self, owner: str) -> list[Alias]:
        """The owner's recorded merges (and merges undone, kept apart)."""

    async def set_alias(self, owner: str, alias: Alias) -> None:
        """Record (or replace) the merge of ``alias.alias_key``."""

    async def remove_alias(self, owner: str, alias_key: str) -> bool:
        """Forget the record of ``alias_key``; False when there was none."""

    async def save_spellings(self, owner: str, compacts: dict[str, str]) -> None:
        """Record the owner's keys by compact spelling (``compact -> key``), before the
        document that names them is written, so the next document finds them."""

    async def save_extraction(self, owner: str, document_id: str, payload: str) -> None:
        """Keep the document's extraction before merges (JSON, to re-apply it when merges
        change)."""

    async def extractions(self, owner: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The saved extraction of each of these documents that has one."""

    async def variant_keys(self, owner: str, compacts: Sequence[str]) -> dict[str, list[str]]:
        """For each compact spelling, the keys the owner's documents used with it."""

    async def documents_mentioning(self, owner: str, entity_ids: Sequence[str]) -> list[str]:
        """The owner's documents that mention any of these entities."""

    async def ping(self) -> None:
        """Raise if the store cannot be used (for /ready)."""
