"""The graph service's HTTP shapes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kglab_graph.domain import (
    Alias,
    Entity,
    EntityDetail,
    Path,
    RankedEntity,
    RelatedDocument,
    Relation,
    ScoredEntity,
    Statement,
    Subgraph,
)

# One fictional document and its entities, so every example tells the same story.
_DOCUMENT_ID = "530a20c599725e8d8168319cbc3d624b"
_MARIE: JsonDict = {"id": "ent_e6c850b97dc8630d5a775e91", "name": "Marie Curie", "type": "PERSON"}
_PIERRE: JsonDict = {"id": "ent_3af7f4e6d39ff9c1a816f937", "name": "Pierre Curie", "type": "PERSON"}
_PARIS: JsonDict = {"id": "ent_b00ba78114a51924de27fd7a", "name": "Paris", "type": "GPE"}
_MARIE_PIERRE: JsonDict = {
    "source": _PIERRE["id"],
    "target": _MARIE["id"],
    "type": "RELATED_TO",
    "weight": 3,
    "evidence": [f"{_DOCUMENT_ID}:{_DOCUMENT_ID}-00003:1"],
}
_PIERRE_PARIS: JsonDict = {
    "source": _PIERRE["id"],
    "target": _PARIS["id"],
    "type": "RELATED_TO",
    "weight": 1,
    "evidence": [f"{_DOCUMENT_ID}:{_DOCUMENT_ID}-00003:2"],
}


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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "Curie",
                    "results": [{**_MARIE, "score": 0.95}, {**_PIERRE, "score": 0.93}],
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_MARIE,
                    "degree": 2,
                    "mentions": 7,
                    "top_documents": [
                        {
                            "document_id": _DOCUMENT_ID,
                            "title": "Velmora: a salt town",
                            "mentions": 5,
                        }
                    ],
                }
            ]
        }
    )

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


class StatementOut(BaseModel):
    """What one document says relates the pair: a typed relation read from a sentence's
    structure (``source`` does ``type`` to ``target``, said with ``verb``), or ``RELATED_TO``,
    the weaker co-occurrence of both names in one sentence."""

    type: str = Field(description="CREATED, USES, SUPPORTS, ... or RELATED_TO (co-occurrence).")
    kind: str = Field(description="typed or co-occurrence")
    source: str
    target: str
    verb: str = Field(description="The verb (lemma) that said it; empty for co-occurrence.")
    document_id: str
    evidence: list[str] = Field(description="The sentences, as document:chunk:sentence.")
    sentences: list[str] = Field(description="The text of (the first few of) those sentences.")

    @classmethod
    def of(cls, statement: Statement) -> StatementOut:
        return cls(
            type=statement.type,
            kind="co-occurrence" if statement.type == "RELATED_TO" else "typed",
            source=statement.source_id,
            target=statement.target_id,
            verb=statement.verb,
            document_id=statement.document_id,
            evidence=list(statement.evidence),
            sentences=list(statement.sentences),
        )


class RelationOut(BaseModel):
    source: str
    target: str
    type: str = "RELATED_TO"
    weight: int = Field(description="How many sentences name both entities.")
    evidence: list[str] = Field(
        default_factory=list, description="The sentences, as document:chunk:sentence."
    )
    types: list[str] = Field(
        default_factory=list, description="The typed relations the documents state on the pair."
    )
    statements: list[StatementOut] = Field(
        default_factory=list,
        description="What the documents say about the pair, typed relations first, with the "
        "verb and the sentences.",
    )

    @classmethod
    def of(cls, relation: Relation) -> RelationOut:
        return cls(
            source=relation.source_id,
            target=relation.target_id,
            weight=relation.weight,
            evidence=list(relation.evidence),
            types=sorted({s.type for s in relation.statements if s.type != "RELATED_TO"}),
            statements=[StatementOut.of(s) for s in relation.statements],
        )


class NeighborOut(EntityOut):
    distance: int


class NeighborsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity": _MARIE,
                    "depth": 2,
                    "neighbors": [{**_PIERRE, "distance": 1}, {**_PARIS, "distance": 2}],
                    "relations": [_MARIE_PIERRE, _PIERRE_PARIS],
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": _MARIE["id"],
                    "target": _PARIS["id"],
                    "length": 2,
                    "entities": [_MARIE, _PIERRE, _PARIS],
                    "relations": [_MARIE_PIERRE, _PIERRE_PARIS],
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "document_id": _DOCUMENT_ID,
                    "entities": [_MARIE, _PIERRE, _PARIS],
                    "relations": [_MARIE_PIERRE, _PIERRE_PARIS],
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "document_id": "7d2e9b4a1c0f4e8a9b3c5d6e7f8a9b0c",
                            "title": "Radium and its discoverers",
                            "shared_entities": 2,
                            "via": ["Marie Curie", "Pierre Curie"],
                        }
                    ]
                }
            ]
        }
    )

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


class RankedEntityOut(EntityOut):
    degree: int = Field(description="How many entities this one is related to.")


class TopEntitiesResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"results": [{**_PIERRE, "degree": 2}, {**_MARIE, "degree": 1}]}]
        }
    )

    results: list[RankedEntityOut]

    @classmethod
    def of(cls, ranked: list[RankedEntity]) -> TopEntitiesResponse:
        return cls(
            results=[
                RankedEntityOut(
                    id=r.entity.id, name=r.entity.name, type=r.entity.type, degree=r.degree
                )
                for r in ranked
            ]
        )


class AliasOut(BaseModel):
    alias: str = Field(description="The merged name's key.")
    canonical: str = Field(description="The key of the entity it is one with.")
    reason: str
    kept_apart: bool = Field(description="A merge undone: the two stay apart from now on.")

    @classmethod
    def of(cls, alias: Alias) -> AliasOut:
        return cls(
            alias=alias.alias_key,
            canonical=alias.canonical_key,
            reason=alias.reason,
            kept_apart=alias.kept_apart,
        )


class AliasesResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "alias": "fsf",
                            "canonical": "free software foundation",
                            "reason": "declared as the acronym of 'free software foundation'",
                            "kept_apart": False,
                        }
                    ]
                }
            ]
        }
    )

    results: list[AliasOut]


class MergeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"alias": "NodeJS", "canonical": "Node.js"}]}
    )

    alias: str = Field(min_length=1, max_length=200, description="The name to merge.")
    canonical: str = Field(
        min_length=1, max_length=200, description="The entity (name or id) it is one with."
    )


class MergeResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alias": {
                        "alias": "fsf",
                        "canonical": "free software foundation",
                        "reason": "merged by the user",
                        "kept_apart": False,
                    },
                    "documents_rewritten": 2,
                }
            ]
        }
    )

    alias: AliasOut
    documents_rewritten: int = Field(description="Documents written again under the change.")
