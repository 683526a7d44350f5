"""The vector service's HTTP shapes (what the OpenAPI document shows)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kglab_vector.domain import SearchHit, SearchMode


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


class SearchResponse(BaseModel):
    results: list[SearchResultOut]
    mode: SearchMode

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "mode": "hybrid",
                    "results": [
                        {
                            "document_id": "doc-8f2c",
                            "chunk_id": "doc-8f2c-3",
                            "text": "The town's income comes mostly from salt mining…",
                            "score": 0.5,
                            "title": "Velmora",
                            "position": 3,
                            "heading": "Economy",
                        }
                    ],
                }
            ]
        }
    }
