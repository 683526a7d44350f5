"""The graph service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from kglab_graph.api.routes import router
from kglab_graph.config import GraphSettings
from kglab_graph.extraction import (
    BackgroundLoadedRecogniser,
    EntityRecogniser,
    create_recogniser,
)
from kglab_graph.messaging import consume
from kglab_graph.messaging.publish import PartsRemovedPublisher
from kglab_graph.service import GraphService
from kglab_graph.store.factory import create_graph_store
from kglab_shared.app import create_service_app
from kglab_shared.bus.port import EventBus
from kglab_shared.claims import ClaimedChunkReader
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import load_settings


def build_recogniser(settings: GraphSettings) -> EntityRecogniser:
    """The configured recogniser; the LLM one reads with spaCy what the endpoint fails on."""
    if settings.recogniser != "llm":
        return create_recogniser(settings.recogniser)
    from kglab_graph.llm import LlmConfig, LlmRecogniser

    if not settings.llm_url or not settings.llm_model:  # GraphSettings refuses this already
        raise ValueError("The LLM recogniser needs KGLAB_GRAPH_LLM_URL and KGLAB_GRAPH_LLM_MODEL.")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    config = LlmConfig(
        url=settings.llm_url,
        model=settings.llm_model,
        api_key=key,
        max_concurrency=settings.llm_max_concurrency,
        timeout_s=settings.llm_timeout_s,
        attempts=settings.llm_attempts,
        input_price_per_mtok=settings.llm_input_price_per_mtok,
        output_price_per_mtok=settings.llm_output_price_per_mtok,
    )
    return LlmRecogniser(config, create_recogniser("spacy"))


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
                recogniser = BackgroundLoadedRecogniser(
                    settings.recogniser, load=lambda: build_recogniser(settings)
                )
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
