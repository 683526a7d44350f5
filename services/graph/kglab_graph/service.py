"""The graph service layer: extraction into the store, and the queries the routes answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass, replace
from typing import Any

from kglab_graph.domain import (
    MAX_EXPORT_ENTITIES,
    MAX_EXPORT_RELATIONS,
    MAX_PATH_DEPTH,
    MAX_STATEMENTS_PER_RELATION,
    Alias,
    Entity,
    EntityDetail,
    ExtractedGraph,
    Path,
    RankedEntity,
    RelatedDocument,
    Relation,
    ScoredEntity,
    Statement,
    Subgraph,
    canonical_pair,
    compact_key,
    normalise_key,
)
from kglab_graph.domain import entity_id as derive_entity_id
from kglab_graph.extraction import (
    ChunkText,
    EntityRecogniser,
    apply_aliases,
    chunk_refs,
    decode_extraction,
    encode_extraction,
    extract_graph,
    resolve_key,
    variant_aliases,
)
from kglab_graph.messaging.publish import PartsRemovedPublisher
from kglab_graph.store.port import GraphStore
from kglab_shared.errors import ConflictError, NotFoundError, UnprocessableError
from kglab_shared.events import DocumentDeleted, DocumentStored, ExtractedChunk
from kglab_shared.logging import get_logger

_log = get_logger(__name__)

#: What an entity id looks like (``entity_id``); anything else given for an entity is a name.
ENTITY_ID = re.compile(r"^ent_[0-9a-f]{24}$")
#: Candidates listed when a name is ambiguous.
MAX_CANDIDATES = 5
#: A fuzzy match scoring this many times the next one is taken as the meant entity.
CLEAR_LEAD = 1.2


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
        graph, _ = await self._extract(owner, document_id, chunks)
        return graph

    async def _extract(
        self, owner: str, document_id: str, chunks: Sequence[ChunkText]
    ) -> tuple[ExtractedGraph, dict[str, Any]]:
        """The extraction and, from a recogniser that counts them (the LLM's), its tokens and
        cost for this document, read under the same lock."""
        async with self._recognise_lock:
            graph = await asyncio.to_thread(
                extract_graph, owner, document_id, chunks, self.recogniser
            )
            usage = getattr(self.recogniser, "last_usage", None)
        counted = asdict(usage) if is_dataclass(usage) and not isinstance(usage, type) else {}
        return graph, counted

    async def ingest_document(
        self, event: DocumentStored, stored: Sequence[ExtractedChunk]
    ) -> ExtractedGraph:
        """Extract the document's entities and relations, resolve them against the owner's
        other documents, and make the store hold exactly them."""
        owner = event.owner_id
        chunks = [ChunkText(c.chunk_id, c.position, c.text, c.heading) for c in stored]
        raw, usage = await self._extract(owner, event.document_id, chunks)
        refs = chunk_refs(chunks)
        recorded = {a.alias_key: a for a in await self.store.aliases(owner)}
        new = await self._new_aliases(owner, raw, [c.text for c in chunks], recorded)
        for alias in new:
            await self.store.set_alias(owner, alias)
            recorded[alias.alias_key] = alias
        graph = apply_aliases(owner, raw, recorded)
        spellings = {compact_key(e.key): e.key for e in raw.entities}
        # The spellings first: once this document's graph can be read, a document that comes
        # next must find them (seen: "Node JS" arriving just after "NodeJS" stayed apart when
        # the spellings were written after the graph). Spellings of a document whose graph
        # never lands are harmless: only spellings that still name an entity count.
        await self.store.save_spellings(owner, spellings)
        await self.store.apply_document(
            owner,
            event.document_id,
            event.title,
            refs,
            graph.entities,
            graph.mentions,
            graph.relations,
        )
        await self.store.save_extraction(
            owner, event.document_id, encode_extraction(event.title, refs, raw)
        )
        if new:
            # Documents graphed earlier that named a key merged just now join the merge.
            earlier = await self.store.documents_mentioning(
                owner, [derive_entity_id(owner, a.alias_key) for a in new]
            )
            await self._reapply(owner, [d for d in earlier if d != event.document_id], recorded)
        _log.info(
            "graph_document_applied",
            document_id=event.document_id,
            entities=len(graph.entities),
            relations=len(graph.relations),
            merged=[f"{a.alias_key} -> {a.canonical_key}" for a in new],
            recogniser=self.recogniser.name,
            **({"llm_usage": usage} if usage else {}),
        )
        return graph

    async def _new_aliases(
        self, owner: str, raw: ExtractedGraph, texts: list[str], recorded: dict[str, Alias]
    ) -> list[Alias]:
        compacts = sorted({compact_key(e.key) for e in raw.entities})
        known: dict[str, list[str]] = {}
        for compact, keys in (await self.store.variant_keys(owner, compacts)).items():
            for key in keys:
                # Only spellings that still name an entity (a deleted document's do not).
                if await self.store.get_entity(owner, derive_entity_id(owner, key), top=0):
                    known.setdefault(compact, []).append(key)
        return variant_aliases(raw, texts, known, set(recorded))

    async def _reapply(self, owner: str, document_ids: list[str], aliases: dict[str, Alias]) -> int:
        """Write these documents again from their saved extraction under the current merges
        (no text is read again); how many were written."""
        saved = await self.store.extractions(owner, document_ids)
        for document_id, payload in sorted(saved.items()):
            title, refs, raw = decode_extraction(payload)
            graph = apply_aliases(owner, raw, aliases)
            await self.store.apply_document(
                owner, document_id, title, refs, graph.entities, graph.mentions, graph.relations
            )
        return len(saved)

    async def aliases(self, owner: str) -> list[Alias]:
        return await self.store.aliases(owner)

    async def merge(self, owner: str, alias_name: str, canonical_name: str) -> tuple[Alias, int]:
        """Make ``alias_name`` one entity with ``canonical_name`` (a user's merge)."""
        canonical = await self.resolve(owner, canonical_name)
        alias_key = normalise_key(alias_name)
        if not alias_key:
            raise UnprocessableError(f"{alias_name!r} is not an entity name: it has no letters.")
        if alias_key == canonical.key:
            raise UnprocessableError(f"{alias_name!r} already is {canonical.name!r}.")
        if (
            resolve_key(canonical.key, {a.alias_key: a for a in await self.store.aliases(owner)})
            == alias_key
        ):
            raise ConflictError(
                f"{canonical.name!r} is itself merged into {alias_name!r}; undo that merge first."
            )
        alias = Alias(alias_key, canonical.key, "merged by the user")
        await self.store.set_alias(owner, alias)
        recorded = {a.alias_key: a for a in await self.store.aliases(owner)}
        affected = await self.store.documents_mentioning(
            owner, [derive_entity_id(owner, alias_key)]
        )
        return alias, await self._reapply(owner, affected, recorded)

    async def unmerge(self, owner: str, alias_name: str) -> tuple[Alias, int]:
        """Undo a merge: the alias is its own entity again in every document that named it,
        and later documents do not merge it again."""
        alias_key = normalise_key(alias_name)
        recorded = {a.alias_key: a for a in await self.store.aliases(owner)}
        alias = recorded.get(alias_key)
        if alias is None or alias.kept_apart:
            raise NotFoundError(f"{alias_name!r} is not merged into another entity.")
        kept = Alias(alias_key, alias_key, f"kept apart from {alias.canonical_key!r} by the user")
        await self.store.set_alias(owner, kept)
        recorded[alias_key] = kept
        affected = await self.store.documents_mentioning(
            owner, [derive_entity_id(owner, alias.canonical_key)]
        )
        return alias, await self._reapply(owner, affected, recorded)

    async def remove_document(self, event: DocumentDeleted) -> None:
        """Delete the document's part of the graph, then say so (after the delete committed)."""
        await self.store.delete_document(event.owner_id, event.document_id)
        if self._publisher is not None:
            await self._publisher.parts_removed(event.owner_id, event.document_id)

    async def search(self, owner: str, query: str, limit: int) -> list[ScoredEntity]:
        return await self.store.search_entities(owner, query, limit)

    async def resolve(self, owner: str, name_or_id: str) -> Entity:
        """The entity an id or a name means: an exact name (after normalisation) first, else
        the one close match; several close matches are a 409 listing them."""
        if ENTITY_ID.match(name_or_id):
            detail = await self.store.get_entity(owner, name_or_id, top=0)
            if detail is None:
                raise NotFoundError(_no_entity(name_or_id))
            return detail.entity
        key = normalise_key(name_or_id)
        if not key:
            raise UnprocessableError(f"{name_or_id!r} is not an entity name: it has no letters.")
        exact = await self.store.get_entity(owner, derive_entity_id(owner, key), top=0)
        if exact is not None:
            return exact.entity
        found = await self.store.search_entities(owner, name_or_id, MAX_CANDIDATES)
        if not found:
            raise NotFoundError(f"No entity in your knowledge graph is named {name_or_id!r}.")
        # "Curie" names every entity that has the word: one is the answer, several ambiguous.
        words = set(key.split())
        named = [c for c in found if words <= set(c.entity.key.split())]
        if len(named) == 1:
            return named[0].entity
        if not named and (len(found) == 1 or found[0].score >= CLEAR_LEAD * found[1].score):
            return found[0].entity  # a typo ("Sorbone") close to one name only
        found = named or found
        names = ", ".join(f"{c.entity.name} ({c.entity.type}, {c.entity.id})" for c in found)
        raise ConflictError(
            f"{name_or_id!r} could mean {len(found)} entities: {names}. Ask again with one of "
            f"their ids or full names.",
            candidates=[
                {"id": c.entity.id, "name": c.entity.name, "type": c.entity.type, "score": c.score}
                for c in found
            ],
        )

    async def top_entities(
        self, owner: str, *, types: Sequence[str], limit: int
    ) -> list[RankedEntity]:
        return await self.store.top_entities(owner, types=types, limit=limit)

    async def export(self, owner: str) -> Subgraph:
        graph = await self.store.export_graph(
            owner, entities=MAX_EXPORT_ENTITIES, relations=MAX_EXPORT_RELATIONS
        )
        return replace(graph, relations=await self._explained(owner, graph.relations))

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
        relation_types: Sequence[str] = (),
    ) -> Subgraph:
        subgraph = await self.store.neighbors(
            owner, entity_id, depth=depth, types=types, min_weight=min_weight, limit=limit
        )
        if subgraph is None:
            raise NotFoundError(_no_entity(entity_id))
        relations = await self._explained(owner, subgraph.relations)
        if not relation_types:
            return replace(subgraph, relations=relations)
        # Only relations of those types, and the neighbours they reach.
        wanted = set(relation_types)
        relations = tuple(r for r in relations if wanted & {s.type for s in r.statements})
        linked = {i for r in relations for i in (r.source_id, r.target_id)} | {entity_id}
        entities = tuple(e for e in subgraph.entities if e.id in linked)
        distances = {k: v for k, v in subgraph.distances.items() if k in linked}
        return Subgraph(entities, relations, distances)

    async def path(
        self, owner: str, source_id: str, target_id: str, max_depth: int = MAX_PATH_DEPTH
    ) -> Path:
        names = []
        for end in (source_id, target_id):
            detail = await self.store.get_entity(owner, end, top=0)
            if detail is None:
                raise NotFoundError(_no_entity(end))
            names.append(detail.entity.name)
        path = await self.store.shortest_path(owner, source_id, target_id, max_depth=max_depth)
        if path is None:
            # The entities' names, as the user knows them: never the internal ids.
            raise NotFoundError(
                f"No path of at most {max_depth} relation{'' if max_depth == 1 else 's'} "
                f"joins {names[0]} and {names[1]}."
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
