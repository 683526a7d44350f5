"""Jobs carry a notice: something a person should know about a job that did not fail.

The first one: text that was not valid UTF-8 (or UTF-16 with a byte-order mark) and was read
in a guessed encoding, or had bytes no encoding could read (issue 13: it was decoded
silently). Downgrading drops the column.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingestion_jobs", sa.Column("notice", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("ingestion_jobs", "notice")
