"""The gateway's app and lifespan: the composition root of the public entry point."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.responses import Response
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kglab_gateway.api.proxy_routes import router as proxy_router
from kglab_gateway.api.ws_routes import router as ws_router
from kglab_gateway.config import GatewaySettings
from kglab_gateway.deadlines import BodyDeadlineMiddleware
from kglab_gateway.idempotency import (
    IdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from kglab_gateway.openapi import OpenAPIAssembler
from kglab_gateway.policy import GatewayPolicy, authorize
from kglab_gateway.proxy import UpstreamPool
from kglab_gateway.ratelimit import RateLimitHeadersMiddleware
from kglab_gateway.revocation import RevocationState
from kglab_gateway.security import SecurityHeadersMiddleware
from kglab_gateway.tokens import CredentialVerifier
from kglab_gateway.webapp import mount_web_app
from kglab_shared.app import create_service_app
from kglab_shared.errors import ForbiddenError
from kglab_shared.identity import SERVICE_ROLE, Identity, IdentityCodec, codec_from_settings
from kglab_shared.metrics import metrics_response
from kglab_shared.ratelimit import rate_limiter
from kglab_shared.revocation import RevocationFeed, revocation_feed
from kglab_shared.settings import StoreKind, load_settings

SERVICES = ("auth", "ingestion", "graph", "document", "vector")
_NO_FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_DESCRIPTION = """
The public API of Knowledge Graph Lab: upload files and web pages, follow their processing,
search them and walk the knowledge graph mined from them.

**Signing in.** Register with `POST /api/v1/auth/register`, then press **Authorize** and sign
in with your email and password (OAuth2 password flow), or call `POST /api/v1/auth/login`
with a form body `username=<email>&password=<password>`. Send the `access_token` as
`Authorization: Bearer <token>`; it lasts 15 minutes, and `POST /api/v1/auth/refresh`
exchanges the `refresh_token` for a new pair. Machine clients use an API key (`kglab_...`)
as the bearer token.

**Errors** are RFC 9457 `application/problem+json` with a readable `detail`.

**Rate limits.** Every answer under `/api/` carries the IETF fields `RateLimit-Policy`
(`"user";q=6000;w=60`: the quota per window of each limit the call counted against) and
`RateLimit` (`"user";r=5987;t=42`: requests left, seconds until the window starts afresh).
A spent limit answers 429 with `Retry-After`.

**Jobs.** An upload's job is `pending`, then `processing` through the stages `extracting`,
`storing`, `embedding` and `graphing`, then `completed` or `failed`. `completed` means the
document and its chunks are readable, search finds it and its entities are in the graph; a
document that cannot be stored, embedded or graphed fails its job with a readable `error` and
nothing of it is kept.

