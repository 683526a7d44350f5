"""``cp .env.example .env && docker compose up`` starts a working local stack (issue 15).

No Docker engine runs here, so the stack is not started: instead every service's environment is
computed the way compose computes it (the image's ``ENV``, then the service's ``environment``
with ``.env.example``'s variables interpolated) and given to the service's own settings class and
identity-key set-up, which is what a container does first and where it stopped before (the
copied file said production with placeholder secrets, and auth restarted forever).
deploy/validate.sh checks the rest of the file (limits, logs, volumes) on compose's own reading.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kglab_auth.config import AuthSettings
from kglab_document.config import DocumentSettings
from kglab_gateway.config import GatewaySettings
from kglab_graph.config import GraphSettings
from kglab_ingestion.config import IngestionSettings
from kglab_shared.identity import IdentityKeyError, codec_from_settings
from kglab_shared.settings import (
    ConfigurationError,
    Environment,
    ServiceSettings,
    StoreKind,
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

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z0-9_]+)")


class UnsetVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset: compose refuses to start."""


def read_env_file(path: Path) -> dict[str, str]:
    """Compose's ``.env`` format as far as the project uses it: ``KEY=value`` lines, comments."""
    variables = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        variables[key.strip()] = value.strip()
    return variables


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (also when
    empty), ``${VAR-default}`` (only when unset), ``${VAR:?error}`` and ``${VAR?error}``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        found = variables.get(name)
        if operator == ":-":
            return found if found else argument
        if operator == "-":
            return argument if found is None else found
        if operator in (":?", "?") and (found is None or (operator == ":?" and not found)):
            raise UnsetVariable(f"{name}: {argument}")
        return found or ""

    return _REFERENCE.sub(one, value)


def image_environment(build_args: Mapping[str, str]) -> dict[str, str]:
    """The runtime stage's ``ENV`` (KGLAB_* only, the build arguments put in), which compose's
    environment overrides."""
    runtime = (ROOT / "Dockerfile").read_text().split("AS runtime", 1)[1]
    found = {}
    for block in re.findall(r"^ENV (.*?)(?<!\\)$", runtime, flags=re.M | re.S):
        for key, value in re.findall(r"(KGLAB_[A-Z_]+)=(\S+)", block):
            found[key] = interpolate(value, build_args)
    return found


def compose_environments(variables: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each service's environment in its container: the image's, then compose's."""
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {
        name: image_environment(spec["build"]["args"])
        | {key: interpolate(str(value), variables) for key, value in spec["environment"].items()}
        for name, spec in compose["services"].items()
        if name in SETTINGS
    }


@pytest.fixture
def isolated_environ() -> Iterator[None]:
    """No KGLAB_ variable of the shell or the conftest leaks into the settings under test."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("KGLAB_"):
            del os.environ[key]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_settings(service: str, env: Mapping[str, str]) -> ServiceSettings:
    """What a service's ``create_app`` does before it connects anywhere: its settings, then
    its identity keys (a key set that does not parse stops the service too)."""
    for key in [k for k in os.environ if k.startswith("KGLAB_")]:
        del os.environ[key]
    os.environ.update(env)
    settings = load_settings(SETTINGS[service])
    signing_key = getattr(settings, "identity_signing_key", None)
    codec_from_settings(
        settings.identity_public_keys,
        settings.internal_token_secret.get_secret_value(),
        signing_key=signing_key.get_secret_value() if signing_key else None,
    )
    return settings


def test_the_example_env_file_starts_every_service(isolated_environ: None) -> None:
    environments = compose_environments(read_env_file(ROOT / ".env.example"))
    assert set(environments) == set(SETTINGS)
    for service, env in environments.items():
        settings = start_settings(service, env)
        # A working local stack: real servers and RabbitMQ, as compose runs them.
        assert settings.environment is Environment.DEVELOPMENT, service
        assert settings.stores is StoreKind.REAL, service
        assert settings.rabbitmq_url is not None, service


def test_the_example_env_file_names_every_variable_compose_requires() -> None:
    variables = read_env_file(ROOT / ".env.example")
    compose = re.sub(r"(?m)^\s*#.*$", "", (ROOT / "docker-compose.yml").read_text())
    required = set(re.findall(r"\$\{([A-Z0-9_]+):?\?", compose))
    assert required, "the compose file requires no variable: the check below would pass vacuously"
    assert sorted(required - {k for k, v in variables.items() if v}) == []


def test_production_refuses_the_example_env_file_and_names_what_to_set(
    isolated_environ: None,
) -> None:
    """The same file with KGLAB_ENVIRONMENT=production: each service stops with a message naming
    the identity keys (and the gateway, its signing key); nothing starts half-configured."""
    variables = read_env_file(ROOT / ".env.example") | {"KGLAB_ENVIRONMENT": "production"}
    for service, env in compose_environments(variables).items():
        with pytest.raises(ConfigurationError, match="KGLAB_IDENTITY_PUBLIC_KEYS"):
            start_settings(service, env)


def test_a_placeholder_identity_key_set_stops_the_service(isolated_environ: None) -> None:
    """What the old .env.example did in development: a key set that does not parse."""
    variables = read_env_file(ROOT / ".env.example") | {
        "KGLAB_IDENTITY_PUBLIC_KEYS": "dev-only-change-me"
    }
    env = compose_environments(variables)["auth"]
    with pytest.raises(IdentityKeyError, match="not a usable JWKS"):
        start_settings("auth", env)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("a${X:-d}b", {}, "adb"),
        ("a${X:-d}b", {"X": ""}, "adb"),
        ("a${X-d}b", {"X": ""}, "ab"),
        ("${X:?no}", {"X": "v"}, "v"),
        ("$$X $X", {"X": "v"}, "$X v"),
    ],
)
def test_interpolation_follows_compose(text: str, variables: dict[str, str], expected: str) -> None:
    assert interpolate(text, variables) == expected


def test_interpolation_refuses_a_required_variable_unset_or_empty() -> None:
    with pytest.raises(UnsetVariable, match="X: set X"):
        interpolate("${X:?set X}", {"X": ""})
