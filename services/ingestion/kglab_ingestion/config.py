"""Settings of the ingestion service (environment prefix ``KGLAB_INGESTION_``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kglab_ingestion.fetching.settings import FetcherSettings
from kglab_ingestion.scanning.settings import ScannerKind, ScannerSettings
from kglab_shared.settings import DEVELOPMENT_SECRET, ServiceSettings, StandIn, cidr_list

MEGABYTE = 1024 * 1024
#: Waits between a webhook delivery's attempts: roughly exponential, 27.7 hours in all
#: (Stripe retries for three days, GitHub not at all; issue 20 asks for at least 24 hours).
WEBHOOK_RETRY_DELAYS_S = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200)


class IngestionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_INGESTION_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "SQLite jobs, raw files on disk, progress in memory"
    real_store_urls: ClassVar[tuple[str, ...]] = (
        "KGLAB_POSTGRES_URL",
        "KGLAB_REDIS_URL",
        "KGLAB_MONGO_URL",
    )

    service_name: str = "ingestion"
    port: int = 8002

    #: Largest file ``POST /api/v1/files`` accepts; bigger files go through tus uploads.
    max_upload_bytes: int = Field(default=10 * MEGABYTE, gt=0)
    #: Largest file a resumable (tus) upload may announce.
    max_resumable_bytes: int = Field(default=50 * MEGABYTE, gt=0)
    #: Where resumable (tus) uploads keep their state and bytes until they become a job. With
    #: more than one replica this must be a directory every replica mounts (a shared volume:
    #: compose's ``ingestion-uploads``, the chart's ``ingestion.uploads``), since a PATCH may
    #: reach any replica (adr/0019). Unset: ``KGLAB_DATA_DIR/ingestion/uploads``.
    uploads_dir: Path | None = None
    #: Bytes read from the request at a time while streaming an upload to disk.
    upload_chunk_bytes: int = Field(default=64 * 1024, ge=1024)

    #: Database on the Mongo server (``KGLAB_MONGO_URL``) holding raw files (GridFS) when
    #: stores=real.
    mongo_database: str = Field(default="kglab_ingestion", min_length=1, max_length=63)
    mongo_timeout_ms: int = Field(default=5000, ge=100, le=60000)
    #: ``embedded`` (the project's signature file, in process) or ``clamd`` (INSTREAM).
    scanner: ScannerKind = ScannerKind.EMBEDDED
    #: ``tcp://host:port`` of clamd; setting it alone selects the clamd scanner.
    clamd_url: str | None = Field(default=None, validation_alias="KGLAB_CLAMD_URL")
    scan_timeout_s: float = Field(default=60.0, gt=0, le=600)

    #: The web page fetcher's limits and politeness (robots.txt, pacing, timeouts, size cap).
    #: Web pages (HTML, plain text) and PDFs are what a URL job may fetch.
    fetcher: FetcherSettings = Field(
        default_factory=lambda: FetcherSettings(
            allowed_content_types=(
                "text/html",
                "application/xhtml+xml",
                "text/plain",
                "application/pdf",
            )
        )
    )

    #: Internal networks URL jobs may reach although they are refused by default (loopback,
    #: private, link-local...): comma-separated addresses or CIDR networks, e.g.
    #: ``127.0.0.1/32,192.168.1.0/24`` to ingest pages served on this machine or a home
    #: network. Added to the fetcher's allow-list; nothing else of the fetcher changes.
    allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: How long a worker owns a job it claimed; it renews the lease while it works.
    lease_s: float = Field(default=60.0, gt=0)
    #: A pending job untouched this long is published again by the sweeper.
    stale_pending_s: float = Field(default=120.0, gt=0)
    #: How often the sweeper looks for expired leases and stale pending jobs.
    sweep_interval_s: float = Field(default=15.0, gt=0)
    #: How often the gauges of unfinished jobs are read from the jobs table.
    metrics_interval_s: float = Field(default=15.0, gt=0)
    #: A job whose document's parts have not all reported this long after extraction is
    #: failed and its document removed (a lost acknowledgement must not hold it forever).
    indexing_timeout_s: float = Field(default=900.0, gt=0)
    #: Most pages a PDF may have: a longer one fails at once, before any page is read (a 1 MB
    #: file of 10,000 empty pages held a worker for 110 s).
    max_pdf_pages: int = Field(default=2000, ge=1)
    #: Longest time one attempt may spend reading a file's text; past it the job fails with
    #: a sentence saying how far it got (checked between pages).
    max_extraction_s: float = Field(default=300.0, gt=0)
    #: Attempts before a retryable failure fails the job for good (the bus retries too).
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Jobs one worker process runs at once (also the bus prefetch). A small job spends most
    #: of its time waiting on the database and the blob store, not on the one extraction
    #: thread, so more than a few in flight keep that thread busy.
    worker_concurrency: int = Field(default=8, ge=1, le=64)
    #: Run the worker (consumer and sweeper) in this process.
    run_worker: bool = True
    #: MinHash similarity above which a document is linked to an earlier one as a near-duplicate.
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
    #: How many of the owner's recent completed jobs a new one is compared with.
    near_duplicate_window: int = Field(default=500, ge=1, le=10_000)
    chunk_max_chars: int = Field(default=1500, ge=200)
    chunk_overlap_chars: int = Field(default=200, ge=0)
    #: Prefix of the Redis pub/sub channels carrying job progress.
    progress_channel_prefix: str = "kglab:jobs:"
    #: A WebSocket that sees no update for this long sends the current state again.
    ws_heartbeat_s: float = Field(default=15.0, gt=0)

    #: Run the webhook sender (changes into deliveries, deliveries to endpoints) here. Any
    #: number of replicas may: they share the work through the database (adr/0028).
    run_webhooks: bool = True
    #: Seals the endpoints' signing secrets at rest (AES-GCM; adr/0028). Changing it makes the
    #: stored secrets unreadable: endpoints then need a new secret (rotate-secret).
    webhook_secret_key: SecretStr = Field(default=SecretStr(DEVELOPMENT_SECRET), min_length=16)
    #: Most webhook endpoints one user may register.
    webhook_max_endpoints: int = Field(default=16, ge=1, le=1000)
    #: Longest one delivery attempt may take (connect, send, answer); past it, a retry.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    #: Waits between attempts (seconds, comma-separated); after the last one fails the
    #: delivery is marked failed. The default spans 27.7 hours.
    webhook_retry_delays_s: Annotated[tuple[float, ...], NoDecode] = WEBHOOK_RETRY_DELAYS_S
    #: Each wait is scaled by a random factor in [1 - jitter, 1 + jitter].
    webhook_retry_jitter: float = Field(default=0.1, ge=0, le=0.5)
    #: How often the sender looks for changes and for deliveries due.
    webhook_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: Deliveries one replica sends at once.
    webhook_concurrency: int = Field(default=8, ge=1, le=64)
    #: The longest overlap a secret rotation may ask for (the default overlap is 24 hours).
    webhook_max_rotation_overlap_s: int = Field(default=7 * 86400, ge=0)

    @field_validator("webhook_retry_delays_s", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = tuple(float(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError(
                    "KGLAB_INGESTION_WEBHOOK_RETRY_DELAYS_S is a comma-separated list of "
                    "seconds, e.g. 30,120,600."
                ) from None
        if not value or any(float(v) < 0 for v in value):
            raise ValueError(
                "KGLAB_INGESTION_WEBHOOK_RETRY_DELAYS_S needs at least one wait, none negative."
            )
        return value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        return cidr_list(value, "KGLAB_INGESTION_ALLOWED_NETWORKS", "192.168.1.0/24")

    def fetcher_settings(self) -> FetcherSettings:
        """The fetcher's settings with ``allowed_networks`` added to its allow-list."""
        if not self.allowed_networks:
            return self.fetcher
        extra = tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)
        listed = self.fetcher.allowed_private_networks
        return self.fetcher.model_copy(
            update={"allowed_private_networks": listed + tuple(n for n in extra if n not in listed)}
        )

    def stand_ins(self) -> list[StandIn]:
        found = super().stand_ins()
        if self.clamd_url is None and self.scanner is ScannerKind.EMBEDDED:
            found.append(
                StandIn(
                    "KGLAB_CLAMD_URL is not set (uploads would be scanned by the embedded "
                    "signature scanner, which knows only the project's test signatures)",
                    "set KGLAB_CLAMD_URL=tcp://host:port of a clamd",
                )
            )
        return found

    def scanner_settings(self) -> ScannerSettings:
        kind = ScannerKind.CLAMD if self.clamd_url else self.scanner
        return ScannerSettings(kind=kind, clamd_url=self.clamd_url, timeout_s=self.scan_timeout_s)
