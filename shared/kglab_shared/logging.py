"""Structured JSON logs that carry the correlation id of the request or event being handled."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from kglab_shared.correlation import get_correlation_id

_SECRET_KEYS = ("password", "secret", "token", "authorization", "api_key")


def _add_correlation_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        event.setdefault("correlation_id", correlation_id)
    return event


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the standard library's root logger once per process."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_correlation_id,
        _redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s", force=True)
    # Client libraries log every request at INFO; our own access metrics cover that.
    for noisy in ("httpx", "httpcore", "aio_pika", "aiormq", "neo4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
