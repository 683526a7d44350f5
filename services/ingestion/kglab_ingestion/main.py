"""The ingestion service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kglab_ingestion.api.routes import router
from kglab_ingestion.config import IngestionSettings
from kglab_shared.app import create_service_app
from kglab_shared.bus.port import EventBus
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import load_settings


def create_app(
    settings: IngestionSettings | None = None, *, bus: EventBus | None = None
) -> FastAPI:
    """Build the ingestion service; ``bus`` is injected when several services share one process."""
    settings = settings or load_settings(IngestionSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, bus=bus):
            yield

    return create_service_app(
        settings,
        title="Knowledge Graph Lab: ingestion service",
        description="File and URL ingestion jobs with live progress.",
        routers=[router],
        lifespan=lifespan,
    )
