"""Settings of the document service (environment prefix ``KGLAB_DOCUMENT_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings


class DocumentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_DOCUMENT_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "SQLite"
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_MONGO_URL",)

    service_name: str = "document"
    port: int = 8004
    #: Database on the Mongo server (``KGLAB_MONGO_URL``) when ``KGLAB_STORES=real``.
    mongo_database: str = Field(default="kglab_documents", min_length=1, max_length=63)
    #: How long to look for a Mongo server before an operation fails.
    mongo_timeout_ms: int = Field(default=5000, ge=100, le=60000)
    #: Where the extracted chunks are read from (ingestion's internal route, adr/0020).
    ingestion_url: str = "http://127.0.0.1:8002"
