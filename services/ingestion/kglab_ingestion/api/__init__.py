"""HTTP entrypoints of the ingestion service."""
