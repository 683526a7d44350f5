"""The graph service's event entrypoints (consume) and the events it publishes."""
