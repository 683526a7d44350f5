"""Raw files leave the jobs database: GridFS holds them with stores=real (adr/0012 superseded).

The tables of revision 0003 served the PostgreSQL blob store, built because GridFS was slow on
FerretDB 1.x; it is gone. A downgrade recreates them empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("ingestion_blob_chunks")
    op.drop_table("ingestion_blobs")


def downgrade() -> None:
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
