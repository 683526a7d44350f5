"""Settings of the auth service (environment prefix ``KGLAB_AUTH_``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from kglab_shared.settings import ServiceSettings, StandIn


class OAuthProviderSettings(BaseModel):
    """One third-party sign-in provider. ``kind=oidc`` needs ``discovery_url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["oidc", "github"] = "oidc"
    client_id: str
    client_secret: SecretStr
    discovery_url: str | None = None
    scope: str = "openid email profile"
    # GitHub endpoints; overridable so a local fake provider can stand in for GitHub.
    authorize_url: str = "https://github.com/login/oauth/authorize"
    token_url: str = "https://github.com/login/oauth/access_token"
    api_url: str = "https://api.github.com"


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KGLAB_AUTH_", extra="ignore", frozen=True)
    embedded_stores: ClassVar[str] = "SQLite, login failures counted in memory"
    real_store_urls: ClassVar[tuple[str, ...]] = ("KGLAB_POSTGRES_URL", "KGLAB_REDIS_URL")

    service_name: str = "auth"
    port: int = 8001

    issuer: str = "kglab-auth"
    audience: str = "kglab"
    access_token_ttl_s: int = Field(default=15 * 60, ge=60, le=3600)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=300)
    password_reset_ttl_s: int = Field(default=30 * 60, ge=60, le=24 * 3600)
    password_min_length: int = Field(default=10, ge=8, le=64)
    # Argon2id cost: OWASP's m=19 MiB, t=2, p=1 (~45 ms a hash on one core here; RFC 9106's
    # 64 MiB/t=3/p=4 took ~600 ms on 2 cores, which turns a login burst into a queue).
    argon2_time_cost: int = Field(default=2, ge=1, le=10)
    argon2_memory_kib: int = Field(default=19456, ge=8192, le=1048576)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)

    # Brute-force protection, failures counted in a fixed window (adr/0005, 2026-12-06):
    # - per account AND address: that pair is refused (429) after a few, so a stranger cannot
    #   lock the owner out from elsewhere;
    # - per address across accounts: that address is refused after many;
    # - per account from every address: beyond a much higher count every attempt on the account
    #   waits first (slowed, never locked), which paces a distributed guess without refusing
    #   the owner.
    login_window_s: int = Field(default=15 * 60, ge=1)
    login_max_failures_per_account_and_ip: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=50, ge=1)
    login_slow_after_failures_per_account: int = Field(default=50, ge=1)
    login_slow_delay_s: float = Field(default=1.0, ge=0, le=10)
    redis_key_prefix: str = "kglab:auth:"

    # Mail: SMTP when ``KGLAB_SMTP_URL`` is set (smtp://user:pass@host:port, smtps:// for TLS),
    # otherwise a file outbox under ``<data_dir>/mail/`` that a person can read.
    smtp_url: SecretStr | None = Field(default=None, validation_alias="KGLAB_SMTP_URL")
    mail_from: str = "Knowledge Graph Lab <no-reply@kglab.local>"
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where people reach the gateway; used in mails and OAuth redirect URIs.",
    )

    #: PostgreSQL connections kept for the per-request read of /me, beside the engine's pool.
    hot_read_connections: int = Field(default=8, ge=1, le=64)

    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    #: ``{"name": {kind, client_id, client_secret, discovery_url | github urls}}`` (JSON in env).
    oauth_providers: dict[str, OAuthProviderSettings] = Field(default_factory=dict)
    oauth_state_ttl_s: int = Field(default=10 * 60, ge=60)
    oauth_http_timeout_s: float = Field(default=10.0, gt=0, le=60)

    def stand_ins(self) -> list[StandIn]:
        found = super().stand_ins()
        if self.smtp_url is None:
            found.append(
                StandIn(
                    "KGLAB_SMTP_URL is not set (mails such as password resets would be written "
                    "as files under KGLAB_DATA_DIR/mail, never sent)",
                    "set KGLAB_SMTP_URL=smtp://user:password@host:port (smtps:// for TLS)",
                )
            )
        return found
