"""FastAPI dependencies of the vector service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kglab_vector.service import VectorService


async def vector_service(request: Request) -> VectorService:
    service: VectorService = request.app.state.vector_service
    return service


VectorServiceDep = Annotated[VectorService, Depends(vector_service)]
