"""HTTP entrypoints of the graph service."""