**Live progress**: `WS /ws/jobs/{job_id}?token=<access token>` pushes JSON progress messages
(status, stage, progress); the one with `final: true` comes only at `completed` or `failed`.
"""


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ws_apps: dict[str, ASGIApp] | None = None,
    hosted: Sequence[AbstractAsyncContextManager[Any]] = (),
) -> FastAPI:
    """Build the gateway.

    ``transports`` replaces network calls to services with in-process ones and ``hosted``
    are the lifespans of apps hosted in this process (both used by ``make dev``).
    """
    settings = settings or load_settings(GatewaySettings)
    base_urls = {name: getattr(settings, f"{name}_url") for name in SERVICES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for context in hosted:
                await stack.enter_async_context(context)
            pool = UpstreamPool(
                base_urls,
                timeout_s=settings.upstream_timeout_s,
                connect_timeout_s=settings.upstream_connect_timeout_s,
                max_connections=settings.upstream_max_connections,
                retries=settings.idempotent_retries,
                breaker_threshold=settings.breaker_failure_threshold,
                breaker_reset_s=settings.breaker_reset_s,
                transports=transports,
            )
            stack.push_async_callback(pool.close)
            signing_key = settings.identity_signing_key
            codec = codec_from_settings(
                settings.identity_public_keys,
                settings.internal_token_secret.get_secret_value(),
                signing_key=signing_key.get_secret_value() if signing_key else None,
            )
            revocations = RevocationState(grace_s=settings.revocation_grace_s)
            await _follow_revocations(stack, app, settings, revocations)
            shared_counters = settings.stores is StoreKind.REAL and settings.redis_url is not None
            limiter = rate_limiter(
                settings.secret("redis_url") if shared_counters else None,
                prefix=f"{settings.redis_key_prefix}rl:",
            )
            if shared_counters:
                app.state.readiness.add("redis", limiter.ping)
            stack.push_async_callback(limiter.close)
            service_assertion = ServiceAssertion(codec)

            async def fetch_jwks() -> dict[str, Any]:
                response = await pool.clients["auth"].get("/.well-known/jwks.json", timeout=3.0)
                response.raise_for_status()
                document: dict[str, Any] = response.json()
                return document

            async def resolve_api_key(key: str) -> Identity | None:
                response = await pool.clients["auth"].post(
                    "/internal/api-keys/verify",
                    json={"key": key},
                    headers={"X-KGLab-Identity": service_assertion.current()},
                    timeout=3.0,
                )
                if response.status_code in (401, 404):
                    return None
                response.raise_for_status()
                body = response.json()
                return Identity(
                    user_id=str(body["user_id"]),
                    role=str(body.get("role", "user")),
                    scopes=frozenset(body.get("scopes", [])),
                    email=body.get("email"),
                )

            verifier = CredentialVerifier(
                fetch_jwks,
                resolve_api_key,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                refresh_s=settings.jwks_refresh_s,
                api_key_ttl_s=settings.api_key_cache_s,
                revocations=revocations,
            )
            app.state.upstreams = pool
            app.state.idempotency = await _idempotency_store(stack, settings)
            app.state.policy = GatewayPolicy(settings, verifier, limiter, codec)
            app.state.ws_apps = ws_apps or {}
            app.state.openapi = OpenAPIAssembler(pool, _base_document(app))

            # Reported, not counted: the gateway's readiness is itself and Redis (its rate
            # limits and the revocation feed). One service down must not take every gateway
            # pod out of its Service and answer 503 for the whole API, sign-in included; the
            # gateway answers 503 for that service's routes alone (ADR 0027).
            # GET /ready/system reports the whole system.
            for name in SERVICES:
                app.state.readiness.add(name, _upstream_check(pool, name), counted=False)
            yield

    app = create_service_app(
        settings,
        title="Knowledge Graph Lab API",
        description=_DESCRIPTION,
        routers=[],
        lifespan=lifespan,
        expose_metrics=False,
        relays_routes=True,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # The shared request context traces and counts requests; FastAPI's own telemetry would
        # do it twice when a provider is installed, and checks for one on every request.
        telemetry=_NO_FASTAPI_TELEMETRY,
    )
    _add_documentation_routes(app)
    _add_brief_routes(app)
    mount_web_app(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Expose Prometheus metrics to administrators."""
        identity = await request.app.state.policy.authenticate(request)
        authorize(request.method, "/metrics", identity)
        if not identity.is_admin:
            raise ForbiddenError("Only an administrator may read the metrics.")
        return metrics_response()

    @app.get(
        "/ready/system",
        tags=["operations"],
        include_in_schema=False,
        summary="Report whether the gateway and every service answer",
        responses={
            200: {"description": "The gateway, its Redis and every service answer."},
            503: {"description": "Something is down; the body names it."},
        },
    )
    async def system_ready(request: Request) -> JSONResponse:
        """Report whether the gateway and every service answer."""
        ok, results = await request.app.state.readiness.run(counted_only=False)
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "dependencies": results},
            status_code=200 if ok else 503,
        )

    app.include_router(ws_router)
    app.include_router(proxy_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "Tus-Resumable",
                "Upload-Length",
                "Upload-Offset",
                "Upload-Metadata",
            ],
            # A browser's tus client reads these from upload responses.
            expose_headers=[
                "X-Request-ID",
                "Location",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
                "Upload-Offset",
                "Upload-Length",
                "Upload-Expires",
                "Upload-Job-Id",
                "Upload-Duplicate",
                "Tus-Resumable",
                "Tus-Version",
                "Tus-Extension",
                "Tus-Max-Size",
            ],
            max_age=600,
        )
    app.add_middleware(BodyDeadlineMiddleware, timeout_s=settings.body_read_timeout_s)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxies:
        # Outermost, so every layer sees the resolved client. The servers run with uvicorn's
        # own proxy-header handling off (it trusts loopback by default): this is the only
        # place a forwarded address is believed (README, "Client addresses").
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


