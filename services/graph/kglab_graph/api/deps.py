"""Dependencies of the graph routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kglab_graph.service import GraphService
from kglab_shared.errors import ServiceUnavailableError


async def graph_service(request: Request) -> GraphService:
    service: GraphService | None = getattr(request.app.state, "graph_service", None)
    if service is None:
        raise ServiceUnavailableError("The graph store is not ready yet; try again shortly.")
    return service


GraphServiceDep = Annotated[GraphService, Depends(graph_service)]
