"""Settings of the vector service (environment prefix ``KGLAB_VECTOR_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings


class VectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_VECTOR_", extra="ignore", frozen=True)

    service_name: str = "vector"
    port: int = 8005
