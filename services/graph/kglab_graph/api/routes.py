"""Routes of the graph service. Every one is scoped to the caller: another user's entity or
document answers 404, exactly as a missing one does."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from kglab_graph.api.deps import GraphServiceDep
from kglab_graph.domain import MAX_DEPTH, MAX_LIMIT, MAX_PATH_DEPTH, MAX_RELATED, MIN_DEPTH
from kglab_graph.export import to_graphml, to_jsonld, to_neo4j_csv
from kglab_graph.schemas import (
    AliasesResponse,
    AliasOut,
    DocumentGraphResponse,
    EntityDetailOut,
    EntitySearchResponse,
    MergeIn,
    MergeResponse,
    NeighborsResponse,
    PathResponse,
    RelatedDocumentsResponse,
    TopEntitiesResponse,
)
from kglab_shared.errors import ConflictError, NotFoundError, documented
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
        "No path of at most 6 relations joins Marie Curie and Velmora.",
        description="An entity is not among yours, or no path joins them.",
    )
}
_AMBIGUOUS: _Responses = {
    409: documented(
        ConflictError,
        "'Curie' could mean 2 entities: Marie Curie (PERSON, ent_e6c850b97dc8630d5a775e91), "
        "Pierre Curie (PERSON, ent_3af7f4e6d39ff9c1a816f937). Ask again with one of their ids "
        "or full names.",
        description="The name could mean several of your entities; `candidates` lists them.",
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


def _upper_list(raw: list[str] | None) -> list[str]:
    """``?type=a,b&type=c`` as one sorted list of upper-case names."""
    return sorted({t.strip().upper() for item in raw or [] for t in item.split(",") if t.strip()})


_EntityTypes = Annotated[
    list[str] | None,
    Query(alias="type", description="Only neighbours of these types (repeatable)."),
]
_RelationTypes = Annotated[
    list[str] | None,
    Query(
        alias="relation_type",
        description="Only relations some document states with these types (CREATED, USES, "
        "SUPPORTS, ...; repeatable), and the neighbours they reach.",
    ),
]
_Depth = Annotated[int, Query(ge=MIN_DEPTH, le=MAX_DEPTH, description="How many hops, 1 to 3.")]
_MinWeight = Annotated[int, Query(ge=1, le=1_000_000)]
_Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.get(
    "/api/v1/graph/entities/{entity_id}/neighbors",
    response_model=NeighborsResponse,
    responses=_NOT_FOUND,
)
async def get_neighbors(
    entity_id: str,
    identity: CurrentIdentity,
    service: GraphServiceDep,
    depth: _Depth = 1,
    entity_types: _EntityTypes = None,
    relation_types: _RelationTypes = None,
    min_weight: _MinWeight = 1,
    limit: _Limit = 50,
) -> NeighborsResponse:
    """List the entities related to an entity, nearest first."""
    subgraph = await service.neighbors(
        identity.user_id,
        entity_id,
        depth=depth,
        types=_upper_list(entity_types),
        min_weight=min_weight,
        limit=limit,
        relation_types=_upper_list(relation_types),
    )
    return NeighborsResponse.of(subgraph, depth)


@router.get(
    "/api/v1/graph/neighbors",
    response_model=NeighborsResponse,
    responses={**_NOT_FOUND, **_AMBIGUOUS},
)
async def get_neighbors_by_name(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    entity: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="An entity's name (or id). A name that could mean several entities "
            "answers 409 with the candidates.",
            examples=["Marie Curie"],
        ),
    ],
    depth: _Depth = 1,
    entity_types: _EntityTypes = None,
    relation_types: _RelationTypes = None,
    min_weight: _MinWeight = 1,
    limit: _Limit = 50,
) -> NeighborsResponse:
    """List the entities related to an entity given by name, nearest first."""
    start = await service.resolve(identity.user_id, entity)
    subgraph = await service.neighbors(
        identity.user_id,
        start.id,
        depth=depth,
        types=_upper_list(entity_types),
        min_weight=min_weight,
        limit=limit,
        relation_types=_upper_list(relation_types),
    )
    return NeighborsResponse.of(subgraph, depth)


@router.get(
    "/api/v1/graph/paths", response_model=PathResponse, responses={**_NO_PATH, **_AMBIGUOUS}
)
async def get_path(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    source: Annotated[
        str,
        Query(alias="from", min_length=1, max_length=200, description="An entity id or name."),
    ],
    target: Annotated[
        str, Query(alias="to", min_length=1, max_length=200, description="An entity id or name.")
    ],
    max_depth: Annotated[int, Query(ge=1, le=MAX_PATH_DEPTH)] = MAX_PATH_DEPTH,
) -> PathResponse:
    """Find a shortest path between two entities, given by id or by name."""
    start = await service.resolve(identity.user_id, source)
    end = await service.resolve(identity.user_id, target)
    return PathResponse.of(await service.path(identity.user_id, start.id, end.id, max_depth))


@router.get("/api/v1/graph/top-entities", response_model=TopEntitiesResponse)
async def top_entities(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    entity_types: Annotated[
        list[str] | None, Query(alias="type", description="Only these types (repeatable).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> TopEntitiesResponse:
    """Your most connected entities: where to start exploring without typing a name."""
    return TopEntitiesResponse.of(
        await service.top_entities(identity.user_id, types=_upper_list(entity_types), limit=limit)
    )


@router.get(
    "/api/v1/graph/export",
    response_class=Response,
    responses={
        200: {
            "description": "The graph: GraphML (application/graphml+xml), JSON-LD "
            "(application/ld+json) or a zip of entities.csv and relations.csv for "
            "`neo4j-admin database import full` (application/zip).",
            "content": {
                "application/graphml+xml": {},
                "application/ld+json": {},
                "application/zip": {},
            },
        }
    },
)
async def export_graph(
    identity: CurrentIdentity,
    service: GraphServiceDep,
    export_format: Annotated[
        Literal["graphml", "jsonld", "csv"],
        Query(alias="format", description="graphml, jsonld or csv (neo4j-admin import)."),
    ] = "graphml",
) -> Response:
    """Download your graph: the most connected 5,000 entities and the relations among them,
    typed relations as their own edges."""
    graph = await service.export(identity.user_id)
    if export_format == "graphml":
        return Response(to_graphml(graph), media_type="application/graphml+xml")
    if export_format == "jsonld":
        return Response(json.dumps(to_jsonld(graph)), media_type="application/ld+json")
    return Response(
        to_neo4j_csv(graph),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="kglab-graph-neo4j-import.zip"'},
    )


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


@router.get("/api/v1/graph/aliases", response_model=AliasesResponse)
async def list_aliases(identity: CurrentIdentity, service: GraphServiceDep) -> AliasesResponse:
    """Names merged into one entity across your documents (acronyms, spellings, your merges),
    and merges undone."""
    return AliasesResponse(
        results=[AliasOut.of(a) for a in await service.aliases(identity.user_id)]
    )


@router.post(
    "/api/v1/graph/aliases",
    response_model=MergeResponse,
    status_code=201,
    responses={**_NOT_FOUND, **_AMBIGUOUS},
)
async def merge_entities(
    body: MergeIn, identity: CurrentIdentity, service: GraphServiceDep
) -> MergeResponse:
    """Merge a name into an entity: every document that names it is rewritten (no text is
    read again) and later documents follow. Reversible with DELETE."""
    alias, rewritten = await service.merge(identity.user_id, body.alias, body.canonical)
    return MergeResponse(alias=AliasOut.of(alias), documents_rewritten=rewritten)


@router.delete(
    "/api/v1/graph/aliases/{alias}",
    response_model=MergeResponse,
    responses={
        404: documented(
            NotFoundError,
            "'FSF' is not merged into another entity.",
            description="No merge of that name among yours.",
        )
    },
)
async def undo_merge(
    alias: str, identity: CurrentIdentity, service: GraphServiceDep
) -> MergeResponse:
    """Undo a merge: the name is its own entity again, and stays apart from now on."""
    undone, rewritten = await service.unmerge(identity.user_id, alias)
    return MergeResponse(alias=AliasOut.of(undone), documents_rewritten=rewritten)
