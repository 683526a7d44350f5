"""The search answer cache: the ``SearchCache`` port, Redis, and an in-memory one for make dev."""
