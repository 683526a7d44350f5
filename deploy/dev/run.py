"""``make dev``: the gateway and every service in one process on embedded backends.

The same code paths as production: the gateway talks HTTP to each service (through httpx's
ASGI transport instead of the network) and the services talk through the in-process bus.
Data persists under ``KGLAB_DATA_DIR`` (default ``./.kglab``).

Start-up order, so the process serves within a couple of seconds: the gateway (light) is built
first and starts listening; the five services (SQLAlchemy, Qdrant's client, the models: most of
the start-up time) are imported, built and started in the background right after. Meanwhile
``/health`` answers (the process is alive), ``/ready/system`` names each service that is not up
yet (the gateway's own ``/ready`` is the gateway and its Redis only, ADR 0027),
and a request for a service that is still starting waits for it (at most
``KGLAB_DEV_START_WAIT_S`` seconds, then a 503 problem+json with Retry-After) instead of
failing. A service that fails to start is logged and answered with the reason. The models
(embeddings, NER) load in their own background threads once their service is up, and each
service's ``/ready`` names them ``loading`` until they are.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from kglab_shared.bus.memory import InProcessBroker

DEV_DEFAULTS = {
    "KGLAB_ENVIRONMENT": "development",
    "KGLAB_STORES": "embedded",
    "KGLAB_BUS": "memory",
    "KGLAB_DATA_DIR": ".kglab",
    "KGLAB_LOG_JSON": "false",
}
#: The services, in the order they start (graph before vector: search?expand=graph asks it).
SERVICES = ("auth", "ingestion", "graph", "document", "vector")
#: Probes answer at once while a service starts; every other request waits for it.
PROBES = frozenset({"/health", "/ready", "/ready/system"})


def service_factories(peer: Callable[[str], ASGIApp]) -> dict[str, Callable[[], FastAPI]]:
    """How to build each service's app (not started); each imports its service, which is most
    of the start-up time. ``peer(name)`` is how one service reaches another in this process
    (search?expand=graph; the chunks an event's claim opens, adr/0020)."""

    def to(name: str) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=peer(name))

    def auth() -> FastAPI:
        from kglab_auth.main import create_app

        return create_app()

    def ingestion() -> FastAPI:
        from kglab_ingestion.main import create_app

        return create_app()

    def graph_service() -> FastAPI:
        from kglab_graph.main import create_app

        return create_app(document_transport=to("document"))

    def document() -> FastAPI:
        from kglab_document.main import create_app

        return create_app(ingestion_transport=to("ingestion"))

    def vector() -> FastAPI:
        from kglab_vector.main import create_app

        return create_app(graph_transport=to("graph"), document_transport=to("document"))

    # Each service gets its own in-process bus; they share this process's broker, as separate
    # processes share one RabbitMQ.
    return {
        "auth": auth,
        "ingestion": ingestion,
        "graph": graph_service,
        "document": document,
        "vector": vector,
    }


