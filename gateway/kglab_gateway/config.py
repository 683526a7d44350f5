"""Gateway settings (environment prefix ``KGLAB_GATEWAY_``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from kglab_shared.settings import ServiceSettings, StandIn, StoreKind, cidr_list


class RateLimitRule(BaseModel):
    """``limit`` requests per ``window_s`` seconds, per user and per client address."""

    prefix: str
    limit: int = Field(gt=0)
    window_s: int = Field(default=60, gt=0)
    per: str = Field(default="user", pattern="^(user|ip)$")

    @property
    def policy_name(self) -> str:
        """The rule's name in the RateLimit fields: ``user`` or ``ip``, then the path it
        covers beyond ``/api/`` (``ip-v1-auth-login``)."""
        path = self.prefix.removeprefix("/api/").strip("/").replace("/", "-")
        return f"{self.per}-{path}" if path else self.per


class VersionNotice(BaseModel):
    """Announce that an API version is deprecated (RFC 9745) and when it ends (RFC 8594)."""

    prefix: str
    deprecation: str | None = Field(default=None, description="e.g. @1767225600")
    sunset: str | None = Field(default=None, description="HTTP date, e.g. Wed, 01 Jul 2026 ...")
    link: str | None = None


def _default_rate_limits() -> list[RateLimitRule]:
    return [
        RateLimitRule(prefix="/api/v1/auth/login", limit=30, window_s=60, per="ip"),
        RateLimitRule(prefix="/api/v1/auth/register", limit=10, window_s=60, per="ip"),
        RateLimitRule(prefix="/api/v1/auth/password-reset", limit=10, window_s=60, per="ip"),
        RateLimitRule(prefix="/api/", limit=6000, window_s=60, per="user"),
        RateLimitRule(prefix="/api/", limit=12000, window_s=60, per="ip"),
    ]


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_GATEWAY_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "rate limits counted in each process's memory"
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_REDIS_URL",)
    uses_bus: ClassVar[bool] = False

    service_name: str = "gateway"
    port: int = Field(default=8000, validation_alias="KGLAB_PORT")

    auth_url: str = "http://127.0.0.1:8001"
    ingestion_url: str = "http://127.0.0.1:8002"
    graph_url: str = "http://127.0.0.1:8003"
    document_url: str = "http://127.0.0.1:8004"
    vector_url: str = "http://127.0.0.1:8005"

    upstream_timeout_s: float = Field(default=10.0, gt=0)
    upstream_connect_timeout_s: float = Field(default=2.0, gt=0)
    # Connections per upstream (each gateway process); callers beyond them wait, within the
    # upstream timeout. 32 keeps a service at 1-5 ms per request busy with room to spare.
    upstream_max_connections: int = Field(default=32, gt=0)
    idempotent_retries: int = Field(default=2, ge=0, le=5)
    breaker_failure_threshold: int = Field(default=5, gt=0)
    breaker_reset_s: float = Field(default=10.0, gt=0)

    jwks_refresh_s: float = Field(default=300.0, gt=0)
    #: How long a verified API key is trusted without asking auth again (a revoked key keeps
    #: working at most this long).
    api_key_cache_s: float = Field(default=30.0, ge=0, le=300)
    #: The auth service's Redis key prefix: its revocation feed lives there. Read from the auth
    #: service's own variable when the gateway shares its environment (``make dev``, tests).
    auth_redis_key_prefix: str = Field(
        default="kglab:auth:",
        validation_alias=AliasChoices(
            "KGLAB_GATEWAY_AUTH_REDIS_KEY_PREFIX", "KGLAB_AUTH_REDIS_KEY_PREFIX"
        ),
    )
    #: The gateway's private Ed25519 key (a JWK) that signs the identity forwarded to services;
    #: its public part must be in KGLAB_IDENTITY_PUBLIC_KEYS. Only the gateway holds it.
    identity_signing_key: SecretStr | None = None

    #: How long the revocation feed may be lost before the gateway refuses signed-in requests
    #: (503) rather than let a signed-out session through.
    revocation_grace_s: float = Field(default=1.0, gt=0, le=60)
    token_issuer: str = "kglab-auth"
    token_audience: str = "kglab"

    #: Largest request body accepted for an ordinary request; uploads have their own limit.
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=60 * 1024 * 1024, gt=0)
    #: The longest wait for the next piece of a request body; a body that stalls longer is
    #: answered 408 (a slow but moving upload is not cut off).
    body_read_timeout_s: float = Field(default=15.0, gt=0, le=600)

    #: Addresses or networks (CIDR, comma-separated) of the reverse proxies in front of the
    #: gateway. Only a connection from one of them may name the client in X-Forwarded-For
    #: (and X-Forwarded-Proto); from anyone else the header is ignored and the socket's peer
    #: is the client, for rate limits and for the login throttle. Empty (the default): no
    #: proxy is trusted, not even loopback.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    cors_origins: list[str] = Field(default_factory=list)
    rate_limits: list[RateLimitRule] = Field(default_factory=_default_rate_limits)
    rate_limit_enabled: bool = True
    redis_key_prefix: str = "kglab:gateway:"
    version_notices: list[VersionNotice] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        return cidr_list(value, "KGLAB_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8")

    @model_validator(mode="after")
    def _signs_what_services_verify(self) -> Self:
        if self.identity_public_keys and self.identity_signing_key is None:
            raise ValueError(
                "KGLAB_IDENTITY_PUBLIC_KEYS is set but KGLAB_GATEWAY_IDENTITY_SIGNING_KEY is not: "
                "the gateway signs every identity the services verify, so it needs the private "
                "key (python -m kglab_shared.identity_keys makes a pair)."
            )
        return self

    def stand_ins(self) -> list[StandIn]:
        found = super().stand_ins()
        # With embedded stores the line about KGLAB_STORES already says it.
        if self.rate_limit_enabled and self.stores is StoreKind.REAL and self.redis_url is None:
            found.append(
                StandIn(
                    "KGLAB_REDIS_URL is not set (rate limits would be counted in each gateway "
                    "process's memory: every replica would allow the full limit)",
                    "set KGLAB_REDIS_URL (or KGLAB_GATEWAY_RATE_LIMIT_ENABLED=false to run "
                    "without rate limits)",
                )
            )
        return found
