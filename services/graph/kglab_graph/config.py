"""Settings of the graph service (environment prefix ``KGLAB_GRAPH_``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings, StandIn


class GraphSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_GRAPH_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "SQLite"
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_NEO4J_URL",)

    service_name: str = "graph"
    port: int = 8003
    #: ``spacy`` is the real named-entity recogniser; ``rules`` the transparent fallback.
    recogniser: Literal["spacy", "rules"] = "spacy"
    neo4j_database: str = "neo4j"
    neo4j_pool_size: int = Field(default=20, ge=1, le=200)
    sqlite_file: str = "graph.sqlite3"
    #: Where a stored document's chunks are read from (adr/0020).
    document_url: str = "http://127.0.0.1:8004"

    def stand_ins(self) -> list[StandIn]:
        found = super().stand_ins()
        if self.recogniser == "rules":
            found.append(
                StandIn(
                    "KGLAB_GRAPH_RECOGNISER is rules (capitalised words, no entity types: the "
                    "fallback for tests and quick local runs)",
                    "leave it unset (spacy, the named-entity model)",
                )
            )
        return found
