"""The graph service layer: extraction into the store, and the queries the routes answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from kglab_graph.domain import (
    MAX_PATH_DEPTH,
    MAX_STATEMENTS_PER_RELATION,
    EntityDetail,
    ExtractedGraph,
    Path,
    RelatedDocument,
    Relation,
    ScoredEntity,
    Statement,
    Subgraph,
    canonical_pair,
)
from kglab_graph.extraction import ChunkText, EntityRecogniser, chunk_refs, extract_graph
from kglab_graph.messaging.publish import PartsRemovedPublisher
from kglab_graph.store.port import GraphStore
from kglab_shared.errors import NotFoundError
from kglab_shared.events import DocumentDeleted, DocumentStored
from kglab_shared.logging import get_logger

_log = get_logger(__name__)


class GraphService:
    def __init__(
        self,
        store: GraphStore,
        recogniser: EntityRecogniser,
        publisher: PartsRemovedPublisher | None = None,
    ) -> None:
        self.store = store
        self.recogniser = recogniser
        self._publisher = publisher
        # The recogniser is CPU-bound and not meant for concurrent calls; one at a time, off
        # the event loop.
        self._recognise_lock = asyncio.Lock()

    async def extract(
        self, owner: str, document_id: str, chunks: Sequence[ChunkText]
    ) -> ExtractedGraph:
        async with self._recognise_lock:
            return await asyncio.to_thread(
                extract_graph, owner, document_id, chunks, self.recogniser
            )

    async def ingest_document(self, event: DocumentStored) -> ExtractedGraph:
        """Extract the document's entities and relations and make the store hold exactly them."""
        chunks = [ChunkText(c.chunk_id, c.position, c.text, c.heading) for c in event.chunks]
        graph = await self.extract(event.owner_id, event.document_id, chunks)
        await self.store.apply_document(
            event.owner_id,
            event.document_id,
            event.title,
            chunk_refs(chunks),
            graph.entities,
            graph.mentions,
            graph.relations,
        )
        _log.info(
            "graph_document_applied",
            document_id=event.document_id,
            entities=len(graph.entities),
            relations=len(graph.relations),
            recogniser=self.recogniser.name,
        )
        return graph

    async def remove_document(self, event: DocumentDeleted) -> None:
        """Delete the document's part of the graph, then say so (after the delete committed)."""
        await self.store.delete_document(event.owner_id, event.document_id)
        if self._publisher is not None:
            await self._publisher.parts_removed(event.owner_id, event.document_id)

    async def search(self, owner: str, query: str, limit: int) -> list[ScoredEntity]:
        return await self.store.search_entities(owner, query, limit)

    async def entity(self, owner: str, entity_id: str) -> EntityDetail:
        detail = await self.store.get_entity(owner, entity_id)
        if detail is None:
            raise NotFoundError(_no_entity(entity_id))
        return detail

    async def neighbors(
        self,
        owner: str,
        entity_id: str,
        *,
        depth: int,
        types: Sequence[str],
        min_weight: int,
        limit: int,
    ) -> Subgraph:
        subgraph = await self.store.neighbors(
            owner, entity_id, depth=depth, types=types, min_weight=min_weight, limit=limit
        )
        if subgraph is None:
            raise NotFoundError(_no_entity(entity_id))
        return replace(subgraph, relations=await self._explained(owner, subgraph.relations))

    async def path(
        self, owner: str, source_id: str, target_id: str, max_depth: int = MAX_PATH_DEPTH
    ) -> Path:
        for entity_id in (source_id, target_id):
            if await self.store.get_entity(owner, entity_id, top=0) is None:
                raise NotFoundError(_no_entity(entity_id))
        path = await self.store.shortest_path(owner, source_id, target_id, max_depth=max_depth)
        if path is None:
            raise NotFoundError(
                f"No path of at most {max_depth} relations joins {source_id} and {target_id}."
            )
        return replace(path, relations=await self._explained(owner, path.relations))

    async def related_documents(
        self,
        owner: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[RelatedDocument]:
        if not chunk_ids:
            return []
        return await self.store.related_documents(
            owner, chunk_ids, exclude_documents=exclude_documents, limit=limit
        )

    async def document_graph(self, owner: str, document_id: str, limit: int) -> Subgraph:
        subgraph = await self.store.document_graph(owner, document_id, limit)
        if subgraph is None:
            raise NotFoundError(f"There is no document {document_id} in your knowledge graph.")
        relations = await self._explained(owner, subgraph.relations, document_id)
        return replace(subgraph, relations=relations)

    async def _explained(
        self, owner: str, relations: Sequence[Relation], document_id: str | None = None
    ) -> tuple[Relation, ...]:
        """The relations with what the documents say about each pair: typed relations with
        their verb, and the sentences (``document_id``: that document's statements only)."""
        found = await self.store.statements(
            owner,
            [(r.source_id, r.target_id) for r in relations],
            per_pair=MAX_STATEMENTS_PER_RELATION,
        )
        by_pair: dict[tuple[str, str], list[Statement]] = {}
        for statement in found:
            if document_id is None or statement.document_id == document_id:
                pair = canonical_pair(statement.source_id, statement.target_id)
                by_pair.setdefault(pair, []).append(statement)
        explained = []
        for relation in relations:
            statements = by_pair.get(canonical_pair(relation.source_id, relation.target_id), [])
            evidence = relation.evidence or tuple(
                dict.fromkeys(item for st in statements for item in st.evidence)
            )
            explained.append(replace(relation, evidence=evidence, statements=tuple(statements)))
        return tuple(explained)


def _no_entity(entity_id: str) -> str:
    return f"There is no entity {entity_id} in your knowledge graph."
