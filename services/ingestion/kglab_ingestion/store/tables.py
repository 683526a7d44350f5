"""SQLAlchemy Core tables: the adapter's view of the schema the migrations create."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

jobs = Table(
    "ingestion_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("source_kind", String(8), nullable=False),
    Column("source_name", Text, nullable=False),
    Column("url", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("error_retryable", Boolean, nullable=False),
    Column("sha256", String(64), nullable=True),
    Column("size_bytes", Integer, nullable=True),
    Column("content_type", String(200), nullable=True),
    Column("processor_version", String(64), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("units_done", Integer, nullable=False),
    Column("units_total", Integer, nullable=True),
    Column("document_id", String(32), nullable=True),
    Column("title", Text, nullable=True),
    Column("chunk_count", Integer, nullable=True),
    Column("duplicate_of", String(32), nullable=True),
    Column("near_duplicate_of", String(32), nullable=True),
    Column("near_duplicate_similarity", Float, nullable=True),
    Column("minhash", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    #: When the document service deleted the document this job produced (document.deleted).
    Column("document_deleted_at", DateTime(timezone=True), nullable=True),
    #: Where a processing job is (JobStage); parts of its document acknowledged (0005).
    Column("stage", String(16), nullable=True),
    Column("parts_done", String(64), nullable=True),
    Column("parts_failed", String(64), nullable=True),
    Column("extracted_at", DateTime(timezone=True), nullable=True),
    #: Something a person should know about a job that did not fail (0006).
    Column("notice", Text, nullable=True),
)

Index("ix_ingestion_jobs_owner_created", jobs.c.owner_id, jobs.c.created_at, jobs.c.id)
Index("ix_ingestion_jobs_status_updated", jobs.c.status, jobs.c.updated_at)
Index("ix_ingestion_jobs_document", jobs.c.document_id)
Index("ix_ingestion_jobs_started", jobs.c.started_at)
Index("ix_ingestion_jobs_waiting", jobs.c.status, jobs.c.owner_id, jobs.c.updated_at)
# One live job per file per owner: a concurrent second upload of the same bytes loses the race
# at the database, not in application code. A failed job, or one whose document was deleted,
# frees the slot.
_LIVE_FILE = (
    (jobs.c.source_kind == "file")
    & (jobs.c.status != "failed")
    & jobs.c.document_deleted_at.is_(None)
)
Index(
    "uq_ingestion_jobs_owner_sha256",
    jobs.c.owner_id,
    jobs.c.sha256,
    unique=True,
    postgresql_where=_LIVE_FILE,
    sqlite_where=_LIVE_FILE,
)

#: What each extracted unit (a PDF page, or the whole document) yielded, so a retry resumes.
job_units = Table(
    "ingestion_job_units",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("unit_index", Integer, primary_key=True),
    Column("sections", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: A finished job's chunks until the document service has read them (adr/0020).
extractions = Table(
    "ingestion_extractions",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("claim_digest", String(64), nullable=False),
    Column("chunks", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

Index("ix_ingestion_jobs_updated", jobs.c.updated_at, jobs.c.id)

#: A user's webhook endpoints (adr/0028); secrets are sealed (AES-GCM), never stored plain.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("events", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("previous_secret_sealed", Text, nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_webhook_endpoints_owner",
    webhook_endpoints.c.owner_id,
    webhook_endpoints.c.created_at,
    webhook_endpoints.c.id,
)

#: One event for one endpoint, with its exact body (every attempt sends the same bytes).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint_id", String(32), nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    #: The event id, or for a replay its own id: one delivery per event per endpoint.
    Column("dedupe_key", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    #: Who is sending it now (with next_attempt_at as the lease's end).
    Column("claim_token", String(32), nullable=True),
    Column("replay_of", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index(
    "uq_webhook_deliveries_event",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.dedupe_key,
    unique=True,
)
Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at
)
Index(
    "ix_webhook_deliveries_endpoint",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.created_at,
    webhook_deliveries.c.id,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)

#: Where the dispatcher stopped in the jobs' changes (one row, ``changes``).
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("changed_at", DateTime(timezone=True), nullable=True),
    Column("job_id", String(32), nullable=False),
)
