"""Helpers for pure ASGI fast paths that answer a hot route without FastAPI's routing layer
(the gateway's proxy, auth's /me) yet keep its route label and its exception handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def walk_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route of an app, also inside included routers (FastAPI keeps an included
    router's own routes under ``original_router``)."""
    for route in routes:
        yield route
        inner = getattr(route, "original_router", route)
        yield from walk_routes(list(getattr(inner, "routes", None) or []))


def find_routes(routes: list[Any], matches: Callable[[Any], bool]) -> list[Any]:
    return [route for route in walk_routes(routes) if matches(route)]


def exception_handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The handler FastAPI's exception middleware would pick for ``exc``; None for a plain
    ``Exception`` (a 500 is the outer layer's to answer)."""
    for cls in type(exc).__mro__:
        if cls in handlers and cls is not Exception:
            return handlers[cls]
    return None
