"""HTTP entrypoints of the auth service."""
