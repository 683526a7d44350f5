"""HTTP entrypoints of the document service."""
