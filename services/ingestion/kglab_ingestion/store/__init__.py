"""Where ingestion state lives: jobs (SQL), raw files (blob store), progress (pub/sub)."""
