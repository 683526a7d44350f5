"""FastAPI dependencies of the ingestion service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.service import IngestionService


async def ingestion_service(request: Request) -> IngestionService:
    service: IngestionService = request.app.state.ingestion_service
    return service


async def ingestion_settings(request: Request) -> IngestionSettings:
    settings: IngestionSettings = request.app.state.settings
    return settings


IngestionServiceDep = Annotated[IngestionService, Depends(ingestion_service)]
SettingsDep = Annotated[IngestionSettings, Depends(ingestion_settings)]
