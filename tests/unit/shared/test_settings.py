from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import (
    DEVELOPMENT_SECRET,
    BusKind,
    ConfigurationError,
    ServiceSettings,
    load_settings,
)


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_EXAMPLE_", extra="ignore", frozen=True)

    workers: int = 2
    api_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)


def test_reads_the_service_prefix_and_the_shared_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_EXAMPLE_WORKERS", "7")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    monkeypatch.setenv("KGLAB_POSTGRES_URL", "postgresql://u:p@127.0.0.1/db")
    settings = load_settings(ExampleSettings)
    assert settings.workers == 7
    assert settings.bus is BusKind.MEMORY
    assert settings.secret("postgres_url") == "postgresql://u:p@127.0.0.1/db"


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_EXAMPLE_WORKERS", "many")
    with pytest.raises(ConfigurationError, match="KGLAB_EXAMPLE_WORKERS"):
        load_settings(ExampleSettings)


def test_a_bad_shared_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_BUS", "carrier-pigeon")
    with pytest.raises(ConfigurationError, match="KGLAB_BUS"):
        load_settings(ExampleSettings)


def test_production_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "production")
    monkeypatch.setenv("KGLAB_INTERNAL_TOKEN_SECRET", "a-real-secret-of-enough-length")
    with pytest.raises(ConfigurationError, match="KGLAB_EXAMPLE_API_SECRET"):
        load_settings(ExampleSettings)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "production")
    monkeypatch.setenv("KGLAB_INTERNAL_TOKEN_SECRET", "a-real-secret-of-enough-length")
    monkeypatch.setenv("KGLAB_IDENTITY_PUBLIC_KEYS", '{"keys": []}')
    monkeypatch.setenv("KGLAB_EXAMPLE_API_SECRET", "another-real-secret")
    monkeypatch.setenv("KGLAB_STORES", "real")
    monkeypatch.setenv("KGLAB_BUS", "rabbitmq")
    monkeypatch.setenv("KGLAB_RABBITMQ_URL", "amqp://u:p@127.0.0.1:5672/")
    settings = load_settings(ExampleSettings)
    assert not settings.is_development


def test_development_accepts_the_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "development")
    assert load_settings(ExampleSettings).is_development


def test_rabbitmq_bus_needs_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_BUS", "rabbitmq")
    monkeypatch.delenv("KGLAB_RABBITMQ_URL", raising=False)
    with pytest.raises(ConfigurationError, match="KGLAB_RABBITMQ_URL"):
        load_settings(ExampleSettings)


def test_a_missing_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KGLAB_NEO4J_URL", raising=False)
    settings = load_settings(ExampleSettings)
    with pytest.raises(ConfigurationError, match="KGLAB_NEO4J_URL is not set"):
        settings.secret("neo4j_url")


def test_one_service_may_override_the_store_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_STORES", "real")
    monkeypatch.setenv("KGLAB_EXAMPLE_STORES", "embedded")
    assert load_settings(ExampleSettings).stores.value == "embedded"
    monkeypatch.delenv("KGLAB_EXAMPLE_STORES")
    assert load_settings(ExampleSettings).stores.value == "real"
