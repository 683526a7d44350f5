"""Where tests find real servers: ``KGLAB_*_URL`` first, then testcontainers, else skip.

With ``KGLAB_REQUIRE_BACKENDS=1`` a missing server fails the test instead of skipping it, so CI
cannot go green by skipping.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ENV_VARS = {
    "postgres": "KGLAB_POSTGRES_URL",
    "redis": "KGLAB_REDIS_URL",
    "rabbitmq": "KGLAB_RABBITMQ_URL",
    "neo4j": "KGLAB_NEO4J_URL",
    "mongo": "KGLAB_MONGO_URL",
}

_containers: dict[str, Any] = {}

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@functools.cache
def server_image(name: str) -> str:
    """The image docker-compose.yml runs for the server ``name``: testcontainers start the same
    version that compose ships and the GitHub Actions workflow tests."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return str(services[name]["image"])


def backends_required() -> bool:
    return os.environ.get("KGLAB_REQUIRE_BACKENDS", "") in ("1", "true", "yes")


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_container(name: str) -> str:
    # Imported lazily: testcontainers is only useful where a Docker engine runs.
    if name in _containers:
        return str(_containers[name][1])
    starters: dict[str, Callable[[], tuple[Any, str]]] = {
        "postgres": _start_postgres,
        "redis": _start_redis,
        "rabbitmq": _start_rabbitmq,
        "neo4j": _start_neo4j,
        "mongo": _start_mongo,
    }
    container, url = starters[name]()
    _containers[name] = (container, url)
    return url


def _start_postgres() -> tuple[Any, str]:
    from testcontainers.postgres import PostgresContainer

    c = PostgresContainer(
        server_image("postgres"), username="kglab", password="kglab", dbname="kglab"
    )
    c.start()
    return (
        c,
        f"postgresql://kglab:kglab@{c.get_container_host_ip()}:{c.get_exposed_port(5432)}/kglab",
    )


def _start_redis() -> tuple[Any, str]:
    from testcontainers.redis import RedisContainer

    c = RedisContainer(server_image("redis"))
    c.start()
    return c, f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"


def _start_rabbitmq() -> tuple[Any, str]:
    from testcontainers.rabbitmq import RabbitMqContainer

    c = RabbitMqContainer(server_image("rabbitmq"), username="kglab", password="kglab")
    c.with_exposed_ports(5672, 15672)
    c.start()
    host = c.get_container_host_ip()
    os.environ.setdefault(
        "KGLAB_RABBITMQ_MANAGEMENT_URL", f"http://kglab:kglab@{host}:{c.get_exposed_port(15672)}"
    )
    return c, f"amqp://kglab:kglab@{host}:{c.get_exposed_port(5672)}/"


def _start_neo4j() -> tuple[Any, str]:
    from testcontainers.neo4j import Neo4jContainer

    c = Neo4jContainer(server_image("neo4j"), password="kglab-neo4j")
    c.start()
    return c, f"bolt://neo4j:kglab-neo4j@{c.get_container_host_ip()}:{c.get_exposed_port(7687)}"


def _start_mongo() -> tuple[Any, str]:
    from testcontainers.mongodb import MongoDbContainer

    c = MongoDbContainer(server_image("mongo"))
    c.start()
    return c, c.get_connection_url()


def backend_url(name: str) -> str:
    """The URL of a real ``name`` server, or skip (fail under KGLAB_REQUIRE_BACKENDS=1)."""
    env_var = ENV_VARS[name]
    url = os.environ.get(env_var)
    if url:
        return url
    if docker_available():
        return _start_container(name)
    reason = (
        f"{name} is not reachable: set {env_var} (run `make servers`) "
        "or install Docker for testcontainers."
    )
    if backends_required():
        pytest.fail(f"KGLAB_REQUIRE_BACKENDS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def stop_containers() -> None:
    for container, _ in _containers.values():
        container.stop()
    _containers.clear()
