"""Production refuses stand-ins (issue 12): an unset KGLAB_ENVIRONMENT means production, and
production refuses at start, in one message naming each variable, the embedded stores, the
in-process bus and every service's own stand-in; development and test accept them."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI

from kglab_auth.config import AuthSettings
from kglab_document.config import DocumentSettings
from kglab_gateway.config import GatewaySettings
from kglab_graph.config import GraphSettings
from kglab_ingestion.config import IngestionSettings
from kglab_shared.identity import generate_signing_key, public_jwks
from kglab_shared.settings import (
    ConfigurationError,
    Environment,
    ServiceSettings,
    load_settings,
)
from kglab_vector.config import VectorSettings

ROOT = Path(__file__).resolve().parents[2]

SETTINGS: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "auth": AuthSettings,
    "ingestion": IngestionSettings,
    "graph": GraphSettings,
    "document": DocumentSettings,
    "vector": VectorSettings,
}
SERVICES_WITH_A_BUS = tuple(name for name in SETTINGS if name != "gateway")

_IDENTITY_KEY = generate_signing_key()

#: What a production deployment sets: real servers, RabbitMQ, clamd, SMTP, the gateway's identity
#: keys (no shared secret: only the gateway can sign the identity services trust).
PRODUCTION = {
    "KGLAB_ENVIRONMENT": "production",
    "KGLAB_STORES": "real",
    "KGLAB_BUS": "rabbitmq",
    "KGLAB_RABBITMQ_URL": "amqp://kglab:secret@rabbitmq:5672/%2F",
    "KGLAB_POSTGRES_URL": "postgresql://kglab:secret@postgres:5432/kglab",
    "KGLAB_REDIS_URL": "redis://:secret@redis:6379/0",
    "KGLAB_MONGO_URL": "mongodb://kglab:secret@mongo:27017/kglab",
    "KGLAB_NEO4J_URL": "bolt://neo4j:secret@neo4j:7687",
    "KGLAB_QDRANT_URL": "http://qdrant:6333",
    "KGLAB_CLAMD_URL": "tcp://clamav:3310",
    "KGLAB_SMTP_URL": "smtp://mail:1025",
    "KGLAB_IDENTITY_PUBLIC_KEYS": json.dumps(public_jwks(_IDENTITY_KEY)),
    "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY": json.dumps(_IDENTITY_KEY.as_dict(private=True)),
    "KGLAB_INGESTION_WEBHOOK_SECRET_KEY": "a-real-webhook-sealing-key",
}

#: (service, what the deployment changes: a value, or None to unset it, what the message names)
STAND_INS: list[tuple[str, dict[str, str | None], str]] = [
    *[(name, {"KGLAB_STORES": "embedded"}, "KGLAB_STORES") for name in SETTINGS],
    *[
        (name, {f"KGLAB_{name.upper()}_STORES": "embedded"}, f"KGLAB_{name.upper()}_STORES")
        for name in SETTINGS
    ],
    *[(name, {"KGLAB_BUS": "memory"}, "KGLAB_BUS") for name in SERVICES_WITH_A_BUS],
    *[
        (name, {f"KGLAB_{name.upper()}_BUS": "memory"}, f"KGLAB_{name.upper()}_BUS")
        for name in SERVICES_WITH_A_BUS
    ],
    ("ingestion", {"KGLAB_CLAMD_URL": None}, "KGLAB_CLAMD_URL"),
    ("auth", {"KGLAB_SMTP_URL": None}, "KGLAB_SMTP_URL"),
    ("gateway", {"KGLAB_REDIS_URL": None}, "KGLAB_REDIS_URL"),
    ("vector", {"KGLAB_REDIS_URL": None}, "KGLAB_REDIS_URL"),
    ("vector", {"KGLAB_VECTOR_CACHE": "memory"}, "KGLAB_VECTOR_CACHE"),
    ("vector", {"KGLAB_VECTOR_EMBEDDER": "hashing"}, "KGLAB_VECTOR_EMBEDDER"),
    ("graph", {"KGLAB_GRAPH_RECOGNISER": "rules"}, "KGLAB_GRAPH_RECOGNISER"),
    *[
        (name, {"KGLAB_IDENTITY_PUBLIC_KEYS": None}, "KGLAB_IDENTITY_PUBLIC_KEYS")
        for name in SETTINGS
    ],
]


def _id(case: tuple[str, dict[str, str | None], str]) -> str:
    service, changes, _ = case
    return f"{service}-" + "-".join(f"{k}={v}" for k, v in changes.items())


STAND_IN_IDS = [_id(case) for case in STAND_INS]


@pytest.fixture
def environ() -> Iterator[Callable[[dict[str, str | None]], None]]:
    """Replace every KGLAB_ variable (the conftest's and the shell's) with the given ones; the
    whole environment comes back afterwards, whatever the code under test set in it."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("KGLAB_"):
            del os.environ[key]

    def apply(values: dict[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    try:
        yield apply
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_an_unset_environment_means_production(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    environ({**PRODUCTION, "KGLAB_ENVIRONMENT": None})
    for cls in SETTINGS.values():
        assert load_settings(cls).environment is Environment.PRODUCTION


def test_an_unset_environment_refuses_the_defaults_and_says_why(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    environ({})
    with pytest.raises(ConfigurationError) as refused:
        load_settings(IngestionSettings)
    message = str(refused.value)
    assert "KGLAB_ENVIRONMENT is not set, which means production" in message
    # Everything refused is in the one message, each with what to set instead.
    for named in (
        "KGLAB_INTERNAL_TOKEN_SECRET",
        "KGLAB_STORES",
        "KGLAB_BUS",
        "KGLAB_CLAMD_URL",
        "set KGLAB_STORES=real with KGLAB_POSTGRES_URL",
        "set KGLAB_BUS=rabbitmq with KGLAB_RABBITMQ_URL",
        "set KGLAB_CLAMD_URL=tcp://host:port",
        "KGLAB_ENVIRONMENT=development",
    ):
        assert named in message
    assert "Value error" not in message


@pytest.mark.parametrize("service", SETTINGS)
def test_production_accepts_the_real_configuration(
    environ: Callable[[dict[str, str | None]], None], service: str
) -> None:
    environ(PRODUCTION)
    settings = load_settings(SETTINGS[service])
    assert settings.environment is Environment.PRODUCTION
    assert settings.stand_ins() == []


@pytest.mark.parametrize(("service", "changes", "named"), STAND_INS, ids=STAND_IN_IDS)
def test_production_refuses_each_stand_in_by_name(
    environ: Callable[[dict[str, str | None]], None],
    service: str,
    changes: dict[str, str | None],
    named: str,
) -> None:
    environ({**PRODUCTION, **changes})
    with pytest.raises(ConfigurationError, match=re.escape(named)) as refused:
        load_settings(SETTINGS[service])
    message = str(refused.value)
    assert "KGLAB_ENVIRONMENT=production refuses to start" in message
    assert ": set " in message or ": leave it unset" in message


@pytest.mark.parametrize("environment", ["development", "test"])
@pytest.mark.parametrize(("service", "changes", "named"), STAND_INS, ids=STAND_IN_IDS)
def test_development_and_test_accept_each_stand_in(
    environ: Callable[[dict[str, str | None]], None],
    environment: str,
    service: str,
    changes: dict[str, str | None],
    named: str,
) -> None:
    environ({**PRODUCTION, **changes, "KGLAB_ENVIRONMENT": environment})
    settings = load_settings(SETTINGS[service])
    assert settings.stand_ins() != []


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_accept_every_default(
    environ: Callable[[dict[str, str | None]], None], environment: str
) -> None:
    environ({"KGLAB_ENVIRONMENT": environment})
    for cls in SETTINGS.values():
        load_settings(cls)


def test_the_gateway_uses_no_bus_so_production_does_not_ask_for_one(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    environ({**PRODUCTION, "KGLAB_BUS": "memory"})
    load_settings(GatewaySettings)


def test_a_gateway_without_rate_limits_needs_no_redis(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    environ({**PRODUCTION, "KGLAB_REDIS_URL": None, "KGLAB_GATEWAY_RATE_LIMIT_ENABLED": "false"})
    load_settings(GatewaySettings)


def test_an_ingestion_on_clamd_chosen_without_its_address_is_not_a_stand_in(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    """``KGLAB_INGESTION_SCANNER=clamd`` without the URL fails where the scanner is built."""
    environ({**PRODUCTION, "KGLAB_CLAMD_URL": None, "KGLAB_INGESTION_SCANNER": "clamd"})
    assert load_settings(IngestionSettings).stand_ins() == []


@pytest.mark.parametrize("service", SETTINGS)
def test_each_app_refuses_to_start_on_stand_ins_with_the_readable_message(
    environ: Callable[[dict[str, str | None]], None], service: str
) -> None:
    """``create_app`` is what the container runs (``uvicorn --factory``) and ``make dev`` calls."""
    environ({"KGLAB_INTERNAL_TOKEN_SECRET": "a-real-secret-of-enough-length"})
    create_app: Callable[[], FastAPI] = importlib.import_module(f"kglab_{service}.main").create_app
    with pytest.raises(ConfigurationError) as refused:
        create_app()
    message = str(refused.value)
    assert f"production refuses to start the {service} service" in message
    assert "KGLAB_STORES (or " in message


# --- the deployment files ship a configuration production accepts ----------------------------


def _compose_environments() -> dict[str, dict[str, str]]:
    """Compose's environments with a production ``.env``: every variable .env.example names
    given a real-looking value (not its placeholders, which production rightly refuses), the
    identity keys a real pair."""
    from tests.unit.test_compose_env import compose_environments, read_env_file

    variables = {
        name: f"real-{name.lower().replace('_', '-')}-value"
        for name in read_env_file(ROOT / ".env.example")
    }
    variables |= {
        "KGLAB_ENVIRONMENT": "production",
        "KGLAB_OTEL_EXPORTER": "otlp",
        "KGLAB_IDENTITY_PUBLIC_KEYS": PRODUCTION["KGLAB_IDENTITY_PUBLIC_KEYS"],
        "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY": PRODUCTION["KGLAB_GATEWAY_IDENTITY_SIGNING_KEY"],
    }
    return compose_environments(variables)


def _chart_environments() -> dict[str, dict[str, str]]:
    values: dict[str, Any] = yaml.safe_load((ROOT / "k8s" / "kglab" / "values.yaml").read_text())
    found = {}
    for name in SETTINGS:
        block = values[name]
        env = {**values["env"], **(block.get("env") or {})}
        secrets = {**values["commonSecretEnv"], **(block.get("secretEnv") or {})}
        env.update({key: f"real-value-of-{secret}" for key, secret in secrets.items()})
        found[name] = {key: _plain_value(str(value), values) for key, value in env.items()}
    return found


def _plain_value(value: str, values: dict[str, Any]) -> str:
    """A value that only names another chart value (``{{ .Values.a.b }}``) rendered as Helm
    would; anything else as written."""
    match = re.fullmatch(r"\{\{\s*\.Values\.([\w.]+)\s*\}\}", value)
    if match is None:
        return value
    found: Any = values
    for part in match.group(1).split("."):
        found = found[part]
    return str(found)


@pytest.mark.parametrize(
    ("source", "environments"),
    [("docker-compose.yml", _compose_environments), ("k8s/kglab", _chart_environments)],
)
def test_the_deployment_files_state_production_and_pass_its_checks(
    environ: Callable[[dict[str, str | None]], None],
    source: str,
    environments: Callable[[], dict[str, dict[str, str]]],
) -> None:
    found = environments()
    assert set(found) == set(SETTINGS), source
    for service, env in found.items():
        assert env["KGLAB_ENVIRONMENT"] == "production", (source, service)
        environ({key: None for key in os.environ if key.startswith("KGLAB_")} | dict(env))
        settings = load_settings(SETTINGS[service])
        assert settings.environment is Environment.PRODUCTION, (source, service)


def test_the_image_states_production() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime_stage = dockerfile.split("AS runtime", 1)[1]
    assert "KGLAB_ENVIRONMENT=production" in runtime_stage


def test_make_dev_states_development(
    environ: Callable[[dict[str, str | None]], None], tmp_path: Path
) -> None:
    """``make dev`` composes the system with nothing exported: it says development itself."""
    from tests.e2e.conftest import _load_composition

    environ({"KGLAB_DATA_DIR": str(tmp_path / "data")})
    gateway: FastAPI = _load_composition().build(start_at_once=False)  # type: ignore[attr-defined]
    assert gateway.state.service_host is not None
    assert os.environ["KGLAB_ENVIRONMENT"] == "development"


def test_the_gateway_needs_the_private_key_of_the_public_ones(
    environ: Callable[[dict[str, str | None]], None],
) -> None:
    environ({**PRODUCTION, "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY": None})
    with pytest.raises(ConfigurationError, match="KGLAB_GATEWAY_IDENTITY_SIGNING_KEY"):
        load_settings(GatewaySettings)