class ServiceAssertion:
    """The gateway's own identity towards auth: minutes, not years, renewed at half-life."""

    LIFETIME_S = 300

    def __init__(self, codec: IdentityCodec) -> None:
        self._codec = codec
        self._token = ""
        self._renew_at = 0.0

    def current(self) -> str:
        now = time.time()
        if now >= self._renew_at:
            identity = Identity(user_id="gateway", role=SERVICE_ROLE)
            self._token = self._codec.mint(identity, lifetime_s=self.LIFETIME_S)
            self._renew_at = now + self.LIFETIME_S / 2
        return self._token


async def _follow_revocations(
    stack: AsyncExitStack, app: FastAPI, settings: GatewaySettings, state: RevocationState
) -> None:
    """Follow auth's revocation feed for as long as the gateway runs (Redis in real mode; the
    process's own feed when auth runs in this process on embedded stores)."""
    real = settings.stores is StoreKind.REAL and settings.redis_url is not None
    feed: RevocationFeed = revocation_feed(
        settings.secret("redis_url") if real else None, prefix=settings.auth_redis_key_prefix
    )
    stack.push_async_callback(feed.close)
    task = asyncio.create_task(
        feed.follow(state.apply, on_sync=state.synced, on_lost=state.lost),
        name="kglab-revocation-feed",
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    # Serve only once caught up: until then a signed-out session could pass.
    for _ in range(100):
        if state.ready():
            break
        await asyncio.sleep(0.05)

    async def check() -> None:
        if not state.ready():
            raise ConnectionError("the revocation feed is not followed")

    app.state.readiness.add("revocations", check)


def _upstream_check(pool: UpstreamPool, name: str) -> Any:
    async def check() -> None:
        response = await pool.clients[name].get("/health", timeout=1.0)
        response.raise_for_status()

    return check


def _base_document(app: FastAPI) -> dict[str, Any]:
    from fastapi.openapi.utils import get_openapi

    return get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=[{"name": "operations", "description": "Liveness and readiness."}],
    )


_BRIEF = Path(__file__).resolve().parent / "brief"
# The calculator is a static page: its own script and style only, its model from this origin.
_BRIEF_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _add_brief_routes(app: FastAPI) -> None:
    """The research brief's cost calculator (``make brief`` writes its model): public, static,
    no user data."""
    app.mount("/brief/static", StaticFiles(directory=_BRIEF), name="brief-static")

    @app.get("/brief/cost", include_in_schema=False)
    async def cost_calculator() -> FileResponse:
        """Serve the hosting cost calculator."""
        return FileResponse(_BRIEF / "cost.html", headers={"content-security-policy": _BRIEF_CSP})

    @app.get("/brief/cost-model.json", include_in_schema=False)
    async def cost_model() -> FileResponse:
        """Serve the calculator's coefficients and prices."""
        return FileResponse(_BRIEF / "cost-model.json", media_type="application/json")


async def _idempotency_store(stack: AsyncExitStack, settings: GatewaySettings) -> IdempotencyStore:
    """Redis in production (every replica, and a restarted gateway, sees a key); memory in
    ``make dev``."""
    if settings.stores is StoreKind.REAL and settings.redis_url is not None:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.secret("redis_url"))
        stack.push_async_callback(redis.aclose)
        return RedisIdempotencyStore(redis, prefix=f"{settings.redis_key_prefix}idem:")
    return MemoryIdempotencyStore()


def _add_documentation_routes(app: FastAPI) -> None:
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-static")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        """Serve the OpenAPI document of the whole public API."""
        return JSONResponse(await request.app.state.openapi.document())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Serve Swagger UI with a working Authorize button."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Knowledge Graph Lab API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
            init_oauth={"clientId": "kglab-docs", "usePkceWithAuthorizationCodeGrant": False},
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )
