"""Text to vectors: the dense ``Embedder`` port and its adapters, and the sparse BM25 encoder."""
