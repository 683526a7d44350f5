"""FastAPI dependencies of the document service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kglab_document.rebuild import Rebuilder
from kglab_document.service import DocumentService


async def document_service(request: Request) -> DocumentService:
    service: DocumentService = request.app.state.document_service
    return service


DocumentServiceDep = Annotated[DocumentService, Depends(document_service)]


async def rebuilder(request: Request) -> Rebuilder:
    found: Rebuilder = request.app.state.rebuilder
    return found


RebuilderDep = Annotated[Rebuilder, Depends(rebuilder)]
