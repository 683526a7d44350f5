"""Where vectors live: the ``VectorStore`` port, the Qdrant server adapter and the embedded
one (Qdrant Edge, in process)."""
