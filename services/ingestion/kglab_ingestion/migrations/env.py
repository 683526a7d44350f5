"""Alembic environment: always run programmatically on a connection the service hands in."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run ingestion migrations through kglab_ingestion.store.sql.run_migrations, "
        "which passes the database connection in."
    )
context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
    # Its own version table, so the service can share a database without clashing.
    version_table="ingestion_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
