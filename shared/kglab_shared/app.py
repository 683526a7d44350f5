"""The one way a FastAPI app is assembled, so every service behaves the same at the edges.

Every app gets: correlation ids (``X-Request-ID`` in and out), JSON logs, Prometheus metrics at
``/metrics``, problem+json errors, ``/health`` and ``/ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kglab_shared.correlation import (
    REQUEST_ID_HEADER,
    accept_correlation_id,
    get_correlation_id,
    set_correlation_id,
)
from kglab_shared.errors import install_error_handlers
from kglab_shared.health import Readiness, health_router
from kglab_shared.logging import configure_logging, serving
from kglab_shared.metrics import (
    HTTP_LATENCY,
    HTTP_REQUESTS,
    metrics_response,
    serve_metrics,
    stop_metrics_server,
)
from kglab_shared.settings import ServiceSettings
from kglab_shared.tracing import configure_tracing, incoming_request_context

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.lower().encode()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


#: A service names the route template that answered in this response header; the gateway
#: takes it for its own metrics' route label and removes it, so no client sees it (ADR 0027).
ROUTE_HEADER = b"x-kglab-route"
#: Route templates a gateway learns from its services (bounded: templates are code, not input).
_MAX_LEARNED_ROUTES = 500
_PARAMETER = re.compile(r"\{([^}:]+)(:path)?\}")


class LearnedRoutes:
    """The route templates the gateway's services named (``ROUTE_HEADER``), to label a call the
    gateway answered itself (401, 403, 429, 413: no service saw it) by the same template."""

    def __init__(self) -> None:
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._ordered: list[tuple[str, re.Pattern[str]]] = []

    def learn(self, template: str) -> None:
        if template in self._patterns or len(self._patterns) >= _MAX_LEARNED_ROUTES:
            return
        if not template.startswith("/") or len(template) > 200:
            return
        pattern = re.compile(
            "^"
            + _PARAMETER.sub(
                lambda m: "(.+)" if m.group(2) else "([^/]+)",
                re.sub(r"([^{}]+)(?=\{|$)", lambda m: re.escape(m.group(1)), template),
            )
            + "$"
        )
        self._patterns[template] = pattern
        # The most literal template first: /graph/entities before /graph/{name}.
        self._ordered = sorted(
            self._patterns.items(), key=lambda item: -len(_PARAMETER.sub("", item[0]))
        )

    def match(self, path: str) -> str | None:
        for template, pattern in self._ordered:
            if pattern.match(path):
                return template
        return None


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware copy): correlation id, request metrics.

    ``names_routes``: a service tells its caller which route template answered
    (``ROUTE_HEADER``). ``relays_routes``: the gateway, whose catch-all proxy route would label
    every call ``/api/{rest:path}``, labels it with the template its service named instead,
    removes the header, and labels a call it answered itself by a template learned earlier
    (``unmatched`` until one is).
    """

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        *,
        names_routes: bool = True,
        relays_routes: bool = False,
    ) -> None:
        self.app = app
        self.service = service
        self.names_routes = names_routes and not relays_routes
        self.relays_routes = relays_routes
        self.learned = LearnedRoutes()
        self._route_cache: dict[tuple[str, str], str] = {}
        # The labelled metric children per (method, route, status): labels() costs more than
        # the increment itself. Bounded; past the bound labels() is simply called each time.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        trace_headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == _REQUEST_ID_BYTES:
                incoming = value.decode("latin-1")
            elif name in _TRACE_HEADERS:
                trace_headers[name.decode("latin-1")] = value.decode("latin-1")
        correlation_id = accept_correlation_id(incoming)
        # Restored afterwards, not cleared: in one process (make dev) a service is called in its
        # caller's task, and the caller's request must keep its own id.
        previous = get_correlation_id()
        set_correlation_id(correlation_id)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status = 500
        upstream_route: str | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, upstream_route
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if self.relays_routes:
                    kept = [h for h in headers if h[0].lower() != ROUTE_HEADER]
                    if len(kept) != len(headers):
                        named = next(h[1] for h in headers if h[0].lower() == ROUTE_HEADER)
                        upstream_route = named.decode("latin-1")
                        headers = kept
                elif self.names_routes:
                    headers.append((ROUTE_HEADER, self._route(scope).encode("latin-1")))
                headers.append((_REQUEST_ID_BYTES, correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            span_name = f"{scope.get('method', 'WS')} {scope.get('path', '')}"
            with serving(self.service), incoming_request_context(trace_headers, span_name) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    if span is not None and scope["type"] == "http":
                        # Named by the route template once routing has found it, as the
                        # metrics are: span names stay few (the path is in an attribute).
                        span.update_name(f"{scope['method']} {self._label(scope, upstream_route)}")
                        span.set_attribute("url.path", scope.get("path", ""))
                        span.set_attribute("http.response.status_code", status)
        finally:
            if scope["type"] == "http":
                route = self._label(scope, upstream_route)
                method = scope["method"]
                children = self._children.get((method, route, status))
                if children is None:
                    children = (
                        HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                        HTTP_LATENCY.labels(self.service, method, route),
                    )
                    if len(self._children) < 1000:
                        self._children[(method, route, status)] = children
                children[0].inc()
                children[1].observe(time.perf_counter() - started)
            set_correlation_id(previous)

    def _label(self, scope: Scope, upstream_route: str | None) -> str:
        if not self.relays_routes:
            return self._route(scope)
        if upstream_route is not None:
            self.learned.learn(upstream_route)
            return upstream_route
        own = self._route(scope)
        if "{rest:path}" not in own:
            return own
        return self.learned.match(scope["path"]) or "unmatched"

    def _route(self, scope: Scope) -> str:
        # Label by route template, not raw path, so ids do not explode label cardinality.
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        app = scope.get("app")
        if app is None:
            return "unmatched"
        for route in app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def freeze_startup_heap() -> None:
    """Take what start-up allocated (modules, the app, its routes and models, pools) out of
    the garbage collector's reach. Python's full collections walk every tracked object; with a
    service's 100,000+ start-up objects each one stalled the event loop for tens of ms (89 ms
    measured for the gateway on a busy machine), every few seconds under load, which is what
    set the gateway's p95. Frozen objects are never collected, so only start-up's are frozen;
    the collection first frees what start-up left behind. Idempotent (make dev runs several
    services' lifespans in one process)."""
    gc.collect()
    gc.freeze()


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    version: str = "1.0.0",
    expose_metrics: bool = True,
    relays_routes: bool = False,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """Assemble a service's FastAPI app with the shared operational surface.

    ``relays_routes``: the app forwards calls to services (the gateway) and labels its metrics
    with the route templates they name (:class:`RequestContextMiddleware`).
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    configure_tracing(settings.service_name, settings.otel_exporter, settings.otel_endpoint)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.readiness = Readiness(settings.ready_timeout_s, service=settings.service_name)
        # Tasks started here (consumers, watchers) copy the context: their lines name this
        # service even when several share a process (make dev).
        with serving(settings.service_name):
            async with AsyncExitStack() as stack:
                if settings.metrics_port is not None:
                    server = serve_metrics(settings.metrics_host, settings.metrics_port)
                    app.state.metrics_server = server
                    stack.callback(stop_metrics_server, server)
                if lifespan is not None:
                    await stack.enter_async_context(lifespan(app))
                if settings.dependency_check_interval_s > 0:
                    watch = asyncio.create_task(
                        app.state.readiness.watch(settings.dependency_check_interval_s),
                        name=f"kglab-{settings.service_name}-dependency-watch",
                    )
                    stack.push_async_callback(_cancel, watch)
                freeze_startup_heap()
                yield

    # A trailing-slash redirect would name the service's own address in Location (the gateway
    # passes it on: "http://127.0.0.1:8004/..."); an unknown path is a 404 instead.
    fastapi_kwargs.setdefault("redirect_slashes", False)
    # The shared request context traces and counts every request; FastAPI's own telemetry would
    # record each one a second time once a tracer provider is installed.
    fastapi_kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=_lifespan,
        **fastapi_kwargs,
    )
    install_error_handlers(app)
    app.include_router(health_router())

    if expose_metrics:

        @app.get("/metrics", tags=["operations"], include_in_schema=False)
        async def metrics() -> Any:
            """Expose Prometheus metrics."""
            return metrics_response()

    for router in routers:
        app.include_router(router)
    app.add_middleware(
        RequestContextMiddleware, service=settings.service_name, relays_routes=relays_routes
    )
    return app
