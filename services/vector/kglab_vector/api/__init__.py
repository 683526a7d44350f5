"""HTTP entrypoints of the vector service."""
