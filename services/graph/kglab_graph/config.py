"""Settings of the graph service (environment prefix ``KGLAB_GRAPH_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings


class GraphSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_GRAPH_", extra="ignore", frozen=True)

    service_name: str = "graph"
    port: int = 8003
    #: ``spacy`` is the real named-entity recogniser; ``rules`` the transparent fallback.
    recogniser: Literal["spacy", "rules"] = "spacy"
    neo4j_database: str = "neo4j"
    neo4j_pool_size: int = Field(default=20, ge=1, le=200)
    sqlite_file: str = "graph.sqlite3"
