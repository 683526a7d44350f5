"""Settings read from the environment, validated once at start-up.

Every service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``KGLAB_AUTH_``, ``KGLAB_GATEWAY_`` ...). Values common to the whole system
(``KGLAB_ENVIRONMENT``, the backend URLs) are read without the service prefix.

An unset ``KGLAB_ENVIRONMENT`` means production, and production refuses the stand-ins (embedded
stores, the in-process bus, each service's own, listed by :meth:`ServiceSettings.stand_ins`) and
the development secrets: a deployment that forgot a variable stops at start with a message
naming it instead of running on SQLite in a container's temporary directory. ``make dev`` and
the tests set their environment explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

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


@dataclass(frozen=True, slots=True)
class StandIn:
    """A stand-in the settings would wire in place of a real server (development and tests
    only): ``chosen_by`` names the variable that chose it and what it is, ``instead`` what to
    set for production."""

    chosen_by: str
    instead: str


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses add their own and set ``env_prefix``."""

    model_config = SettingsConfigDict(env_prefix="KGLAB_", extra="ignore", frozen=True)

    #: What ``KGLAB_STORES=embedded`` wires in this service, and the servers ``real`` needs
    #: (both only for the message that refuses embedded stores in production).
    embedded_stores: ClassVar[str] = "SQLite, files on disk, Qdrant local mode"
    real_store_urls: ClassVar[tuple[str, ...]] = ()
    #: Whether the service wires the event bus (the gateway does not).
    uses_bus: ClassVar[bool] = True

    service_name: str = "kglab"
    #: Unset means production: running on stand-ins must be asked for, not fallen into.
    environment: Environment = Field(
        default=Environment.PRODUCTION,
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
    #: A port of its own for Prometheus (no token needed; reachable only where the network
    #: lets it: the compose network, the chart's NetworkPolicy). Unset: none (ADR 0027).
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, validation_alias="KGLAB_METRICS_PORT"
    )
    metrics_host: str = Field(default="127.0.0.1", validation_alias="KGLAB_METRICS_HOST")
    #: How often every dependency is checked for the kglab_dependency_up gauge; 0: only when
    #: /ready is asked.
    dependency_check_interval_s: float = Field(
        default=15.0, ge=0, le=3600, validation_alias="KGLAB_DEPENDENCY_CHECK_INTERVAL_S"
    )

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

    #: The gateway's public identity keys (a JWKS; two during a rotation): services verify the
    #: forwarded identity with them and cannot sign one. Unset: a pair derived from the secret
    #: above (development only).
    identity_public_keys: str | None = Field(
        default=None, validation_alias="KGLAB_IDENTITY_PUBLIC_KEYS"
    )

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    def stand_ins(self) -> list[StandIn]:
        """The stand-ins these settings would wire; production refuses every one of them.

        Subclasses add their service's own to ``super().stand_ins()``.
        """
        found: list[StandIn] = []
        prefix = _service_prefix(type(self))
        if not self.identity_public_keys:
            found.append(
                StandIn(
                    "KGLAB_IDENTITY_PUBLIC_KEYS is not set (forwarded identities would be signed "
                    "with a key derived from KGLAB_INTERNAL_TOKEN_SECRET, which every service "
                    "holds, so any service could sign an administrator's identity)",
                    "set KGLAB_IDENTITY_PUBLIC_KEYS to the gateway's public keys and "
                    "KGLAB_GATEWAY_IDENTITY_SIGNING_KEY on the gateway (python -m "
                    "kglab_shared.identity_keys makes a pair)",
                )
            )
        if self.stores is StoreKind.EMBEDDED:
            own = f" (or {prefix}STORES)" if prefix else ""
            urls = _and(list(self.real_store_urls))
            found.append(
                StandIn(
                    f"KGLAB_STORES{own} is embedded ({self.embedded_stores})",
                    "set KGLAB_STORES=real" + (f" with {urls}" if urls else ""),
                )
            )
        if self.uses_bus and self.bus is BusKind.MEMORY:
            own = f" (or {prefix}BUS)" if prefix else ""
            found.append(
                StandIn(
                    f"KGLAB_BUS{own} is memory (the in-process bus: events never leave the process "
                    "and are lost when it stops)",
                    "set KGLAB_BUS=rabbitmq with KGLAB_RABBITMQ_URL",
                )
            )
        return found

    @model_validator(mode="after")
    def _refuse_what_production_cannot_run_on(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            problems = [
                f"{_env_name(type(self), name)} still has its development default: "
                "set a real secret"
                for name, value in self
                if isinstance(value, SecretStr)
                and value.get_secret_value() in (DEVELOPMENT_SECRET, "")
                # With the identity keys set, the shared secret signs nothing.
                and not (name == "internal_token_secret" and self.identity_public_keys)
            ]
            problems += [f"{item.chosen_by}: {item.instead}" for item in self.stand_ins()]
            if problems:
                raise ValueError(self._production_refusal(problems))
        if self.bus is BusKind.RABBITMQ and self.rabbitmq_url is None:
            raise ValueError("KGLAB_BUS=rabbitmq needs KGLAB_RABBITMQ_URL.")
        if self.otel_exporter not in ("none", "console", "otlp"):
            raise ValueError(
                f"KGLAB_OTEL_EXPORTER must be none, console or otlp, not {self.otel_exporter!r}."
            )
        if self.otel_exporter == "otlp" and not self.otel_endpoint:
            # Tracing stays off unless told where to send spans (ADR 0027).
            raise ValueError(
                "KGLAB_OTEL_EXPORTER=otlp needs KGLAB_OTEL_ENDPOINT, the collector's OTLP/HTTP "
                "traces URL (e.g. http://otel-collector:4318/v1/traces)."
            )
        return self

    def _production_refusal(self, problems: list[str]) -> str:
        """One message for everything production refuses, each line naming its variable."""
        if "environment" in self.model_fields_set:
            which = "KGLAB_ENVIRONMENT=production"
        else:
            which = "KGLAB_ENVIRONMENT is not set, which means production, and production"
        lines = [f"{which} refuses to start the {self.service_name} service with:"]
        lines += [f"  - {problem}." for problem in problems]
        lines.append(
            "  To run on stand-ins and development secrets instead, set "
            "KGLAB_ENVIRONMENT=development (make dev does) or test (the tests do)."
        )
        return "\n".join(lines)

    def secret(self, name: str) -> str:
        """The plain value of a secret setting (only adapters that connect should call this)."""
        value = getattr(self, name)
        if value is None:
            env_name = _env_name(type(self), name)
            raise ConfigurationError(f"{env_name} is not set.")
        return str(value.get_secret_value())


def _service_prefix(cls: type[BaseSettings]) -> str:
    """``KGLAB_AUTH_`` for a service's settings; empty for the shared ones (``KGLAB_``)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return "" if prefix == "KGLAB_" else prefix


def _and(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


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
            message = str(error.get("msg", "invalid value"))
            context = error.get("ctx") or {}
            if error.get("type") == "value_error" and "error" in context:
                # Our own validators' messages, without pydantic's "Value error, " in front.
                message = str(context["error"])
            if not location:
                # A check of the whole settings: its message names the variables itself.
                problems.append(message)
                continue
            problems.append(f"{name}: {message}")
        raise ConfigurationError("Invalid configuration. " + "; ".join(problems)) from None


def cidr_list(value: Any, variable: str, example: str) -> Any:
    """A list of networks from a comma-separated variable (or a list), each an address or a
    CIDR network; a readable error naming ``variable`` for the first that is neither."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        for item in value:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"{variable}: {item!r} is not an address or a CIDR network (e.g. {example})."
                ) from exc
    return value
