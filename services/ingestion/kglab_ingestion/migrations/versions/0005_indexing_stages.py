"""Jobs follow their document through indexing: a stage and the parts acknowledged.

A job whose text is extracted stays ``processing`` while the document, vector and graph
services store, embed and graph its document (``document.indexed``); it completes once all
three are done (adr/0010, 2026-12-06). ``stage`` names where it is, ``parts_done`` and
``parts_failed`` hold the acknowledged parts, ``extracted_at`` when extraction ended. Jobs are
looked up by their document when an acknowledgement arrives.

Two indexes serve fair turns between owners (jobs started per owner in the last minute, and
the owners with waiting jobs). Downgrading drops the columns and indexes; a job waiting for
its parts then reads as processing with no lease, which the old sweeper takes up again (it
re-extracts and completes it the old way).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEX = "ix_ingestion_jobs_document"
_STARTED = "ix_ingestion_jobs_started"
_WAITING = "ix_ingestion_jobs_waiting"


def upgrade() -> None:
    op.add_column("ingestion_jobs", sa.Column("stage", sa.String(16), nullable=True))
    op.add_column("ingestion_jobs", sa.Column("parts_done", sa.String(64), nullable=True))
    op.add_column("ingestion_jobs", sa.Column("parts_failed", sa.String(64), nullable=True))
    op.add_column(
        "ingestion_jobs", sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(_INDEX, "ingestion_jobs", ["document_id"])
    # Fair turns count each owner's jobs started in the last minute.
    op.create_index(_STARTED, "ingestion_jobs", ["started_at"])
    # ... and find the owners with waiting jobs, and each one's oldest, by index seeks.
    op.create_index(_WAITING, "ingestion_jobs", ["status", "owner_id", "updated_at"])


def downgrade() -> None:
    op.drop_index(_WAITING, table_name="ingestion_jobs")
    op.drop_index(_STARTED, table_name="ingestion_jobs")
    op.drop_index(_INDEX, table_name="ingestion_jobs")
    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.drop_column("extracted_at")
        batch.drop_column("parts_failed")
        batch.drop_column("parts_done")
        batch.drop_column("stage")
