"""The ingestion service: File and URL ingestion jobs with live progress."""
