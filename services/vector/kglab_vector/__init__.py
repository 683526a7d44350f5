"""The vector service: Embeddings and hybrid search."""
