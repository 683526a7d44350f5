"""The graph service: The knowledge graph: entities, relations, paths."""
