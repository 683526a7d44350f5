"""The document service: Documents and their chunks."""
