"""Persistence ports of the auth service and their adapters."""
