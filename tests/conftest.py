"""Fixtures shared by every test level. Each test gets its own isolated backend state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.backends import backend_url, backends_required, stop_containers

# The whole system on a real port for tests/browser and tests/cli: one per session, on first use.
from tests.live_system import live_system  # noqa: F401

# Set, not defaulted: an unset environment means production, which refuses the stand-ins most
# tests run on, and a KGLAB_ENVIRONMENT exported in the shell must not change what tests see.
os.environ["KGLAB_ENVIRONMENT"] = "test"
os.environ.setdefault("KGLAB_LOG_JSON", "false")


def unique_name(prefix: str) -> str:
    """A name no other test (or xdist worker) uses: per-test isolation for databases and queues."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session", autouse=True)
def _stop_testcontainers() -> Iterator[None]:
    yield
    stop_containers()


@pytest.fixture
def postgres_url() -> str:
    return backend_url("postgres")


@pytest.fixture
def redis_url() -> str:
    return backend_url("redis")


@pytest.fixture
def rabbitmq_url() -> str:
    return backend_url("rabbitmq")


@pytest.fixture
def neo4j_url() -> str:
    return backend_url("neo4j")


@pytest.fixture
def mongo_url() -> str:
    return backend_url("mongo")


@pytest.fixture
def clamd_url() -> str:
    """``tcp://host:port`` of a real clamd loaded with the project's signatures, or skip.

    ClamAV has no testcontainers module here: only ``KGLAB_CLAMD_URL`` (``make servers``).
    """
    url = os.environ.get("KGLAB_CLAMD_URL")
    if url:
        return url
    reason = "clamd is not reachable: set KGLAB_CLAMD_URL (run `make servers`)."
    if backends_required():
        pytest.fail(f"KGLAB_REQUIRE_BACKENDS=1 but {reason}", pytrace=False)
    pytest.skip(reason)
