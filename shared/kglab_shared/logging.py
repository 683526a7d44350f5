"""Structured JSON logs that carry the correlation id of the request or event being handled.

Every line a process writes is one JSON object: structlog's own, and the standard library's
(a client library's warning, uvicorn's access and error lines) through the same processors,
so each carries the service, the level, the time and, inside a request or an event, its
correlation id (ADR 0027).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

from kglab_shared.correlation import get_correlation_id

_SECRET_KEYS = ("password", "secret", "token", "authorization", "api_key")
#: A secret in a URL's query (the WebSocket's ?token=, a sign-in link's): its value is dropped.
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[a-z_]*token|api_key|key|password|secret|code)=)[^&\s\"']+"
)
#: uvicorn's access line: (client address, method, path, HTTP version, status).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


#: The service whose request, event or background task is running: in ``make dev`` every service
#: shares one process, so the process's name alone would tag every line with one service.
_SERVICE: ContextVar[str | None] = ContextVar("kglab_service", default=None)
_process_service = "kglab"


@contextmanager
def serving(service: str) -> Iterator[None]:
    """Tag the lines written inside (and in the tasks started inside) with ``service``."""
    token = _SERVICE.set(service)
    try:
        yield
    finally:
        try:
            _SERVICE.reset(token)
        except ValueError:
            # Left in another context than entered (a lifespan started by one task and ended
            # by another, as test fixtures and some servers do): that context keeps the value.
            pass


def _add_service(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("service", _SERVICE.get() or _process_service)
    return event


def _add_correlation_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        event.setdefault("correlation_id", correlation_id)
    return event


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event[key] = "[redacted]"
        elif isinstance(event[key], str) and "=" in event[key]:
            event[key] = _SECRET_QUERY.sub(r"\1[redacted]", event[key])
    return event


def _standard_library_fields(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A standard-library record's logger name, and uvicorn's access line as fields."""
    record: logging.LogRecord | None = event.get("_record")
    if record is None:
        return event
    event["logger"] = record.name
    args = event.pop("positional_args", None)
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        event["event"] = "http_access"
        event.update(zip(_ACCESS_FIELDS, args, strict=True))
    return event


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the standard library's root logger once per process; uvicorn's
    loggers give up their own handlers and write through the root's."""
    global _process_service
    _process_service = service
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_correlation_id,
    ]
    own: list[Any] = [*shared, _redact_secrets, structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=own,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    foreign: list[Any] = [*shared, _standard_library_fields, _redact_secrets]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign,
            pass_foreign_args=True,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own plain-text handlers (its LOGGING_CONFIG) before it builds the
    # app; its lines go through the root's JSON handler instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    # Client libraries log every request at INFO; our own access metrics cover that.
    for noisy in ("httpx", "httpcore", "aio_pika", "aiormq", "neo4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
