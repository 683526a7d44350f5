"""Where vectors live: the ``VectorStore`` port and its Qdrant adapter (server or local mode)."""
