"""Raw files in PostgreSQL: a row per stored file and its bytes in 1 MB chunks (adr/0012).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingestion_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "ingestion_blob_chunks",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("n", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingestion_blob_chunks")
    op.drop_table("ingestion_blobs")
