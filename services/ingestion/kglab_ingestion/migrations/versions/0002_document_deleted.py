"""Jobs remember that their document was deleted; handled event ids for idempotent consumers.

A job whose document was deleted no longer holds its owner's duplicate slot, so the unique
index on (owner_id, sha256) leaves it out. ``processed_events`` is the shared ledger of
:mod:`kglab_shared.bus.idempotency` (``document.deleted`` is handled once).

Downgrading drops the mark. So that the old index can be rebuilt, and the old code does not
point a new upload at a deleted document, a file job whose document was deleted becomes a
failed job that says so (a failed job frees the slot there too).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_INDEX = "uq_ingestion_jobs_owner_sha256"
_DELETED_MESSAGE = "The document this job produced was deleted."


def upgrade() -> None:
    op.add_column("ingestion_jobs", sa.Column("document_deleted_at", _TS, nullable=True))
    op.drop_index(_INDEX, table_name="ingestion_jobs")
    live_file = sa.text(
        "source_kind = 'file' AND status <> 'failed' AND document_deleted_at IS NULL"
    )
    op.create_index(
        _INDEX,
        "ingestion_jobs",
        ["owner_id", "sha256"],
        unique=True,
        postgresql_where=live_file,
        sqlite_where=live_file,
    )
    op.create_table(
        "processed_events",
        sa.Column("group", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
    jobs = sa.table(
        "ingestion_jobs",
        sa.column("source_kind", sa.String),
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
        sa.column("document_deleted_at", _TS),
    )
    op.execute(
        jobs.update()
        .where(
            jobs.c.source_kind == "file",
            jobs.c.status != "failed",
            jobs.c.document_deleted_at.is_not(None),
        )
        .values(status="failed", error=_DELETED_MESSAGE)
    )
    op.drop_index(_INDEX, table_name="ingestion_jobs")
    live_file = sa.text("source_kind = 'file' AND status <> 'failed'")
    op.create_index(
        _INDEX,
        "ingestion_jobs",
        ["owner_id", "sha256"],
        unique=True,
        postgresql_where=live_file,
        sqlite_where=live_file,
    )
    op.drop_column("ingestion_jobs", "document_deleted_at")
