"""The vector service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kglab_vector.domain import SearchHit, SearchMode
from kglab_vector.graph import GraphDocument


class SearchResultOut(BaseModel):
    document_id: str
    chunk_id: str
    text: str = Field(description="A snippet of the chunk around the words you searched for.")
    score: float = Field(
        description="Higher is better. Hybrid: reciprocal rank fusion; dense: cosine "
        "similarity; sparse: BM25."
    )
    title: str = Field(description="The document's title.")
    position: int = Field(description="The chunk's place in the document, from 0.")
    heading: str | None = Field(default=None, description="The section the chunk is under.")

    @classmethod
    def of(cls, hit: SearchHit) -> SearchResultOut:
        return cls(
            document_id=hit.document_id,
            chunk_id=hit.chunk_id,
            text=hit.text,
            score=hit.score,
            title=hit.title,
            position=hit.position,
            heading=hit.heading,
        )


class RelatedDocumentOut(BaseModel):
    """A document none of the hits is from, reached through entities the top hits mention."""

    document_id: str
    title: str
    reached_through: Literal["graph"] = Field(
        default="graph", description="Marks a document found through the knowledge graph."
    )
    shared_entities: int = Field(description="How many entities connect it to the top hits.")
    via: list[str] = Field(description="Names of (up to five of) those entities.")

    @classmethod
    def of(cls, document: GraphDocument) -> RelatedDocumentOut:
        return cls(
            document_id=document.document_id,
            title=document.title,
            shared_entities=document.shared_entities,
            via=list(document.via),
        )


class SearchResponse(BaseModel):
    results: list[SearchResultOut]
    mode: SearchMode
    related_documents: list[RelatedDocumentOut] | None = Field(
        default=None,
        description="With expand=graph: documents reached through the top hits' entities.",
    )
    notices: list[str] = Field(
        default_factory=list,
        description="Why part of the answer is missing, e.g. the graph service was unavailable.",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "mode": "hybrid",
                    "results": [
                        {
                            "document_id": "530a20c599725e8d8168319cbc3d624b",
                            "chunk_id": "530a20c599725e8d8168319cbc3d624b-00003",
                            "text": "The town's income comes mostly from salt mining…",
                            "score": 0.5,
                            "title": "Velmora: a salt town",
                            "position": 3,
                            "heading": "Economy",
                        }
                    ],
                    "related_documents": [
                        {
                            "document_id": "7d2e9b4a1c0f4e8a9b3c5d6e7f8a9b0c",
                            "title": "Radium and its discoverers",
                            "reached_through": "graph",
                            "shared_entities": 2,
                            "via": ["Marie Curie", "Pierre Curie"],
                        }
                    ],
                    "notices": [],
                }
            ]
        }
    }
