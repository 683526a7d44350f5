"""The auth service's app and lifespan: the composition root that wires adapters in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from kglab_auth.api.routes import internal_router, router, wellknown_router
from kglab_auth.config import AuthSettings
from kglab_auth.messaging.file_outbox import FileOutboxMailer
from kglab_auth.messaging.port import Mailer
from kglab_auth.messaging.smtp import SmtpMailer
from kglab_auth.oauth import build_providers
from kglab_auth.passwords import PasswordHasher
from kglab_auth.service import AuthService
from kglab_auth.store.sql import SqlAuthStore, create_engine, sqlite_url
from kglab_shared.app import create_service_app
from kglab_shared.bus.port import EventBus
from kglab_shared.logging import get_logger
from kglab_shared.ratelimit import RateLimiter, rate_limiter
from kglab_shared.revocation import RevocationFeed, revocation_feed
from kglab_shared.runtime import service_runtime
from kglab_shared.settings import StoreKind, load_settings

_log = get_logger(__name__)
_NO_FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def database_url(settings: AuthSettings) -> str:
    """PostgreSQL in real mode, a SQLite file under the data directory in embedded mode."""
    if settings.stores is StoreKind.REAL:
        return settings.secret("postgres_url")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(settings.data_dir / "auth.sqlite3")


def build_throttle(settings: AuthSettings) -> RateLimiter:
    """Failed sign-ins counted in Redis (every replica), or in this process when embedded."""
    redis_url = settings.secret("redis_url") if settings.stores is StoreKind.REAL else None
    return rate_limiter(redis_url, prefix=f"{settings.redis_key_prefix}throttle")


def build_mailer(settings: AuthSettings) -> Mailer:
    if settings.smtp_url is not None:
        return SmtpMailer(settings.secret("smtp_url"), sender=settings.mail_from)
    return FileOutboxMailer(settings.data_dir / "mail", sender=settings.mail_from)


def build_revocations(settings: AuthSettings) -> RevocationFeed:
    """Redis in real mode; embedded, the feed this process's gateway follows (``make dev``)."""
    redis_url = settings.secret("redis_url") if settings.stores is StoreKind.REAL else None
    return revocation_feed(redis_url, prefix=settings.redis_key_prefix)


def create_app(
    settings: AuthSettings | None = None,
    *,
    bus: EventBus | None = None,
    revocations: RevocationFeed | None = None,
) -> FastAPI:
    """Build the auth service; ``bus`` and ``revocations`` are injected when several services
    share one process (otherwise they are built from settings)."""
    settings = settings or load_settings(AuthSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(service_runtime(app, settings, bus=bus))
            store = SqlAuthStore(
                create_engine(database_url(settings)),
                hot_read_connections=settings.hot_read_connections,
            )
            stack.push_async_callback(store.close)
            await store.migrate()
            throttle = build_throttle(settings)
            stack.push_async_callback(throttle.close)
            feed = revocations or build_revocations(settings)
            if revocations is None:
                stack.push_async_callback(feed.close)
            http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=settings.oauth_http_timeout_s)
            )
            service = AuthService(
                settings=settings,
                store=store,
                hasher=PasswordHasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost_kib=settings.argon2_memory_kib,
                    parallelism=settings.argon2_parallelism,
                ),
                throttle=throttle,
                oauth_providers=build_providers(settings.oauth_providers, http),
                revocations=feed,
            )
            await service.ensure_signing_key()
            if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
                await service.ensure_admin(
                    settings.bootstrap_admin_email,
                    settings.bootstrap_admin_password.get_secret_value(),
                )
                _log.info("bootstrap_admin_ready", email=settings.bootstrap_admin_email)
            app.state.auth_service = service
            app.state.mailer = build_mailer(settings)
            app.state.readiness.add("database", store.ping)
            if settings.stores is StoreKind.REAL:
                app.state.readiness.add("redis", throttle.ping)
                app.state.readiness.add("revocations", feed.ping)
            yield

    app = create_service_app(
        settings,
        title="Knowledge Graph Lab: auth service",
        description="Users, sessions, tokens, API keys and password resets.",
        routers=[router, wellknown_router, internal_router],
        lifespan=lifespan,
        # The shared request context traces and counts requests; FastAPI's own telemetry would
        # do it twice when a provider is installed, and checks for one on every request.
        telemetry=_NO_FASTAPI_TELEMETRY,
    )
    return app
