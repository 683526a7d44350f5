"""Extracted chunks wait here for the document service (claim check, adr/0020).

``document.extracted`` carried every chunk's text; it now carries a claim, and the chunks are
kept in this table (written with the job's completion and its event, in one transaction) until
the document service has stored them. Downgrading drops the table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingestion_extractions",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("claim_digest", sa.String(64), nullable=False),
        sa.Column("chunks", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingestion_extractions")
