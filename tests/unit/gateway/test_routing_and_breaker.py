from __future__ import annotations

import time

import pytest

from kglab_gateway.proxy import CircuitBreaker
from kglab_gateway.routing import is_public, upstream_for
from kglab_shared.errors import ServiceUnavailableError


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/auth/login", "auth"),
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/documents", "document"),
        ("/api/v1/documents/d1/chunks", "document"),
        ("/api/v1/documents/d1/graph", "graph"),
        ("/api/v1/graph/entities", "graph"),
        ("/api/v1/files", "ingestion"),
        ("/api/v1/uploads/abc", "ingestion"),
        ("/api/v1/jobs/j1", "ingestion"),
        ("/api/v1/search", "vector"),
        ("/api/v1/admin/rebuilds", "document"),
        ("/api/v1/admin/rebuilds/r1/resume", "document"),
        ("/api/v1/admin/dead-letters/vector/replay", "document"),
        ("/api/v1/admin/users", None),
        ("/api/v1/authx", None),
        ("/internal/api-keys/verify", None),
        ("/api/v2/documents", None),
    ],
)
def test_each_path_has_one_owner(path: str, service: str | None) -> None:
    assert upstream_for(path) == service


def test_only_the_listed_routes_are_public() -> None:
    assert is_public("POST", "/api/v1/auth/login")
    assert is_public("GET", "/.well-known/jwks.json")
    assert is_public("HEAD", "/.well-known/jwks.json")
    assert not is_public("GET", "/api/v1/auth/login")
    assert not is_public("GET", "/api/v1/auth/me")
    assert not is_public("POST", "/api/v1/auth/logout")
    assert not is_public("POST", "/api/v1/auth/register/../users")
    assert not is_public("GET", "/api/v1/documents")


def test_breaker_opens_after_the_threshold_and_half_opens() -> None:
    breaker = CircuitBreaker("graph", threshold=2, reset_s=0.05)
    breaker.before_call()
    breaker.record_failure()
    breaker.before_call()
    breaker.record_failure()
    with pytest.raises(ServiceUnavailableError, match="graph service is not answering"):
        breaker.before_call()
    time.sleep(0.06)
    breaker.before_call()  # the trial call
    breaker.record_success()
    breaker.before_call()
    assert breaker.opened_at is None
