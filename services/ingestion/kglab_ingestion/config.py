"""Settings of the ingestion service (environment prefix ``KGLAB_INGESTION_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_INGESTION_", extra="ignore", frozen=True)

    service_name: str = "ingestion"
    port: int = 8002
