"""Fetcher settings, embedded in the ingestion service's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kglab_ingestion.fetching.addresses import IPNetwork

MB = 1024 * 1024


class FetcherSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user_agent: str = "KnowledgeGraphLab/1.0"
    max_bytes: int = Field(default=5 * MB, gt=0)
    max_url_length: int = Field(default=2048, ge=32)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: Longest silence between two reads of the answer.
    read_timeout_s: float = Field(default=10.0, gt=0)
    #: Deadline for one whole fetch (robots.txt, redirects, waits and body), so a server that
    #: drips one byte at a time cannot hold a worker.
    total_timeout_s: float = Field(default=60.0, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    #: Minimum seconds between two requests to one host (robots.txt Crawl-delay may raise it).
    per_host_interval_s: float = Field(default=1.0, ge=0)
    max_crawl_delay_s: float = Field(default=10.0, ge=0)
    #: Retries after 429/503, waiting Retry-After or an exponential backoff from backoff_base_s.
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=1.0, ge=0)
    #: A server asking for a longer wait fails the fetch as retryable (the job retries later).
    max_retry_after_s: float = Field(default=30.0, ge=0)
    robots_ttl_s: float = Field(default=3600.0, ge=0)
    robots_max_bytes: int = Field(default=512 * 1024, gt=0)
    robots_cache_size: int = Field(default=1024, gt=0)
    allowed_content_types: tuple[str, ...] = (
        "text/html",
        "application/xhtml+xml",
        "text/plain",
    )
    #: Tests only: let the fetcher reach loopback and private addresses (a local test server).
    allow_private_addresses: bool = False
    #: Internal networks allowed although the deny-list covers them (say, one intranet host or,
    #: in tests, 127.0.0.1/32 while every other internal address stays refused).
    allowed_private_networks: tuple[IPNetwork, ...] = ()
    #: Where fetched bodies are written (None: the system's temporary directory).
    tmp_dir: Path | None = None
