"""Settings of the vector service (environment prefix ``KGLAB_VECTOR_``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings, StandIn, StoreKind

#: The "nothing relevant" threshold per embedder, calibrated on the retrieval set by
#: bench/bench_search_threshold.py (adr/0024): the lowest best-chunk cosine of an on-topic query
#: hybrid search answers (0.306) less a 0.05 margin. The hashing embedder's scores mean nothing.
CALIBRATED_MIN_RELEVANCE = {"onnx": 0.256, "hashing": 0.0}


class VectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_VECTOR_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = (
        "Qdrant Edge (Qdrant's engine in process), search answers cached in memory"
    )
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_QDRANT_URL", "KGLAB_REDIS_URL")

    service_name: str = "vector"
    port: int = 8005
    #: ``onnx`` is the real sentence-embedding model; ``hashing`` the fast deterministic one.
    embedder: Literal["onnx", "hashing"] = "onnx"
    hashing_dimension: int = Field(default=256, ge=8, le=4096)
    #: onnxruntime's intra-op threads; the service shares its cores with others.
    embed_threads: int = Field(default=2, ge=1, le=32)
    #: Chunks per embedding job slice (one turn of the model lock, one worker-thread call).
    embed_batch_size: int = Field(default=32, ge=1, le=512)
    #: Texts per onnxruntime run inside a slice, sorted by length: 8 beat 16 and 32 by 14-19%
    #: chunks per CPU-second on 2 cores (less padding, activations stay in cache).
    embed_model_batch_size: int = Field(default=8, ge=1, le=512)
    #: How long a request or event that needs the model waits for it while it loads.
    model_wait_s: float = Field(default=60.0, gt=0, le=600)
    #: The alias the service reads and writes; the physical collection is per model.
    collection: str = Field(default="kglab_chunks", pattern=r"^[A-Za-z0-9_-]{1,100}$")
    #: Embedded stores: Qdrant Edge's shards in this folder under ``KGLAB_DATA_DIR``, or
    #: ``:memory:`` for tests (a temporary folder removed at shutdown).
    qdrant_local_path: str = "qdrant"
    #: How Qdrant Edge stores dense vectors in a shard it creates (an existing shard keeps its
    #: own): ``float32`` exact; ``float16``/``turbo16`` half the bytes; ``turbo8`` a quarter
    #: (TurboQuant, originals not kept). Measured side by side in adr/0025; adr/0029 chose it.
    edge_dense_datatype: Literal["float32", "float16", "turbo16", "turbo8"] = "turbo8"
    qdrant_api_key: SecretStr | None = None
    qdrant_timeout_s: int = Field(default=10, ge=1, le=120)
    #: Starting with another model than the collection's: refuse (default) or re-embed all.
    reembed_on_model_change: bool = False
    #: Search answers nothing when the best chunk's dense (cosine) score is below this; unset:
    #: the value calibrated for the embedder (:data:`CALIBRATED_MIN_RELEVANCE`), 0: never.
    search_min_relevance: float | None = Field(default=None, ge=0, le=1)
    #: Dense and sparse candidates fetched before reciprocal rank fusion.
    fusion_candidates: int = Field(default=50, ge=10, le=1000)
    #: ``auto``: Redis when ``KGLAB_STORES=real`` and ``KGLAB_REDIS_URL`` is set, else memory.
    cache: Literal["auto", "memory", "redis"] = "auto"
    #: Prefix of every Redis key the service writes (answers, generations, handled events).
    redis_prefix: str = Field(default="kglab:vector:", min_length=1, max_length=100)
    cache_ttl_s: int = Field(default=300, ge=1, le=86_400)
    cache_max_entries: int = Field(default=10_000, ge=10, le=10_000_000)
    #: Refresh-ahead: after a change of an owner's documents, this many of their hottest
    #: queries are run again in the event consumer (0: off). bench/bench_vector.py measures
    #: the hit rate with and without it, and what it costs per change.
    cache_refresh_top: int = Field(default=128, ge=0, le=10_000)
    #: Only queries used at least this often (counts halve at every change of the owner).
    cache_refresh_min_uses: float = Field(default=2.0, ge=0, le=1_000_000)
    #: Time limit of one refresh; what is left undone is simply computed on demand.
    cache_refresh_budget_s: float = Field(default=2.0, gt=0, le=60)
    #: Queries whose uses are counted, per owner (the least used are dropped).
    cache_hot_tracked: int = Field(default=512, ge=1, le=100_000)
    #: Redis: the counts of an owner nobody searched for this long are dropped.
    cache_hot_ttl_s: int = Field(default=86_400, ge=60, le=30 * 86_400)
    snippet_chars: int = Field(default=300, ge=50, le=4000)
    #: The graph service, asked for related documents by ``search?expand=graph``.
    graph_url: str = "http://127.0.0.1:8003"
    #: Where a stored document's chunks are read from (adr/0020).
    document_url: str = "http://127.0.0.1:8004"
    graph_timeout_s: float = Field(default=2.0, gt=0, le=30)

    def stand_ins(self) -> list[StandIn]:
        found = super().stand_ins()
        if self.embedder == "hashing":
            found.append(
                StandIn(
                    "KGLAB_VECTOR_EMBEDDER is hashing (a deterministic stand-in for tests: "
                    "vectors without meaning)",
                    "leave it unset (onnx, the sentence-embedding model)",
                )
            )
        # With embedded stores the line about KGLAB_STORES already says it.
        if self.cache == "memory" or (
            self.cache == "auto" and self.stores is StoreKind.REAL and self.redis_url is None
        ):
            chosen = (
                "KGLAB_VECTOR_CACHE is memory"
                if self.cache == "memory"
                else "KGLAB_REDIS_URL is not set"
            )
            found.append(
                StandIn(
                    f"{chosen} (search answers and handled events kept in each process's "
                    "memory: replicas would answer from stale caches)",
                    "set KGLAB_REDIS_URL and leave KGLAB_VECTOR_CACHE unset (auto)",
                )
            )
        return found

    def min_relevance(self) -> float:
        if self.search_min_relevance is not None:
            return self.search_min_relevance
        return CALIBRATED_MIN_RELEVANCE[self.embedder]
