"""Liveness (``/health``) and readiness (``/ready``): each dependency checked with a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[Any]]


class Readiness:
    """The named dependency checks of one service, registered in its lifespan."""

    def __init__(self, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def run(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        async def one(name: str, check: ReadinessCheck) -> tuple[str, dict[str, Any]]:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(check(), timeout=self.timeout_s)
            except TimeoutError:
                state: dict[str, Any] = {
                    "status": "down",
                    "detail": f"No answer within {self.timeout_s:g} s.",
                }
            except Exception as exc:
                state = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"[:300]}
            else:
                state = {"status": "up"}
            state["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            return name, state

        results = dict(
            await asyncio.gather(*(one(name, check) for name, check in self._checks.items()))
        )
        return all(r["status"] == "up" for r in results.values()), results


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
