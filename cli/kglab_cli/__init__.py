"""kglab: the Knowledge Graph Lab command line."""
