"""The graph service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from kglab_graph.api.routes import router
from kglab_graph.config import GraphSettings
from kglab_graph.extraction import BackgroundLoadedRecogniser
from kglab_graph.messaging import consume
from kglab_graph.messaging.publish import PartsRemovedPublisher
from kglab_graph.service import GraphService
from kglab_graph.store.factory import create_graph_store
from kglab_shared.app import create_service_app
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import load_settings


def create_app(
    settings: GraphSettings | None = None,
    *,
    bus: EventBus | None = None,
    document_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the graph service; ``bus`` is injected when several services share one process,
    ``document_transport`` when the document service runs in this process too."""
    settings = settings or load_settings(GraphSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, bus=bus) as runtime:
            check_name, store = create_graph_store(settings)
            await store.start()
            documents = ClaimedChunkReader(settings.document_url, transport=document_transport)
            try:
                app.state.readiness.add(check_name, store.ping)
                # Loading the NER model takes seconds of CPU: load it in the background so the
                # service starts at once; /ready reports it until it is loaded.
                recogniser = BackgroundLoadedRecogniser(settings.recogniser)
                app.state.readiness.add("ner_model", recogniser.check)
                service = GraphService(
                    store,
                    recogniser,
                    PartsRemovedPublisher(runtime.bus, source=f"kglab/{settings.service_name}"),
                )
                app.state.graph_store = store
                app.state.graph_service = service
                await consume.subscribe(
                    runtime.bus, service, documents, source=f"kglab/{settings.service_name}"
                )
                yield
            finally:
                await documents.close()
                await store.close()

    return create_service_app(
        settings,
        title="Knowledge Graph Lab: graph service",
        description="The knowledge graph: entities, relations, paths.",
        routers=[router],
        lifespan=lifespan,
    )
