"""Routes of the document service. Every one is scoped to the caller: others' documents are 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from kglab_document.api.deps import DocumentServiceDep
from kglab_document.domain import MAX_PAGE_SIZE, DocumentFilters, SortOrder
from kglab_document.schemas import (
    ChunkOut,
    ChunkPageOut,
    DeletionAcceptedOut,
    DeletionStatusOut,
    DocumentOut,
    DocumentPageOut,
)
from kglab_shared.claims import CLAIM_HEADER
from kglab_shared.errors import NotFoundError, UnauthorizedError, UnprocessableError, documented
from kglab_shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])
#: For the vector and graph services, which hold a document's claim (adr/0020); the gateway
#: routes nothing here.
internal_router = APIRouter(prefix="/internal/documents", tags=["internal"])

_SIGNED_OUT = documented(UnauthorizedError, "Sign in first: this route needs a bearer token.")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _SIGNED_OUT,
    404: documented(
        NotFoundError,
        "There is no document '530a20c599725e8d8168319cbc3d624b' among your documents.",
        description="No such document among yours (another user's answers the same).",
    ),
}
Cursor = Annotated[
    str | None,
    Query(description="The next_cursor of the previous page; omit for the first page."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]


@router.get(
    "",
    response_model=DocumentPageOut,
    responses={
        401: _SIGNED_OUT,
        422: documented(UnprocessableError, "'limit': Input should be less than or equal to 100."),
    },
)
async def list_documents(
    identity: CurrentIdentity,
    service: DocumentServiceDep,
    cursor: Cursor = None,
    limit: Limit = 20,
    media_type: Annotated[
        str | None, Query(alias="type", description="Only this media type, e.g. text/plain.")
    ] = None,
    created_from: Annotated[
        datetime | None, Query(description="Submitted at or after this time (ISO 8601).")
    ] = None,
    created_to: Annotated[
        datetime | None, Query(description="Submitted before this time (ISO 8601).")
    ] = None,
    source: Annotated[
        str | None, Query(description="Only documents from this file name or URL.")
    ] = None,
    sort: Annotated[
        SortOrder, Query(description="-created_at (newest first), created_at, or title.")
    ] = SortOrder.NEWEST,
) -> DocumentPageOut:
    """List your documents, newest first, one page at a time."""
    filters = DocumentFilters(
        media_type=media_type, created_from=created_from, created_to=created_to, source=source
    )
    page = await service.list_documents(
        identity.user_id, filters=filters, sort=sort, limit=limit, cursor=cursor
    )
    return DocumentPageOut.of(page, DocumentOut.of)


@router.get("/{document_id}", response_model=DocumentOut, responses=_ERRORS)
async def get_document(
    document_id: str, identity: CurrentIdentity, service: DocumentServiceDep
) -> DocumentOut:
    """Get one of your documents."""
    return DocumentOut.of(await service.get(identity.user_id, document_id))


@router.get("/{document_id}/chunks", response_model=ChunkPageOut, responses=_ERRORS)
async def list_chunks(
    document_id: str,
    identity: CurrentIdentity,
    service: DocumentServiceDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ChunkPageOut:
    """List a document's chunks in reading order."""
    page = await service.chunks(identity.user_id, document_id, limit=limit, cursor=cursor)
    return ChunkPageOut.of(page, ChunkOut.of)


@router.delete(
    "/{document_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeletionAcceptedOut,
    responses=_ERRORS,
)
async def delete_document(
    document_id: str, identity: CurrentIdentity, service: DocumentServiceDep, response: Response
) -> DeletionAcceptedOut:
    """Delete a document; its search vectors and graph follow."""
    document = await service.delete(identity.user_id, document_id)
    deletion_url = f"{router.prefix}/{document.id}/deletion"
    response.headers["Location"] = deletion_url
    return DeletionAcceptedOut(
        document_id=document.id, status=document.status, deletion_url=deletion_url
    )


@router.get("/{document_id}/deletion", response_model=DeletionStatusOut, responses=_ERRORS)
async def get_deletion_status(
    document_id: str, identity: CurrentIdentity, service: DocumentServiceDep
) -> DeletionStatusOut:
    """Report which parts of a deleted document are gone."""
    return DeletionStatusOut.of(await service.deletion(identity.user_id, document_id))


@internal_router.get("/{document_id}/chunks", response_model=ChunkPageOut, responses=_ERRORS)
async def list_claimed_chunks(
    document_id: str,
    owner_id: str,
    service: DocumentServiceDep,
    claim: Annotated[str | None, Header(alias=CLAIM_HEADER)] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> ChunkPageOut:
    """List a document's chunks for a service that holds its claim."""
    page = await service.claimed_chunks(owner_id, document_id, claim, limit=limit, cursor=cursor)
    return ChunkPageOut.of(page, ChunkOut.of)
