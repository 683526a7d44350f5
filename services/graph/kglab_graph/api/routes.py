"""Routes of the graph service. Every one is scoped to the caller: another user's entity or
document answers 404, exactly as a missing one does."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from kglab_graph.api.deps import GraphServiceDep
from kglab_graph.domain import MAX_DEPTH, MAX_LIMIT, MAX_PATH_DEPTH, MAX_RELATED, MIN_DEPTH
from kglab_graph.schemas import (
    DocumentGraphResponse,
    EntityDetailOut,
    EntitySearchResponse,
    NeighborsResponse,
    PathResponse,
    RelatedDocumentsResponse,
)
from kglab_shared.errors import NotFoundError, documented
from kglab_shared.identity import CurrentIdentity

router = APIRouter(tags=["graph"])

_Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: _Responses = {
    404: documented(
        NotFoundError,
        "There is no entity ent_e6c850b97dc8630d5a775e91 in your knowledge graph.",
        description="No such entity among yours (another user's answers the same).",
    )
}
_NO_PATH: _Responses = {
    404: documented(
        NotFoundError,
        "There is no entity ent_e6c850b97dc8630d5a775e91 in your knowledge graph.",
        "No path of at most 6 relations joins ent_e6c850b97dc8630d5a775e91 and "
        "ent_b00ba78114a51924de27fd7a.",
        description="An entity is not among yours, or no path joins them.",
    )
}
_NO_DOCUMENT: _Responses = {
    404: documented(
        NotFoundError,
        "There is no document 530a20c599725e8d8168319cbc3d624b in your knowledge graph.",
        description="No such document among yours (another user's answers the same).",
    )
}


@router.get("/api/v1/graph/entities", response_model=EntitySearchResponse)
async def search_entities(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="A name; typos are tolerated.",
            examples=["Marie Curie"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> EntitySearchResponse:
    """Search your entities by name."""
    return EntitySearchResponse.of(q, await service.search(identity.user_id, q, limit))


@router.get(
    "/api/v1/graph/entities/{entity_id}", response_model=EntityDetailOut, responses=_NOT_FOUND
)
async def get_entity(
    entity_id: str, identity: CurrentIdentity, service: GraphServiceDep
) -> EntityDetailOut:
    """Show an entity with its degree and the documents that name it most."""
    return EntityDetailOut.from_detail(await service.entity(identity.user_id, entity_id))


@router.get(
    "/api/v1/graph/entities/{entity_id}/neighbors",
    response_model=NeighborsResponse,
    responses=_NOT_FOUND,
)
async def get_neighbors(
    entity_id: str,
    identity: CurrentIdentity,
    service: GraphServiceDep,
    depth: Annotated[
        int, Query(ge=MIN_DEPTH, le=MAX_DEPTH, description="How many hops, 1 to 3.")
    ] = 1,
    entity_types: Annotated[
        list[str] | None,
        Query(alias="type", description="Only neighbours of these types (repeatable)."),
    ] = None,
    min_weight: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> NeighborsResponse:
    """List the entities related to an entity, nearest first."""
    types = sorted(
        {t.strip().upper() for raw in entity_types or [] for t in raw.split(",") if t.strip()}
    )
    subgraph = await service.neighbors(
        identity.user_id, entity_id, depth=depth, types=types, min_weight=min_weight, limit=limit
    )
    return NeighborsResponse.of(subgraph, depth)


@router.get("/api/v1/graph/paths", response_model=PathResponse, responses=_NO_PATH)
async def get_path(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    source: Annotated[str, Query(alias="from", min_length=1, description="An entity id.")],
    target: Annotated[str, Query(alias="to", min_length=1, description="An entity id.")],
    max_depth: Annotated[int, Query(ge=1, le=MAX_PATH_DEPTH)] = MAX_PATH_DEPTH,
) -> PathResponse:
    """Find a shortest path between two entities."""
    return PathResponse.of(await service.path(identity.user_id, source, target, max_depth))


@router.get(
    "/api/v1/documents/{document_id}/graph",
    response_model=DocumentGraphResponse,
    responses=_NO_DOCUMENT,
)
async def get_document_graph(
    document_id: str,
    identity: CurrentIdentity,
    service: GraphServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> DocumentGraphResponse:
    """Show the entities and relations extracted from one document."""
    subgraph = await service.document_graph(identity.user_id, document_id, limit)
    return DocumentGraphResponse.of(document_id, subgraph)


@router.get("/api/v1/graph/related-documents", response_model=RelatedDocumentsResponse)
async def related_documents(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    chunk_id: Annotated[
        list[str],
        Query(
            min_length=1,
            max_length=50,
            description="Chunks to start from (repeat the parameter), e.g. a search's top hits.",
        ),
    ],
    exclude: Annotated[
        list[str],
        Query(max_length=50, description="Document ids to leave out (repeat the parameter)."),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    limit: Annotated[int, Query(ge=1, le=MAX_RELATED)] = 10,
) -> RelatedDocumentsResponse:
    """Find your documents that share entities with the given chunks."""
    related = await service.related_documents(
        identity.user_id, chunk_id, exclude_documents=exclude, limit=limit
    )
    return RelatedDocumentsResponse.of(related)
