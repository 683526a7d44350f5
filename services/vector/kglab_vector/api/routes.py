"""Routes of the vector service. A search only ever sees the caller's own chunks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from kglab_shared.identity import CurrentIdentity
from kglab_vector.api.deps import VectorServiceDep
from kglab_vector.domain import (
    MAX_FILTER_CHARS,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    SearchFilters,
    SearchMode,
    SearchQuery,
    parse_expand,
    validate_query,
)
from kglab_vector.schemas import SearchResponse, SearchResultOut

router = APIRouter(tags=["search"])
CACHE_HEADER = "X-KGLab-Cache"


@router.get(
    "/api/v1/search",
    response_model=SearchResponse,
    responses={
        401: {"description": "No signed-in caller."},
        422: {"description": "An empty or too long query, or a limit out of range."},
    },
)
async def search(
    identity: CurrentIdentity,
    service: VectorServiceDep,
    response: Response,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="What to look for, in your own words.",
            examples=["how does the town make its money"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many chunks.")] = 10,
    mode: Annotated[
        SearchMode,
        Query(description="hybrid (meaning and words, fused), dense (meaning) or sparse (words)."),
    ] = SearchMode.HYBRID,
    document_id: Annotated[
        str | None,
        Query(max_length=MAX_FILTER_CHARS, description="Only chunks of this document."),
    ] = None,
    media_type: Annotated[
        str | None,
        Query(
            alias="type",
            max_length=MAX_FILTER_CHARS,
            description="Only documents of this media type, e.g. application/pdf.",
        ),
    ] = None,
    expand: Annotated[
        list[str] | None,
        Query(max_length=MAX_FILTER_CHARS, description="Extra data to attach to each result."),
    ] = None,
) -> SearchResponse:
    """Search your documents' chunks by meaning and by words."""
    query = SearchQuery(
        owner_id=identity.user_id,
        text=validate_query(q),
        mode=mode,
        limit=limit,
        filters=SearchFilters(document_id=document_id, media_type=media_type),
        expand=parse_expand(expand),
    )
    hits, cached = await service.search(query)
    response.headers[CACHE_HEADER] = "hit" if cached else "miss"
    return SearchResponse(results=[SearchResultOut.of(h) for h in hits], mode=mode)