class ServiceHost:
    """Builds and starts the services in the background once the gateway serves, and stops
    them when the gateway stops. :meth:`app` is a stand-in for a service until it is up."""

    def __init__(self, *, wait_s: float, start_at_once: bool = True) -> None:
        self.wait_s = wait_s
        self.apps: dict[str, FastAPI] = {}
        self.errors: dict[str, str] = {}
        self.up_s: dict[str, float] = {}
        self._start_at_once = start_at_once
        self._gate: asyncio.Event | None = None
        self._up: dict[str, asyncio.Event] = {}
        self._retaining: InProcessBroker | None = None

    def release(self) -> None:
        """The server listens: start the services (``start_at_once=False`` waits for this)."""
        if self._gate is not None:
            self._gate.set()

    def app(self, name: str) -> ASGIApp:
        async def deferred(scope: Scope, receive: Receive, send: Send) -> None:
            app = self.apps.get(name) or await self._wait_for(name, scope)
            if app is None:
                await self._unavailable(name, scope, receive, send)
                return
            await app(scope, receive, send)

        return deferred

    async def _wait_for(self, name: str, scope: Scope) -> FastAPI | None:
        event = self._up.get(name)
        if event is None or name in self.errors or scope.get("path") in PROBES:
            return self.apps.get(name)
        try:
            await asyncio.wait_for(event.wait(), timeout=self.wait_s)
        except TimeoutError:
            return None
        return self.apps.get(name)

    async def _unavailable(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": f"{name} starting"})
            return
        from kglab_shared.errors import problem

        if name in self.errors:
            detail = f"The {name} service failed to start: {self.errors[name]}"
        else:
            detail = f"The {name} service is still starting; retry in a few seconds."
        response = problem(
            503, detail, instance=scope.get("path"), headers={"Retry-After": "2"}, service=name
        )
        await response(scope, receive, send)

    @asynccontextmanager
    async def hosted(self) -> AsyncIterator[None]:
        """Entered by the gateway's lifespan: returns at once; the services start meanwhile."""
        self._up = {name: asyncio.Event() for name in SERVICES}
        self._gate = asyncio.Event()
        if self._start_at_once:
            self._gate.set()
        stop = asyncio.Event()
        from kglab_shared.bus.factory import process_broker

        # Each service serves (and publishes) as soon as it is up, before the ones after it have
        # subscribed: ingestion's document.extracted would reach no queue while the document
        # service starts, and be lost. The broker keeps the events until every consumer is bound.
        self._retaining = process_broker()
        self._retaining.retain()
        task = asyncio.create_task(self._run(stop), name="kglab-dev-services")
        try:
            yield
        finally:
            stop.set()
            self._gate.set()
            await task
            self._consumers_bound()

    async def _run(self, stop: asyncio.Event) -> None:
        assert self._gate is not None
        await self._gate.wait()
        if stop.is_set():
            return
        started = time.perf_counter()
        factories = service_factories(self.app)
        async with AsyncExitStack() as stack:
            for name in SERVICES:
                if stop.is_set():
                    break
                try:
                    # Imports hold the interpreter most of the time, but the loop still gets
                    # its turns: /health answers meanwhile.
                    app = await asyncio.to_thread(factories[name])
                    await stack.enter_async_context(app.router.lifespan_context(app))
                except Exception as exc:
                    self._failed(name, exc)
                    continue
                self.apps[name] = app
                self.up_s[name] = round(time.perf_counter() - started, 3)
                self._up[name].set()
            self._consumers_bound()
            if not self.errors and not stop.is_set():
                print(f"every service is up ({time.perf_counter() - started:.1f} s).", flush=True)
            await stop.wait()

    def _consumers_bound(self) -> None:
        """Every service has subscribed (or failed, or stopped): the broker keeps no more."""
        broker, self._retaining = self._retaining, None
        if broker is not None:
            broker.release()

    def _failed(self, name: str, exc: BaseException) -> None:
        self.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
        self._up[name].set()
        print(
            f"the {name} service failed to start: {self.errors[name]}\n{traceback.format_exc()}",
            file=sys.stderr,
            flush=True,
        )


def build(*, start_at_once: bool = True) -> FastAPI:
    """Compose the whole system; the composition root of the single-process mode.

    The services start when the gateway's lifespan starts (``start_at_once``), or when
    :meth:`ServiceHost.release` says the server listens (``main`` does so).
    """
    for key, value in DEV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    Path(os.environ["KGLAB_DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    from kglab_gateway.main import create_app as create_gateway

    host = ServiceHost(
        wait_s=float(os.environ.get("KGLAB_DEV_START_WAIT_S", "60")), start_at_once=start_at_once
    )
    deferred = {name: host.app(name) for name in SERVICES}
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: httpx.ASGITransport(app=app) for name, app in deferred.items()
    }
    gateway = create_gateway(transports=transports, ws_apps=deferred, hosted=[host.hosted()])
    gateway.state.service_host = host
    return gateway


class _Server(uvicorn.Server):
    """Releases the services once the socket listens."""

    def __init__(self, config: uvicorn.Config, host: ServiceHost) -> None:
        super().__init__(config)
        self._host = host

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self._host.release()


def main() -> None:
    from kglab_shared.logging import serving
    from kglab_shared.serving import GuardedHttpProtocol

    port = int(os.environ.get("KGLAB_PORT", "8000"))
    app = build(start_at_once=False)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        # The gateway alone decides whose X-Forwarded-For to believe (trusted_proxies).
        proxy_headers=False,
        # As the image runs every service: a deadline for a request's headers.
        http=GuardedHttpProtocol,
        limit_concurrency=int(os.environ.get("KGLAB_HTTP_LIMIT_CONCURRENCY", "2048")),
    )
    server = _Server(config, app.state.service_host)
    print(f"Knowledge Graph Lab on http://127.0.0.1:{port} (docs at /docs); Ctrl-C stops it.")
    try:
        # Lines outside every service's request, event and task name the process itself.
        with serving("dev"):
            server.run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again; the stop was
        # asked for, so it is no error and needs no traceback.
        print("stopped.")
    sys.exit(0)


if __name__ == "__main__":
    main()
