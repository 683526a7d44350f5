"""The graph service's HTTP shapes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kglab_graph.domain import (
    Entity,
    EntityDetail,
    Path,
    RelatedDocument,
    Relation,
    ScoredEntity,
    Subgraph,
)


class EntityOut(BaseModel):
    id: str
    name: str
    type: str

    @classmethod
    def of(cls, entity: Entity) -> EntityOut:
        return cls(id=entity.id, name=entity.name, type=entity.type)


class ScoredEntityOut(EntityOut):
    score: float


class EntitySearchResponse(BaseModel):
    query: str
    results: list[ScoredEntityOut]

    @classmethod
    def of(cls, query: str, results: list[ScoredEntity]) -> EntitySearchResponse:
        return cls(
            query=query,
            results=[
                ScoredEntityOut(
                    id=r.entity.id, name=r.entity.name, type=r.entity.type, score=r.score
                )
                for r in results
            ],
        )


class DocumentMentionsOut(BaseModel):
    document_id: str
    title: str
    mentions: int


class EntityDetailOut(EntityOut):
    degree: int = Field(description="How many entities this one is related to.")
    mentions: int = Field(description="How often your documents name it.")
    top_documents: list[DocumentMentionsOut]

    @classmethod
    def from_detail(cls, detail: EntityDetail) -> EntityDetailOut:
        return cls(
            id=detail.entity.id,
            name=detail.entity.name,
            type=detail.entity.type,
            degree=detail.degree,
            mentions=detail.mentions,
            top_documents=[
                DocumentMentionsOut(document_id=d.document_id, title=d.title, mentions=d.mentions)
                for d in detail.top_documents
            ],
        )


class RelationOut(BaseModel):
    source: str
    target: str
    type: str = "RELATED_TO"
    weight: int = Field(description="How many sentences name both entities.")
    evidence: list[str] = Field(
        default_factory=list, description="The sentences, as document:chunk:sentence."
    )

    @classmethod
    def of(cls, relation: Relation) -> RelationOut:
        return cls(
            source=relation.source_id,
            target=relation.target_id,
            weight=relation.weight,
            evidence=list(relation.evidence),
        )


class NeighborOut(EntityOut):
    distance: int


class NeighborsResponse(BaseModel):
    entity: EntityOut
    depth: int
    neighbors: list[NeighborOut]
    relations: list[RelationOut]

    @classmethod
    def of(cls, subgraph: Subgraph, depth: int) -> NeighborsResponse:
        start, *rest = subgraph.entities
        return cls(
            entity=EntityOut.of(start),
            depth=depth,
            neighbors=[
                NeighborOut(id=e.id, name=e.name, type=e.type, distance=subgraph.distances[e.id])
                for e in rest
            ],
            relations=[RelationOut.of(r) for r in subgraph.relations],
        )


class PathResponse(BaseModel):
    source: str
    target: str
    length: int
    entities: list[EntityOut]
    relations: list[RelationOut]

    @classmethod
    def of(cls, path: Path) -> PathResponse:
        return cls(
            source=path.entities[0].id,
            target=path.entities[-1].id,
            length=path.length,
            entities=[EntityOut.of(e) for e in path.entities],
            relations=[RelationOut.of(r) for r in path.relations],
        )


class DocumentGraphResponse(BaseModel):
    document_id: str
    entities: list[EntityOut]
    relations: list[RelationOut]

    @classmethod
    def of(cls, document_id: str, subgraph: Subgraph) -> DocumentGraphResponse:
        return cls(
            document_id=document_id,
            entities=[EntityOut.of(e) for e in subgraph.entities],
            relations=[RelationOut.of(r) for r in subgraph.relations],
        )


class RelatedDocumentOut(BaseModel):
    document_id: str
    title: str
    shared_entities: int = Field(description="How many entities connect it to the given chunks.")
    via: list[str] = Field(description="Names of (up to five of) those entities.")


class RelatedDocumentsResponse(BaseModel):
    results: list[RelatedDocumentOut]

    @classmethod
    def of(cls, related: list[RelatedDocument]) -> RelatedDocumentsResponse:
        return cls(
            results=[
                RelatedDocumentOut(
                    document_id=r.document_id,
                    title=r.title,
                    shared_entities=r.shared_entities,
                    via=list(r.via),
                )
                for r in related
            ]
        )
