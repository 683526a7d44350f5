"""Domain errors and the one handler that renders every error as RFC 9457 problem+json."""

from __future__ import annotations

import sys
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kglab_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from kglab_shared.logging import get_logger

PROBLEM_JSON = "application/problem+json"
_log = get_logger(__name__)


class DomainError(Exception):
    """An error a person can act on. ``detail`` is the sentence they read."""

    status: int = 400
    title: str = "Bad request"
    code: str = "bad_request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class NotFoundError(DomainError):
    status, title, code = 404, "Not found", "not_found"


class ConflictError(DomainError):
    status, title, code = 409, "Conflict", "conflict"


class UnauthorizedError(DomainError):
    status, title, code = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class ForbiddenError(DomainError):
    status, title, code = 403, "Forbidden", "forbidden"


class PayloadTooLargeError(DomainError):
    status, title, code = 413, "Payload too large", "payload_too_large"


class UnsupportedMediaTypeError(DomainError):
    status, title, code = 415, "Unsupported media type", "unsupported_media_type"


class UnprocessableError(DomainError):
    status, title, code = 422, "Unprocessable content", "unprocessable"


class RateLimitedError(DomainError):
    status, title, code = 429, "Too many requests", "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))}, **extra)


class ServiceUnavailableError(DomainError):
    status, title, code = 503, "Service unavailable", "service_unavailable"


def documented(
    error: type[DomainError], *details: str, description: str | None = None
) -> dict[str, Any]:
    """An OpenAPI ``responses=`` entry for ``error``, showing the body a caller really gets.

    The gateway's assembled document adds the shared Problem schema to it.
    """
    examples = [
        {
            "type": f"https://kglab.dev/problems/{error.code}",
            "title": error.title,
            "status": error.status,
            "detail": detail,
        }
        for detail in details
    ]
    media: dict[str, Any] = {}
    if len(examples) == 1:
        media["example"] = examples[0]
    elif examples:
        media["examples"] = {
            f"case{number}": {"summary": example["detail"], "value": example}
            for number, example in enumerate(examples, start=1)
        }
    return {
        "description": description or (details[0] if details else error.title),
        "content": {PROBLEM_JSON: media},
    }


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    code: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    correlation_id: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build a problem+json response; every error path in the system goes through here."""
    body: dict[str, Any] = {
        "type": f"https://kglab.dev/problems/{code or _default_code(status)}",
        "title": title or _reason(status),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    correlation_id = correlation_id or get_correlation_id()
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _database_unavailable(exc: BaseException) -> str | None:
    # SQLAlchemy (over a second to import) is imported only by services that use it; a
    # process that never imported it cannot have raised one of its errors.
    if "sqlalchemy" not in sys.modules:
        return None
    from kglab_shared.sql import unavailable_detail

    return unavailable_detail(exc)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _default_code(status: int) -> str:
    return _reason(status).lower().replace(" ", "_").replace("-", "_")


def _describe_validation_error(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    where = ".".join(location) if location else "the request"
    message = str(error.get("msg", "is invalid"))
    if error.get("type") == "missing":
        return f"'{where}' is required."
    if error.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    return f"'{where}': {message}."


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (domain, HTTP, validation, unexpected) through :func:`problem`."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(
            exc.status,
            exc.detail,
            title=exc.title,
            code=exc.code,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(e) for e in exc.errors()]
        detail = " ".join(_describe_validation_error(e) for e in errors[:5])
        return problem(
            422,
            detail or "The request is invalid.",
            title="Invalid request",
            code="validation_error",
            instance=request.url.path,
            errors=[
                {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                for e in errors[:20]
            ],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _reason(exc.status_code)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is nothing at {request.url.path}."
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem(
            exc.status_code,
            detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # This handler runs outside the request-context middleware, so take the id from scope.
        correlation_id = request.scope.get("state", {}).get("correlation_id")
        unavailable = _database_unavailable(exc)
        if unavailable is not None:
            _log.warning(
                "database_unavailable", path=request.url.path, correlation_id=correlation_id
            )
            return problem(
                503,
                unavailable,
                instance=request.url.path,
                headers={"Retry-After": "1"},
            )
        _log.error(
            "unhandled_error", path=request.url.path, correlation_id=correlation_id, exc_info=exc
        )
        return problem(
            500,
            "Something went wrong on our side. Quote the correlation id if you report it.",
            instance=request.url.path,
            correlation_id=correlation_id,
            headers={REQUEST_ID_HEADER: correlation_id} if correlation_id else None,
        )
