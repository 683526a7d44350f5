"""Routes of the vector service. A search only ever sees the caller's own chunks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kglab_shared.errors import UnauthorizedError, UnprocessableError, documented
from kglab_shared.identity import IDENTITY_HEADER, CurrentIdentity
from kglab_vector.api.deps import VectorServiceDep
from kglab_vector.domain import (
    GRAPH_RELATED_LIMIT,
    GRAPH_SEED_HITS,
    MAX_FILTER_CHARS,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    SearchFilters,
    SearchMode,
    SearchQuery,
    parse_expand,
    validate_query,
)
from kglab_vector.graph import GraphUnavailableError, RelatedDocuments
from kglab_vector.schemas import RelatedDocumentOut, SearchResponse, SearchResultOut

#: Said with an empty answer: nothing searchable, or nothing close enough (adr/0024).
NOTHING_RELEVANT = "Nothing in your documents is relevant to this query."

router = APIRouter(tags=["search"])
CACHE_HEADER = "X-KGLab-Cache"


@router.get(
    "/api/v1/search",
    response_model=SearchResponse,
    responses={
        401: documented(UnauthorizedError, "Sign in first: this route needs a bearer token."),
        422: documented(
            UnprocessableError,
            "The query 'q' is empty; type a few words to search for.",
            description="An empty or too long query, or a limit out of range.",
        ),
    },
)
async def search(
    identity: CurrentIdentity,
    service: VectorServiceDep,
    request: Request,
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
    answer = SearchResponse(results=[SearchResultOut.of(h) for h in hits], mode=mode)
    if not hits:
        answer.notices.append(NOTHING_RELEVANT)
    if "graph" in query.expand:
        # Not cached with the hits: the graph service indexes the same documents on its own
        # schedule, so its part of the answer is asked for fresh each time.
        graph: RelatedDocuments = request.app.state.graph_client
        top = hits[:GRAPH_SEED_HITS]
        try:
            related = (
                await graph.related(
                    request.headers[IDENTITY_HEADER],
                    [h.chunk_id for h in top],
                    exclude_documents=sorted({h.document_id for h in hits}),
                    limit=GRAPH_RELATED_LIMIT,
                )
                if top
                else []
            )
            answer.related_documents = [RelatedDocumentOut.of(d) for d in related]
        except GraphUnavailableError as exc:
            answer.related_documents = []
            answer.notices.append(str(exc))
    return answer
