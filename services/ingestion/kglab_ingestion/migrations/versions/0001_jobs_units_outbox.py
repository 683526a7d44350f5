"""Ingestion jobs, their saved extraction units, and the transactional outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingestion_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("source_kind", sa.String(8), nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_retryable", sa.Boolean, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=True),
        sa.Column("content_type", sa.String(200), nullable=True),
        sa.Column("processor_version", sa.String(64), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("units_done", sa.Integer, nullable=False),
        sa.Column("units_total", sa.Integer, nullable=True),
        sa.Column("document_id", sa.String(32), nullable=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("chunk_count", sa.Integer, nullable=True),
        sa.Column("duplicate_of", sa.String(32), nullable=True),
        sa.Column("near_duplicate_of", sa.String(32), nullable=True),
        sa.Column("near_duplicate_similarity", sa.Float, nullable=True),
        sa.Column("minhash", sa.JSON, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed')",
            name="ck_ingestion_jobs_status",
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="ck_ingestion_jobs_progress"),
    )
    op.create_index(
        "ix_ingestion_jobs_owner_created", "ingestion_jobs", ["owner_id", "created_at", "id"]
    )
    op.create_index("ix_ingestion_jobs_status_updated", "ingestion_jobs", ["status", "updated_at"])
    live_file = sa.text("source_kind = 'file' AND status <> 'failed'")
    op.create_index(
        "uq_ingestion_jobs_owner_sha256",
        "ingestion_jobs",
        ["owner_id", "sha256"],
        unique=True,
        postgresql_where=live_file,
        sqlite_where=live_file,
    )
    op.create_table(
        "ingestion_job_units",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("unit_index", sa.Integer, primary_key=True),
        sa.Column("sections", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    # The shared transactional outbox (kglab_shared.outbox), in this service's database.
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("published_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    unpublished = sa.text("published_at IS NULL")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=unpublished,
        sqlite_where=unpublished,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("ingestion_job_units")
    op.drop_index("uq_ingestion_jobs_owner_sha256", table_name="ingestion_jobs")
    op.drop_index("ix_ingestion_jobs_status_updated", table_name="ingestion_jobs")
    op.drop_index("ix_ingestion_jobs_owner_created", table_name="ingestion_jobs")
    op.drop_table("ingestion_jobs")
