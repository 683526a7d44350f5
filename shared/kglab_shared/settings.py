"""Settings read from the environment, validated once at start-up.

Every service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``KGLAB_AUTH_``, ``KGLAB_GATEWAY_`` ...). Values common to the whole system
(``KGLAB_ENVIRONMENT``, the backend URLs) are read without the service prefix.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets that ship in examples; accepted in development only.
DEVELOPMENT_SECRET = "dev-only-change-me"  # a sentinel, refused in production


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class BusKind(StrEnum):
    MEMORY = "memory"
    RABBITMQ = "rabbitmq"


class StoreKind(StrEnum):
    EMBEDDED = "embedded"
    REAL = "real"


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable service; the message names the variable."""


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses add their own and set ``env_prefix``."""

    model_config = SettingsConfigDict(env_prefix="KGLAB_", extra="ignore", frozen=True)

    service_name: str = "kglab"
    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        validation_alias="KGLAB_ENVIRONMENT",
    )
    log_level: str = Field(default="INFO", validation_alias="KGLAB_LOG_LEVEL")
    log_json: bool = Field(default=True, validation_alias="KGLAB_LOG_JSON")
    otel_exporter: str = Field(
        default="none",
        validation_alias="KGLAB_OTEL_EXPORTER",
        description="none | console | otlp",
    )
    otel_endpoint: str | None = Field(default=None, validation_alias="KGLAB_OTEL_ENDPOINT")
    ready_timeout_s: float = Field(default=1.0, gt=0, le=30, validation_alias="KGLAB_READY_TIMEOUT")

    # Which adapters to wire: the one place the embedded/real decision is made.
    bus: BusKind = Field(default=BusKind.MEMORY, validation_alias="KGLAB_BUS")
    stores: StoreKind = Field(default=StoreKind.EMBEDDED, validation_alias="KGLAB_STORES")
    data_dir: Path = Field(default=Path(".kglab"), validation_alias="KGLAB_DATA_DIR")

    # Backend URLs, shared by every service (each service uses the ones it needs).
    postgres_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_POSTGRES_URL")
    redis_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_REDIS_URL")
    rabbitmq_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_RABBITMQ_URL")
    neo4j_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_NEO4J_URL")
    mongo_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_MONGO_URL")
    qdrant_url: str | None = Field(default=None, validation_alias="KGLAB_QDRANT_URL")

    #: Signs the identity the gateway forwards to services (they verify it themselves).
    internal_token_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        min_length=16,
        validation_alias="KGLAB_INTERNAL_TOKEN_SECRET",
    )

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            for name, value in self:
                if isinstance(value, SecretStr) and value.get_secret_value() in (
                    DEVELOPMENT_SECRET,
                    "",
                ):
                    env_name = _env_name(type(self), name)
                    raise ValueError(
                        f"{env_name} still has its development default; "
                        "set a real secret before running in production."
                    )
        if self.bus is BusKind.RABBITMQ and self.rabbitmq_url is None:
            raise ValueError("KGLAB_BUS=rabbitmq needs KGLAB_RABBITMQ_URL.")
        return self

    def secret(self, name: str) -> str:
        """The plain value of a secret setting (only adapters that connect should call this)."""
        value = getattr(self, name)
        if value is None:
            env_name = _env_name(type(self), name)
            raise ConfigurationError(f"{env_name} is not set.")
        return str(value.get_secret_value())


def _env_name(cls: type[BaseSettings], field_name: str) -> str:
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment or raise one readable :class:`ConfigurationError`.

    ``KGLAB_<SERVICE>_STORES`` and ``KGLAB_<SERVICE>_BUS`` override the system-wide choice for
    one service (say, a real auth database beside embedded stores elsewhere).
    """
    prefix = str(cls.model_config.get("env_prefix", ""))
    if prefix != "KGLAB_":
        for name in ("stores", "bus"):
            value = os.environ.get(f"{prefix}{name.upper()}")
            if value and name not in overrides:
                overrides[f"KGLAB_{name.upper()}"] = value
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = error.get("loc", ())
            field = str(location[0]) if location else ""
            if field in cls.model_fields:
                name = _env_name(cls, field)
            elif field:
                name = field.upper()
            else:
                name = cls.__name__
            problems.append(f"{name}: {error.get('msg', 'invalid value')}")
        raise ConfigurationError("Invalid configuration. " + "; ".join(problems)) from None
