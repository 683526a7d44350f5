"""Liveness (``/health``) and readiness (``/ready``): each dependency checked with a timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kglab_shared.errors import ServiceUnavailableError
from kglab_shared.metrics import DEPENDENCY_LATENCY, DEPENDENCY_UP

ReadinessCheck = Callable[[], Awaitable[Any]]
T = TypeVar("T")


class StillLoading(Exception):
    """Raised by a readiness check whose dependency is on its way up (a model loading):
    ``/ready`` names it ``loading`` instead of ``down``, and stays 503 until it is up."""


class ModelNotLoaded(ServiceUnavailableError):
    """A model failed to load, or did not finish loading in the time a caller would wait: a 503
    with Retry-After and a readable detail, never a 500."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class BackgroundLoad(Generic[T]):
    """One slow resource (a model) loaded in a background thread after :meth:`start`.

    The service answers meanwhile: :meth:`check` is its readiness check (``loading`` while the
    thread runs, ``down`` with the loader's message if it failed), and callers that need the
    resource wait for it, bounded: :meth:`get` from a worker thread, :meth:`wait` on the event
    loop. A failure is logged once with a readable message and re-raised to every caller as
    :class:`ModelNotLoaded`.
    """

    def __init__(self, name: str, loader: Callable[[], T], *, wait_s: float = 120.0) -> None:
        self.name = name
        self.wait_s = wait_s
        self._loader = loader
        self._future: Future[T] = Future()
        self._started = False
        self._lock = threading.Lock()
        self.load_s: float | None = None

    def start(self) -> BackgroundLoad[T]:
        """Start loading (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        # Not a daemon: a process that exits while a model loads waits for the load to end.
        # A daemon thread would be stopped inside the native runtime's initialisation, which
        # aborts the whole process (SIGABRT: "terminate called without an active exception")
        # and turns a clean stop during start-up into a crash.
        threading.Thread(target=self._run, name=f"load-{self.name}", daemon=False).start()
        return self

    def _run(self) -> None:
        if not self._future.set_running_or_notify_cancel():
            return
        started = time.perf_counter()
        try:
            value = self._loader()
        except BaseException as exc:  # reported through check() and get(), and logged
            self._future.set_exception(exc)
            from kglab_shared.logging import get_logger

            get_logger(__name__).error(
                "model_load_failed", model=self.name, error=f"{type(exc).__name__}: {exc}"
            )
        else:
            self.load_s = time.perf_counter() - started
            self._future.set_result(value)

    @property
    def loaded(self) -> bool:
        return self._future.done() and self._future.exception() is None

    def _failure(self, error: BaseException) -> ModelNotLoaded:
        return ModelNotLoaded(f"The model {self.name} failed to load: {error}")

    def get(self, timeout_s: float | None = None) -> T:
        """The loaded resource; blocks (call it off the event loop) at most ``timeout_s``."""
        self.start()
        timeout = self.wait_s if timeout_s is None else timeout_s
        try:
            return self._future.result(timeout=timeout)
        except TimeoutError:
            raise ModelNotLoaded(
                f"The model {self.name} is still loading after {timeout:g} s; try again shortly."
            ) from None
        except ModelNotLoaded:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc

    async def wait(self, timeout_s: float | None = None) -> T:
        """The loaded resource, awaited on the event loop, at most ``timeout_s``."""
        if self._future.done():
            return self.get(0)
        return await asyncio.to_thread(self.get, timeout_s)

    async def check(self) -> None:
        """Readiness: :class:`StillLoading` while loading; the loader's error if it failed."""
        if not self._future.done():
            raise StillLoading(f"The model {self.name} is loading.")
        error = self._future.exception()
        if error is not None:
            raise self._failure(error)


class Readiness:
    """The named dependency checks of one service, registered in its lifespan.

    A check added with ``counted=False`` does not decide the service's readiness: it is
    reported (by ``run(counted_only=False)`` and the ``kglab_dependency_up`` gauge) but a pod is
    not taken out of its Service for it. The gateway's upstream services are such checks: one
    service down must not make every gateway pod unready (ADR 0027).
    """

    def __init__(self, timeout_s: float = 1.0, *, service: str = "kglab") -> None:
        self.timeout_s = timeout_s
        self.service = service
        self._checks: dict[str, ReadinessCheck] = {}
        self._uncounted: set[str] = set()

    def add(self, name: str, check: ReadinessCheck, *, counted: bool = True) -> None:
        self._checks[name] = check
        if counted:
            self._uncounted.discard(name)
        else:
            self._uncounted.add(name)

    async def run(self, *, counted_only: bool = True) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Run the checks at once, each bounded by the timeout: (all up, each one's state)."""

        async def one(name: str, check: ReadinessCheck) -> tuple[str, dict[str, Any]]:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(check(), timeout=self.timeout_s)
            except TimeoutError:
                state: dict[str, Any] = {
                    "status": "down",
                    "detail": f"No answer within {self.timeout_s:g} s.",
                }
            except StillLoading as exc:
                state = {"status": "loading", "detail": str(exc)[:300]}
            except Exception as exc:
                state = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"[:300]}
            else:
                state = {"status": "up"}
            elapsed = time.perf_counter() - started
            state["latency_ms"] = round(elapsed * 1000, 2)
            DEPENDENCY_UP.labels(self.service, name).set(1 if state["status"] == "up" else 0)
            DEPENDENCY_LATENCY.labels(self.service, name).set(elapsed)
            return name, state

        checks = {
            name: check
            for name, check in self._checks.items()
            if not (counted_only and name in self._uncounted)
        }
        results = dict(await asyncio.gather(*(one(name, check) for name, check in checks.items())))
        return all(r["status"] == "up" for r in results.values()), results

    async def watch(self, interval_s: float) -> None:
        """Run every check (counted or not) every ``interval_s`` (the first after one interval:
        start-up has just checked), for the dependency gauges:
        a store that goes down shows on the dashboards and alerts even where nothing probes
        ``/ready`` (compose). Runs until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.run(counted_only=False)


_READY_EXAMPLE = {
    "status": "ready",
    "dependencies": {
        "postgres": {"status": "up", "latency_ms": 1.42},
        "redis": {"status": "up", "latency_ms": 0.37},
    },
}
_NOT_READY_EXAMPLE = {
    "status": "not ready",
    "dependencies": {
        "postgres": {"status": "up", "latency_ms": 1.42},
        "redis": {"status": "down", "detail": "No answer within 1 s.", "latency_ms": 1000.8},
    },
}


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/health",
        summary="Report that the process is alive",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    async def health() -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}

    @router.get(
        "/ready",
        summary="Report whether every dependency answers",
        responses={
            200: {
                "description": "Every dependency answers.",
                "content": {"application/json": {"example": _READY_EXAMPLE}},
            },
            503: {
                "description": "At least one dependency is down; the body names it.",
                "content": {"application/json": {"example": _NOT_READY_EXAMPLE}},
            },
        },
    )
    async def ready(request: Request) -> JSONResponse:
        """Report whether every dependency answers."""
        readiness: Readiness | None = getattr(request.app.state, "readiness", None)
        if readiness is None:
            return JSONResponse({"status": "ready", "dependencies": {}})
        ok, results = await readiness.run()
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "dependencies": results},
            status_code=200 if ok else 503,
        )

    return router
