"""Settings of the graph service (environment prefix ``KGLAB_GRAPH_``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings, StandIn


class GraphSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_GRAPH_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "SQLite"
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_NEO4J_URL",)

    service_name: str = "graph"
    port: int = 8003
    #: ``spacy`` is the real named-entity recogniser; ``rules`` the transparent fallback;
    #: ``llm`` an OpenAI-compatible chat endpoint (the ``llm_*`` settings), spaCy as fallback.
    recogniser: Literal["spacy", "rules", "llm"] = "spacy"
    #: The endpoint's base URL (``.../v1``: requests go to ``/chat/completions``) and model.
    llm_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_max_concurrency: int = Field(default=4, ge=1, le=64)
    llm_timeout_s: float = Field(default=60.0, gt=0, le=600)
    llm_attempts: int = Field(default=3, ge=1, le=10)
    #: Prices per million tokens, for the cost logged per document (0: not counted).
    llm_input_price_per_mtok: float = Field(default=0.0, ge=0)
    llm_output_price_per_mtok: float = Field(default=0.0, ge=0)
    neo4j_database: str = "neo4j"
    neo4j_pool_size: int = Field(default=20, ge=1, le=200)
    sqlite_file: str = "graph.sqlite3"
    #: Where a stored document's chunks are read from (adr/0020).
    document_url: str = "http://127.0.0.1:8004"

    @model_validator(mode="after")
    def _llm_needs_an_endpoint(self) -> GraphSettings:
        if self.recogniser == "llm" and not (self.llm_url and self.llm_model):
            raise ValueError(
                "KGLAB_GRAPH_RECOGNISER=llm needs KGLAB_GRAPH_LLM_URL and KGLAB_GRAPH_LLM_MODEL "
                "(an OpenAI-compatible endpoint and its model name)."
            )
        return self

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
