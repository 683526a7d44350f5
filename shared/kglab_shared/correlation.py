"""The correlation id that follows one request through every service and every event."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_correlation_id: ContextVar[str | None] = ContextVar("kglab_correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    """Return ``candidate`` when it is a safe id (no log injection), else a fresh one."""
    if candidate and _SAFE_ID.match(candidate):
        return candidate
    return new_correlation_id()


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)
