"""``make stack`` starts each service as its container starts: the image's command, compose's
variables. These tests hold the topology, the Dockerfile and docker-compose.yml together."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from kglab_shared.identity import IdentityCodec

REPO = Path(__file__).resolve().parents[2]
SERVERS = {
    "KGLAB_POSTGRES_URL": "postgresql://kglab:secret@127.0.0.1:5432/kglab",
    "KGLAB_REDIS_URL": "redis://127.0.0.1:6379/0",
    "KGLAB_RABBITMQ_URL": "amqp://kglab:secret@127.0.0.1:5672/",
    "KGLAB_NEO4J_URL": "bolt://neo4j:secret@127.0.0.1:7687",
    "KGLAB_MONGO_URL": "mongodb://127.0.0.1:27017/",
    "KGLAB_CLAMD_URL": "tcp://127.0.0.1:3310",
    "KGLAB_QDRANT_URL": "http://127.0.0.1:6333",
    "KGLAB_SMTP_URL": "smtp://127.0.0.1:1025",
}
#: Variables only the stack sets, and why: the image sets SERVICE, PORT and DATA_DIR itself;
#: HOST keeps every port on loopback; the rest give each stack data of its own on shared servers.
STACK_ONLY = {
    "KGLAB_SERVICE",
    "KGLAB_PORT",
    "KGLAB_HOST",
    "KGLAB_DATA_DIR",
    "KGLAB_GATEWAY_REDIS_KEY_PREFIX",
    "KGLAB_AUTH_REDIS_KEY_PREFIX",
    "KGLAB_GATEWAY_AUTH_REDIS_KEY_PREFIX",
    "KGLAB_INGESTION_MONGO_DATABASE",
    "KGLAB_INGESTION_PROGRESS_CHANNEL_PREFIX",
    "KGLAB_DOCUMENT_MONGO_DATABASE",
    "KGLAB_VECTOR_REDIS_PREFIX",
}
#: Compose only: the log level (passed through by the launcher from the user's environment), the
#: metrics port (one per container; the stack's processes share one host and serve /metrics on
#: their API port), the collector compose runs (the stack passes KGLAB_OTEL_* through from the
#: caller, topology.SHARED), and the uploads volume, needed only where several ingestion
#: replicas run: the stack runs one, whose default directory is under its data directory.
COMPOSE_ONLY = {
    "KGLAB_LOG_LEVEL",
    "KGLAB_METRICS_PORT",
    "KGLAB_METRICS_HOST",
    "KGLAB_OTEL_EXPORTER",
    "KGLAB_OTEL_ENDPOINT",
    "KGLAB_INGESTION_UPLOADS_DIR",
}


@pytest.fixture(scope="module")
def topology() -> ModuleType:
    path = REPO / "deploy" / "stack" / "topology.py"
    spec = importlib.util.spec_from_file_location("kglab_stack_topology", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


def stack(topology: ModuleType, servers: dict[str, str] | None = None, **kw: object) -> object:
    return topology.Stack(
        name=kw.pop("name", "stack"),
        gateway_port=kw.pop("gateway_port", 8000),
        servers=SERVERS if servers is None else servers,
        secrets={
            "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY": '{"kty": "OKP"}',
            "KGLAB_IDENTITY_PUBLIC_KEYS": '{"keys": []}',
            "KGLAB_INGESTION_WEBHOOK_SECRET_KEY": "stack-webhook-sealing-key",
        },
        data_dir=Path("/tmp/kglab-stack"),
        **kw,
    )


def test_the_command_is_the_images_and_binds_where_it_is_told(topology: ModuleType) -> None:
    command = topology.image_command()
    assert command[:2] == ["/bin/sh", "-c"]
    assert "kglab_${KGLAB_SERVICE}.main:create_app" in command[2]
    assert '--host "${KGLAB_HOST:-0.0.0.0}"' in command[2]
    assert '--port "${KGLAB_PORT}"' in command[2]


def test_a_dockerfile_without_an_exec_form_cmd_is_refused(
    topology: ModuleType, tmp_path: Path
) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM scratch\nCMD uvicorn app\n")
    with pytest.raises(topology.TopologyError, match="not in exec form"):
        topology.image_command(broken)
    broken.write_text("FROM scratch\n")
    with pytest.raises(topology.TopologyError, match="no exec-form CMD"):
        topology.image_command(broken)


@pytest.mark.parametrize("service", ["gateway", "auth", "ingestion", "graph", "document", "vector"])
def test_each_service_gets_the_variables_compose_gives_it(
    topology: ModuleType, service: str
) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    in_compose = set(compose["services"][service]["environment"])
    in_stack = set(stack(topology).env(service))
    assert in_compose - in_stack - COMPOSE_ONLY == set(), "compose sets what the stack does not"
    assert in_stack - in_compose - STACK_ONLY == set(), "the stack sets what compose does not"
    env = stack(topology).env(service)
    assert env["KGLAB_BUS"] == "rabbitmq"
    assert env["KGLAB_STORES"] == "real"
    assert env["KGLAB_HOST"] == "127.0.0.1"


def test_the_stack_has_data_of_its_own(topology: ModuleType) -> None:
    one, two = stack(topology, name="one"), stack(topology, name="two", gateway_port=9000)
    assert one.env("auth")["KGLAB_POSTGRES_URL"].endswith("/one_auth")
    assert two.env("ingestion")["KGLAB_POSTGRES_URL"].endswith("/two_ingestion")
    assert one.env("document")["KGLAB_RABBITMQ_URL"] == "amqp://kglab:secret@127.0.0.1:5672/one"
    assert two.env("gateway")["KGLAB_GATEWAY_AUTH_URL"] == "http://127.0.0.1:9001"
    assert two.env("vector")["KGLAB_VECTOR_GRAPH_URL"] == "http://127.0.0.1:9003"
    assert one.env("vector")["KGLAB_VECTOR_REDIS_PREFIX"] == "one:vector:"


def test_without_a_qdrant_server_only_the_vector_store_is_embedded(topology: ModuleType) -> None:
    servers = {k: v for k, v in SERVERS.items() if k != "KGLAB_QDRANT_URL"}
    env = stack(topology, servers).env("vector")
    assert env["KGLAB_STORES"] == "embedded"
    assert env["KGLAB_VECTOR_CACHE"] == "redis"
    assert stack(topology, servers).env("graph")["KGLAB_STORES"] == "real"


def test_a_missing_server_or_a_bad_name_is_a_readable_error(topology: ModuleType) -> None:
    servers = {k: v for k, v in SERVERS.items() if k != "KGLAB_NEO4J_URL"}
    with pytest.raises(topology.TopologyError, match="graph needs KGLAB_NEO4J_URL"):
        stack(topology, servers).env("graph")
    with pytest.raises(topology.TopologyError, match="stack name"):
        stack(topology, name="Bad-Name")
    with pytest.raises(topology.TopologyError, match="unknown service"):
        stack(topology).env("billing")
    with pytest.raises(topology.TopologyError, match="out of range"):
        stack(topology, gateway_port=80)


def test_a_service_setting_passes_through_to_its_service_only(topology: ModuleType) -> None:
    overrides = topology.service_overrides(
        {
            "KGLAB_GATEWAY_RATE_LIMITS": "[]",
            "KGLAB_LOG_LEVEL": "DEBUG",
            "KGLAB_POSTGRES_URL": "postgresql://elsewhere/db",
            "PATH": "/bin",
        }
    )
    assert overrides == {"KGLAB_GATEWAY_RATE_LIMITS": "[]", "KGLAB_LOG_LEVEL": "DEBUG"}
    configured = stack(topology, overrides=overrides)
    assert configured.env("gateway")["KGLAB_GATEWAY_RATE_LIMITS"] == "[]"
    assert "KGLAB_GATEWAY_RATE_LIMITS" not in configured.env("auth")
    assert configured.env("auth")["KGLAB_LOG_LEVEL"] == "DEBUG"


def test_secrets_are_made_once_and_kept_private(topology: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "stack" / "secrets.env"
    first = topology.load_or_create_secrets(path)
    codec = IdentityCodec(
        public_keys=first["KGLAB_IDENTITY_PUBLIC_KEYS"],
        signing_key=first["KGLAB_GATEWAY_IDENTITY_SIGNING_KEY"],
    )
    assert codec.can_mint
    assert len(first["KGLAB_INGESTION_WEBHOOK_SECRET_KEY"]) >= 16
    assert path.stat().st_mode & 0o777 == 0o600
    assert topology.load_or_create_secrets(path) == first


def test_a_secrets_file_from_before_webhooks_gets_the_sealing_key_added(
    topology: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "secrets.env"
    first = topology.load_or_create_secrets(path)
    older = {k: v for k, v in first.items() if k != "KGLAB_INGESTION_WEBHOOK_SECRET_KEY"}
    path.write_text("".join(f"{k}={v}\n" for k, v in older.items()))
    upgraded = topology.load_or_create_secrets(path)
    assert upgraded["KGLAB_IDENTITY_PUBLIC_KEYS"] == first["KGLAB_IDENTITY_PUBLIC_KEYS"]
    assert len(upgraded["KGLAB_INGESTION_WEBHOOK_SECRET_KEY"]) >= 16
    assert topology.load_or_create_secrets(path) == upgraded


def test_only_ingestion_gets_the_webhook_sealing_key(topology: ModuleType) -> None:
    configured = stack(topology)
    assert "KGLAB_INGESTION_WEBHOOK_SECRET_KEY" in configured.env("ingestion")
    for service in ("gateway", "auth", "graph", "document", "vector"):
        assert "KGLAB_INGESTION_WEBHOOK_SECRET_KEY" not in configured.env(service), service


def test_only_the_gateway_gets_the_identity_signing_key(topology: ModuleType) -> None:
    configured = stack(topology)
    assert "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY" in configured.env("gateway")
    for service in ("auth", "ingestion", "graph", "document", "vector"):
        env = configured.env(service)
        assert "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY" not in env, service
        assert "KGLAB_IDENTITY_PUBLIC_KEYS" in env, service
